"""The peer for endpoint_rtt_us: the same Echo over pycapnp's own RPC.

The client and the server are two child processes talking over a socketpair,
so each round trip crosses processes as ours does (ours crosses three: ping,
the kernel loop, echo-server). Both block in their event loops between
messages; nothing polls. Alongside the median round trip it reports the CPU
time both processes spent per call over the timed calls. The caller runs
neither side: pycapnp's event loop aborts the process when it starts in one
where capnp already served other threads (a test run's servers).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import capnp

from bench.cputime import cpu_snapshot, cpu_spent_ns
from kernel.programs.ping import PAYLOAD, WARMUP

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schema" / "capos.capnp"
SERVER_EXIT_TIMEOUT_S = 10


def measure_pycapnp(count: int) -> dict[str, float]:
    """Median microseconds per Echo.echo round trip, and CPU microseconds per call:
    the client's, the server's and their sum."""
    client_end, server_end = socket.socketpair()
    with client_end, server_end:
        server = _child("serve", server_end)
        try:
            client = _child("client", client_end, str(server.pid), str(count))
            out, _ = client.communicate()
            if client.returncode != 0:
                raise RuntimeError(f"pycapnp's client exited with status {client.returncode}")
            return json.loads(out)
        finally:
            client_end.close()
            server_end.close()  # the server sees the disconnect and exits
            try:
                server.wait(timeout=SERVER_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _child(role: str, sock: socket.socket, *more: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.pycapnp_echo", role, str(sock.fileno()), *more],
        pass_fds=[sock.fileno()],
        cwd=ROOT,
        stdout=subprocess.PIPE if role == "client" else None,
        text=True,
    )


async def _client(fd: int, server_pid: int, count: int, payload: bytes = PAYLOAD) -> dict:
    """The client process: times `count` calls; its figures go to stdout as JSON."""
    schema = capnp.load(str(SCHEMA))
    stream = await capnp.AsyncIoStream.create_connection(sock=socket.socket(fileno=fd))
    client = capnp.TwoPartyClient(stream)
    echo = client.bootstrap().cast_as(schema.Echo)
    for _ in range(WARMUP):
        await echo.echo(payload)
    samples = []
    sides = {"client": os.getpid(), "server": server_pid}
    before = cpu_snapshot(sides.values())
    for _ in range(count):
        start = time.perf_counter_ns()
        result = await echo.echo(payload)
        samples.append(time.perf_counter_ns() - start)
    spent = cpu_spent_ns(before, cpu_snapshot(sides.values()))
    if result.data != payload:
        raise RuntimeError("pycapnp's Echo answered with different bytes")
    per_call = {side: spent[pid] / count / 1000 for side, pid in sides.items()}
    return {
        "pycapnp_rtt_us": statistics.median(samples) / 1000,
        "pycapnp_cpu_us_per_call": sum(per_call.values()),
        "pycapnp_client_cpu_us_per_call": per_call["client"],
        "pycapnp_server_cpu_us_per_call": per_call["server"],
    }


async def _serve(fd: int) -> None:
    """The server process: Echo on the inherited socket until the client hangs up."""
    schema = capnp.load(str(SCHEMA))

    class EchoImpl(schema.Echo.Server):
        async def echo(self, data, **kwargs):
            return data

    stream = await capnp.AsyncIoStream.create_connection(sock=socket.socket(fileno=fd))
    server = capnp.TwoPartyServer(stream, bootstrap=EchoImpl())
    await server.on_disconnect()


if __name__ == "__main__":
    role, fd, *more = sys.argv[1:]
    if role == "serve":
        asyncio.run(capnp.run(_serve(int(fd))))
    else:
        server_pid, count = map(int, more)
        print(json.dumps(asyncio.run(capnp.run(_client(int(fd), server_pid, count)))))
