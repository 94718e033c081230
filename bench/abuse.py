"""`capos-playground bench abuse`: a flood from several addresses against a live server,
and what an honest visitor on another address feels meanwhile.

The server is the real one (a subprocess with a QEMU pool and the default per-client
limits, except one running session per client so two flooders cannot take the pool).
Flooders on loopback aliases (127.0.1.N) ask, as fast as they are answered, for QEMU
sessions, tab sessions, MCP sessions, terminal sockets past their limit, and send
bodies far over the limit. The honest client (127.0.0.2) creates a session, waits for
its prompt, types a key and waits for its echo, then ends it; alone, then during the
flood.

  honest_client_alone_p99_ms  create + echo, p99, no flood (each round starts when the
                              pool has a warm VM again)
  honest_client_p99_ms        the same during the flood (target: at most 2x alone)
  refused_with_reason_pct     of the flood's refusals, those that said which limit and,
                              for 429/503, when to retry (target 100)
  server_rss_growth_mib       the server process's resident memory, after the flood
                              minus before it (target under 50)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import statistics
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.figures import Targets, report
from bench.poolserver import PoolServer, TerminalClient, pool_server

FLOODERS = 3
BIG_BODY = 8 * 1024 * 1024  # far over every body limit
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "flood", "version": "1"},
    },
}


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def honest_round(server: PoolServer) -> float:
    """Create a session from 127.0.0.2, echo a key, end it; ms from create to the echo.

    It starts once the pool has a warm VM (not timed): the figure is the server's
    answer and the session's echo, not how fast the pool refills after the last round."""
    server.wait_for(lambda: server.pool()["warm"] >= 1, "a warm VM", timeout=120)
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=server.base, transport=transport, timeout=60) as http:
        start = time.perf_counter()
        deadline = time.monotonic() + 120
        while True:
            created = http.post("/api/sessions", json={"backend": "qemu"})
            if created.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(min(1.0, float(created.headers.get("retry-after", "1"))))
        created.raise_for_status()
        session = created.json()
        client = TerminalClient(server, session)
        try:
            client.read_prompt()
            seen = len(client.text)
            client.send(type="input", data="x")
            client.read_until(lambda: "x" in client.text[seen:], "the echo")
            took = (time.perf_counter() - start) * 1000
        finally:
            client.close()
            http.delete(f"/api/sessions/{session['id']}")
    return took


class Flood:
    """The flooders, in a process of their own (so their work does not slow the honest
    client's measurements here), until the block ends."""

    def __init__(self, server: PoolServer, flooders: int) -> None:
        self.port, self.flooders = server.port, flooders
        self.outcomes: Counter[str] = Counter()  # "accepted", "refused", "refused-with-reason"
        context = multiprocessing.get_context("spawn")
        self._stopping = context.Event()
        self._results, theirs = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_flood, args=(self.port, flooders, self._stopping, theirs), daemon=True
        )

    def __enter__(self) -> Flood:
        self._process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._results.poll(120):
            self.outcomes.update(self._results.recv())
        self._process.join(30)


def _flood(port: int, flooders: int, stopping: Any, results: Connection) -> None:
    """The flood process: its outcomes go back through `results` once `stopping` is set."""
    flood = _Flooders(port, stopping)
    asyncio.run(flood.run(flooders))
    results.send(dict(flood.outcomes))


class _Flooders:
    def __init__(self, port: int, stopping: Any) -> None:
        self.port, self._stopping = port, stopping
        self.base = f"http://127.0.0.1:{port}"
        self.outcomes: Counter[str] = Counter()

    async def run(self, flooders: int) -> None:
        await asyncio.gather(*(self._flooder(f"127.0.1.{n + 1}") for n in range(flooders)))

    async def _flooder(self, address: str) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=address)
        async with httpx.AsyncClient(base_url=self.base, transport=transport, timeout=30) as http:
            mine: list[dict] = []
            while not self._stopping.is_set():
                created = await http.post("/api/sessions", json={"backend": "qemu"})
                if created.status_code == 201:
                    mine.append(created.json())
                self._note(created)
                self._note(await http.post("/api/tabs"))
                headers = {"accept": "application/json, text/event-stream"}
                self._note(await http.post("/mcp", json=INITIALIZE, headers=headers))
                self._note(
                    await http.post(
                        "/api/sessions",
                        content=b"[" * BIG_BODY,
                        headers={"content-type": "application/json"},
                    )
                )
                for session in mine[-1:]:
                    await self._sockets(address, session)
                await asyncio.sleep(0.01)

    async def _sockets(self, address: str, session: dict) -> None:
        """Terminal sockets to its own session, past the limit."""
        url = f"ws://127.0.0.1:{self.port}{session['terminal']}"
        opened = []
        with contextlib.suppress(OSError, websockets.WebSocketException):
            for _ in range(20):
                ws = await websockets.connect(url, local_addr=(address, 0))
                opened.append(ws)
                await ws.send(json.dumps({"type": "resume", "offset": 0}))
                frame = json.loads(await ws.recv())
                if frame["type"] == "error":
                    refused_why = "limit reached" in frame["message"]
                    with contextlib.suppress(websockets.ConnectionClosed):
                        await ws.recv()
                    self.outcomes["refused"] += 1
                    if refused_why and ws.close_code == 4429:
                        self.outcomes["refused-with-reason"] += 1
                    else:
                        said = f"{ws.close_code} {frame['message'][:80]}"
                        self.outcomes[f"without a reason: websocket {said}"] += 1
                    break
                self.outcomes["accepted"] += 1
        for ws in opened:
            await ws.close()

    def _note(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            self.outcomes["accepted"] += 1
            return
        self.outcomes["refused"] += 1
        try:
            body = response.json()
        except ValueError:
            body = {}
        message = body.get("error")
        if isinstance(message, dict):  # JSON-RPC
            message = message.get("message")
        retry = response.status_code not in (429, 503) or "retry-after" in response.headers
        if isinstance(message, str) and message and retry:
            self.outcomes["refused-with-reason"] += 1
        else:  # which answers said too little, for the JSON
            self.outcomes[f"without a reason: {response.status_code} {response.text[:80]}"] += 1


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def run_benchmark(json_path: str | None, quick: bool = False) -> int:
    rounds = 5 if quick else 15
    options = ["--accel", "tcg", "--warm", "2", "--max-vms", "6", "--client-sessions", "1"]
    with pool_server(*options, "--no-llm") as server:
        assert server.process is not None
        server.wait_for(lambda: server.pool()["warm"] >= 2, "two warm VMs")
        honest_round(server)  # the first handout warms the path; not counted
        _say(f"an honest client alone: {rounds} rounds of create + echo ...")
        alone = [honest_round(server) for _ in range(rounds)]
        before = _rss_mib(server.process.pid)
        _say(f"the same during a flood from {FLOODERS} addresses ...")
        with Flood(server, FLOODERS) as flood:
            time.sleep(2)  # the flood takes what it may first
            during = [honest_round(server) for _ in range(rounds)]
        after = _rss_mib(server.process.pid)
    refused = flood.outcomes["refused"]
    figures: dict[str, float | None] = {
        "honest_client_alone_p99_ms": round(_p99(alone), 1),
        "honest_client_p99_ms": round(_p99(during), 1),
        "honest_client_alone_p50_ms": round(statistics.median(alone), 1),
        "honest_client_p50_ms": round(statistics.median(during), 1),
        "flood_requests": flood.outcomes["accepted"] + refused,
        "refused_with_reason_pct": (
            round(100 * flood.outcomes["refused-with-reason"] / refused, 1) if refused else None
        ),
        "server_rss_growth_mib": round(after - before, 1),
    }
    targets: Targets = {
        "honest_client_p99_ms": ("<=", 2 * (figures["honest_client_alone_p99_ms"] or 0)),
        "refused_with_reason_pct": (">=", 100),
        "server_rss_growth_mib": ("<=", 50),
    }
    return report(
        figures,
        targets,
        json_path,
        quick=quick,
        flooders=FLOODERS,
        rounds=rounds,
        outcomes=dict(flood.outcomes),
    )
