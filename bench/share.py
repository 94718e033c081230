"""`capos-playground bench share`: how fast a native session's output reaches share-link viewers.

Two real servers (subprocesses, with --output-times) share a real redis-server.
Replica A hosts one QEMU session; its owner holds the session's terminal websocket
and types a character, then deletes it, over and over. Each output frame the owner
gets says when replica A appended its first byte to the session's stream
(`appended_at`, time.monotonic(): CLOCK_MONOTONIC, the same clock in every process
on this host), so every lag below starts there, at the server, for every reader:

  viewer_lag_p50_ms,  each viewer's receipt of each of those bytes minus their
  viewer_lag_p99_ms   append, 100 viewers on replica A
  owner_lag_p50_ms    the owner's receipt of them minus their append
  keystroke_to_viewer_p50_ms  the owner sending a keystroke to a viewer receiving its echo
  replica_lag_p50_ms  10 viewers on replica B, which mirrors the session through Redis:
  replica_lag_p99_ms  receipt on B minus the append on A
  viewers_held        the most viewers replica A holds with viewer lag p99 under 250 ms
                      (tried in steps up to 1000)
  owner_echo_*_p50_ms the owner's keystroke to the first frame of its echo: alone (half
                      the rounds before the viewers, half after), with 100 viewers, and
                      with 100 viewers whose processes are stopped
                      (SIGSTOP: the server still sends to all of them, the kernel keeps
                      it), which tells the server's share from the viewers' own CPU

The viewers run in up to four worker processes and the owner in the main one, all
on the same machine as the servers and QEMU, so the clients' own scheduling is
part of what is measured: the figures are an upper bound on the server's share.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection

from websockets.asyncio.client import connect
from websockets.sync.client import connect as sync_connect

from bench.figures import report
from bench.poolserver import PoolServer, TerminalClient, pool_server
from bench.redisserver import redis_server

TARGETS = {"viewer_lag_p50_ms": ("<=", 20), "viewers_held": (">=", 500)}
ECHO_RATIO_LIMIT = 1.5  # the owner's echo with 100 viewers, at most this times alone
HELD_P99_LIMIT_MS = 250
MISSING_MS = 10_000.0  # a viewer that never got a byte counts as this late
STEPS = (100, 250, 500, 750, 1000)
VIEWER_PROCESSES = 4

Frame = tuple[int, int, float]  # a viewer's output frame: offset, end offset, receipt


@dataclass
class Round:
    """One keystroke of the owner's: when it was sent, and the output frames that came
    back (offset, appended_at, receipt) until 50 ms of quiet."""

    sent: float
    frames: list[tuple[int, float, float]]


@dataclass
class Run:
    rounds: list[Round]
    viewers: list[list[Frame]]  # each viewer's frames, in order

    def echoes(self) -> list[float]:
        return [(r.frames[0][2] - r.sent) * 1000 for r in self.rounds if r.frames]

    def owner_lags(self) -> list[float]:
        return [(got - at) * 1000 for r in self.rounds for _, at, got in r.frames]

    def viewer_lags(self) -> list[float]:
        """Every viewer's receipt of the first byte of each frame the owner got, minus
        that byte's append."""
        return [
            _late(_received(frames, offset), at)
            for frames in self.viewers
            for r in self.rounds
            for offset, at, _ in r.frames
        ]

    def keystroke_lags(self) -> list[float]:
        """Every viewer's receipt of each keystroke's echo, minus the keystroke."""
        return [
            _late(_received(frames, r.frames[0][0]), r.sent)
            for frames in self.viewers
            for r in self.rounds
            if r.frames
        ]


def _received(frames: list[Frame], offset: int) -> float | None:
    """When the viewer got the byte at `offset`; None if it never did."""
    n = bisect.bisect_right(frames, offset, key=lambda frame: frame[1])
    return frames[n][2] if n < len(frames) and frames[n][0] <= offset else None


def _late(got: float | None, since: float) -> float:
    return MISSING_MS if got is None else (got - since) * 1000


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _viewer(url: str, frames: list[Frame], connected: list[int]) -> None:
    """One viewer socket: notes each output frame and when it arrived."""
    async with connect(url, max_queue=None, open_timeout=120) as socket:
        await socket.send(json.dumps({"type": "resume", "offset": 0}))
        connected[0] += 1
        async for message in socket:
            now = time.monotonic()
            frame = json.loads(message)
            if frame["type"] == "output":
                offset = frame["offset"]
                frames.append((offset, offset + len(frame["data"].encode()), now))


def _viewers_process(url: str, count: int, conn: Connection) -> None:
    """A process holding `count` viewers: says "ready" once all are connected, and on
    "stop" sends back each viewer's frames."""

    async def main() -> list[list[Frame]]:
        frames: list[list[Frame]] = [[] for _ in range(count)]
        connected = [0]
        async with asyncio.TaskGroup() as tasks:
            viewers = [tasks.create_task(_viewer(url, f, connected)) for f in frames]
            while connected[0] < count:
                await asyncio.sleep(0.05)
            conn.send("ready")
            await asyncio.to_thread(conn.recv)  # "stop"
            for viewer in viewers:
                viewer.cancel()
        return frames

    conn.send(asyncio.run(main()))


def _owner_rounds(server: PoolServer, session: dict, rounds: int) -> list[Round]:
    """Type and delete a character `rounds` times, keeping each keystroke's output."""
    start = server.http.get(f"/api/sessions/{session['id']}").json()["output_offset"]
    measured = []
    with sync_connect(f"ws://127.0.0.1:{server.port}{session['terminal']}") as socket:
        socket.send(json.dumps({"type": "resume", "offset": start}))
        for n in range(rounds):
            sent = time.monotonic()
            socket.send(json.dumps({"type": "input", "data": "x" if n % 2 == 0 else "\x7f"}))
            round_ = Round(sent, [])
            with suppress(TimeoutError):
                while True:  # until the echo is over (50 ms of quiet)
                    message = socket.recv(30 if not round_.frames else 0.05)
                    now = time.monotonic()
                    frame = json.loads(message)
                    if frame["type"] == "output":
                        round_.frames.append((frame["offset"], frame["appended_at"], now))
            measured.append(round_)
    return measured


def _measure(
    server: PoolServer,
    session: dict,
    viewer_url: str,
    viewers: int,
    rounds: int,
    paused: bool = False,
) -> Run:
    """The owner's rounds with `viewers` watching from worker processes (stopped
    meanwhile when `paused`); the owner alone in this process, so neither waits behind
    the other's frames."""
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
        if paused:
            for process in processes:
                os.kill(process.pid, signal.SIGSTOP)
        try:
            rounds_ = _owner_rounds(server, session, rounds)
        finally:
            if paused:
                for process in processes:
                    os.kill(process.pid, signal.SIGCONT)
        time.sleep(1.0)  # the last round reaches the slowest
        for link in links:
            link.send("stop")
        frames = [f for link in links for f in link.recv()]
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
    return Run(rounds_, frames)


def run_benchmark(json_path: str | None, quick: bool = False, accel: str = "auto") -> int:
    figures: dict[str, float] = {}
    rounds = 20 if quick else 50
    common = ["--accel", accel if accel != "auto" else "tcg", "--viewers-per-ip", "5000"]
    common.append("--output-times")
    load = os.getloadavg()
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
        _say("measuring the owner alone, with 100 viewers on the hosting replica, alone ...")
        alone = Run(_owner_rounds(a, session, rounds // 2), [])
        run = _measure(a, session, on_a, 100, rounds)
        alone.rounds += _owner_rounds(a, session, rounds - rounds // 2)  # before and after
        figures["owner_echo_alone_p50_ms"] = statistics.median(alone.echoes())
        figures["owner_echo_100_viewers_p50_ms"] = statistics.median(run.echoes())
        _say("measuring 100 viewers whose processes are stopped ...")
        paused = _measure(a, session, on_a, 100, rounds, paused=True)
        figures["owner_echo_100_paused_viewers_p50_ms"] = statistics.median(paused.echoes())
        figures["owner_lag_alone_p50_ms"] = statistics.median(alone.owner_lags())
        figures["owner_lag_p50_ms"] = statistics.median(run.owner_lags())
        lags = run.viewer_lags()
        figures["viewer_lag_p50_ms"] = statistics.median(lags)
        figures["viewer_lag_p99_ms"] = _p(lags, 0.99)
        figures["keystroke_to_viewer_p50_ms"] = statistics.median(run.keystroke_lags())
        _say("measuring 10 viewers on the second replica (through Redis) ...")
        remote = _measure(a, session, on_b, 10, rounds).viewer_lags()
        figures["replica_lag_p50_ms"] = statistics.median(remote)
        figures["replica_lag_p99_ms"] = _p(remote, 0.99)
        held = 0
        for step in STEPS[: 3 if quick else len(STEPS)]:
            _say(f"measuring {step} viewers ...")
            p99 = _p(_measure(a, session, on_a, step, 10).viewer_lags(), 0.99)
            _say(f"  p99 {p99:.1f} ms")
            if p99 >= HELD_P99_LIMIT_MS:
                break
            held = step
        figures["viewers_held"] = held
    targets = {
        **TARGETS,
        "owner_echo_100_viewers_p50_ms": (
            "<=",
            ECHO_RATIO_LIMIT * figures["owner_echo_alone_p50_ms"],
        ),
    }
    loads = f"{load[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    return report(figures, targets, json_path, cpus=os.cpu_count(), quick=quick, load=loads)
