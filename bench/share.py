"""`capos-playground bench share`: how fast a native session's output reaches share-link viewers.

Two real servers (subprocesses) share a real redis-server. Replica A hosts one
QEMU session; its owner holds the session's terminal websocket and types a
character, then deletes it, over and over; each keystroke's echo is the output
measured. Lag is the time from the owner's socket receiving that output to a
viewer's socket receiving the same offset (owner output to viewer receipt).

  viewer_lag_p50_ms,  100 viewers on replica A
  viewer_lag_p99_ms
  viewers_held        the most viewers replica A holds with lag p99 under 250 ms
                      (tried in steps up to 1000)
  replica_lag_p50_ms  viewers on replica B, which mirrors the session through Redis
  owner_echo_*_p50_ms the owner's keystroke echo alone and with 100 viewers: whether
                      the viewers slow the owner

The owner's socket is one reader of the session's stream among the viewers', so
with many viewers the owner may be served after some of them: a lag can be
negative, and it is the viewers' delay relative to the owner.

The viewers run in up to four worker processes and the owner in the main one, all
on the same machine as the servers and QEMU, so the clients' own scheduling is
part of what is measured: the figures are an upper bound on the server's share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection

from websockets.asyncio.client import connect
from websockets.sync.client import connect as sync_connect

from bench.figures import report
from bench.poolserver import PoolServer, TerminalClient, pool_server
from bench.redisserver import redis_server

TARGETS = {"viewer_lag_p50_ms": ("<=", 20), "viewers_held": (">=", 500)}
HELD_P99_LIMIT_MS = 250
STEPS = (100, 250, 500, 750, 1000)
VIEWER_PROCESSES = 4


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _viewer(url: str, arrived: dict[int, float], connected: list[int]) -> None:
    """One viewer socket: notes when each frame's end offset arrived."""
    async with connect(url, max_queue=None, open_timeout=120) as socket:
        await socket.send(json.dumps({"type": "resume", "offset": 0}))
        connected[0] += 1
        async for message in socket:
            now = time.perf_counter()
            frame = json.loads(message)
            if frame["type"] == "output":
                arrived.setdefault(frame["offset"] + len(frame["data"].encode()), now)


def _viewers_process(url: str, count: int, conn: Connection) -> None:
    """A process holding `count` viewers: says "ready" once all are connected, and on
    "stop" sends back, for each viewer, when each offset arrived."""

    async def main() -> list[dict[int, float]]:
        arrivals: list[dict[int, float]] = [{} for _ in range(count)]
        connected = [0]
        async with asyncio.TaskGroup() as tasks:
            viewers = [tasks.create_task(_viewer(url, a, connected)) for a in arrivals]
            while connected[0] < count:
                await asyncio.sleep(0.05)
            conn.send("ready")
            await asyncio.to_thread(conn.recv)  # "stop"
            for viewer in viewers:
                viewer.cancel()
        return arrivals

    conn.send(asyncio.run(main()))


def _owner_rounds(owner_url: str, start: int, rounds: int) -> tuple[dict[int, float], list[float]]:
    """Type and delete a character `rounds` times: when each output frame (its end
    offset) reached the owner (an echo may come in several frames: all are kept), and
    each keystroke's echo time in ms (sent to the first frame back)."""
    seen: dict[int, float] = {}
    echoes: list[float] = []
    with sync_connect(owner_url) as socket:
        socket.send(json.dumps({"type": "resume", "offset": start}))
        for n in range(rounds):
            sent = time.perf_counter()
            socket.send(json.dumps({"type": "input", "data": "x" if n % 2 == 0 else "\x7f"}))
            first = True
            with contextlib.suppress(TimeoutError):
                while True:  # until the echo is over (50 ms of quiet)
                    frame = json.loads(socket.recv(30 if first else 0.05))
                    if frame["type"] == "output":
                        now = time.perf_counter()
                        if first:
                            echoes.append((now - sent) * 1000)
                            first = False
                        seen.setdefault(frame["offset"] + len(frame["data"].encode()), now)
    return seen, echoes


def _echo_alone(server: PoolServer, session: dict, rounds: int) -> list[float]:
    start = server.http.get(f"/api/sessions/{session['id']}").json()["output_offset"]
    owner_url = f"ws://127.0.0.1:{server.port}{session['terminal']}"
    return _owner_rounds(owner_url, start, rounds)[1]


def _measure(
    server: PoolServer, session: dict, viewer_url: str, viewers: int, rounds: int
) -> tuple[list[float], list[float]]:
    """Lags (ms) of every viewer for every round's output: a viewer's receipt of the
    owner's echo minus the owner's receipt of it. The viewers run in worker processes
    and the owner alone in this one, so neither waits behind the other's frames;
    perf_counter is the system's monotonic clock, the same in every process."""
    context = multiprocessing.get_context("spawn")
    workers = max(1, min(VIEWER_PROCESSES, viewers // 50))
    shares = [viewers // workers + (1 if n < viewers % workers else 0) for n in range(workers)]
    links, processes = [], []
    for count in shares:
        ours, theirs = context.Pipe()
        process = context.Process(target=_viewers_process, args=(viewer_url, count, theirs))
        process.start()
        links.append(ours)
        processes.append(process)
    try:
        for link in links:
            if not link.poll(300) or link.recv() != "ready":
                raise RuntimeError("the viewers did not all connect within 300 s")
        time.sleep(1.0)  # the scrollback has reached everyone
        start = server.http.get(f"/api/sessions/{session['id']}").json()["output_offset"]
        owner_url = f"ws://127.0.0.1:{server.port}{session['terminal']}"
        seen, echoes = _owner_rounds(owner_url, start, rounds)
        time.sleep(1.0)  # the last round reaches the slowest
        for link in links:
            link.send("stop")
        arrivals = [a for link in links for a in link.recv()]
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
    lags = []
    for arrived in arrivals:
        for offset, at in seen.items():
            # the viewer's first frame that reached at least this offset
            later = [t for end, t in arrived.items() if end >= offset]
            lags.append((min(later) - at) * 1000 if later else 10_000.0)
    return lags, echoes


def run_benchmark(json_path: str | None, quick: bool = False, accel: str = "auto") -> int:
    figures: dict[str, float] = {}
    rounds = 20 if quick else 50
    common = ["--accel", accel if accel != "auto" else "tcg", "--viewers-per-ip", "5000"]
    with (
        tempfile.TemporaryDirectory() as data,
        redis_server() as redis_url,
        pool_server(
            *common, "--warm", "1", "--max-vms", "2", "--redis", redis_url,
            "--data-dir", f"{data}/a",
        ) as a,
        pool_server(
            *common, "--warm", "0", "--max-vms", "1", "--redis", redis_url,
            "--data-dir", f"{data}/b",
        ) as b,
    ):  # fmt: skip
        session = a.new_session()
        owner = TerminalClient(a, session)
        owner.read_prompt()
        owner.close()
        share = a.http.post(f"/api/sessions/{session['id']}/shares", json={"mode": "view"})
        token = share.json()["url"].rsplit("/s/", 1)[1]
        on_a = f"ws://127.0.0.1:{a.port}/s/{token}/terminal"
        on_b = f"ws://127.0.0.1:{b.port}/s/{token}/terminal"
        _say("measuring 100 viewers on the hosting replica ...")
        figures["owner_echo_alone_p50_ms"] = statistics.median(_echo_alone(a, session, rounds))
        lags, echoes = _measure(a, session, on_a, 100, rounds)
        figures["owner_echo_100_viewers_p50_ms"] = statistics.median(echoes)
        figures["viewer_lag_p50_ms"] = statistics.median(lags)
        figures["viewer_lag_p99_ms"] = _p(lags, 0.99)
        _say("measuring 10 viewers on the second replica (through Redis) ...")
        remote, _ = _measure(a, session, on_b, 10, rounds)
        figures["replica_lag_p50_ms"] = statistics.median(remote)
        figures["replica_lag_p99_ms"] = _p(remote, 0.99)
        held = 0
        for step in STEPS[: 3 if quick else len(STEPS)]:
            _say(f"measuring {step} viewers ...")
            p99 = _p(_measure(a, session, on_a, step, 10)[0], 0.99)
            _say(f"  p99 {p99:.1f} ms")
            if p99 >= HELD_P99_LIMIT_MS:
                break
            held = step
        figures["viewers_held"] = held
    return report(figures, TARGETS, json_path, cpus=os.cpu_count(), quick=quick)
