"""The peer for endpoint_rtt_us: the same Echo over pycapnp's own RPC.

Server and client run over a local socketpair in one asyncio loop, which
is pycapnp's best case (no process switch at all).
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from pathlib import Path

import capnp

SCHEMA = Path(__file__).resolve().parents[1] / "schema" / "capos.capnp"


def measure_pycapnp_rtt_us(count: int, payload: bytes = b"x" * 64) -> float:
    """Median microseconds for one Echo.echo round trip."""
    schema = capnp.load(str(SCHEMA))

    class EchoImpl(schema.Echo.Server):
        async def echo(self, data, **kwargs):
            return data

    async def run() -> float:
        left, right = socket.socketpair()
        server_stream = await capnp.AsyncIoStream.create_connection(sock=left)
        server = capnp.TwoPartyServer(server_stream, bootstrap=EchoImpl())
        client_stream = await capnp.AsyncIoStream.create_connection(sock=right)
        client = capnp.TwoPartyClient(client_stream)
        echo = client.bootstrap().cast_as(schema.Echo)
        for _ in range(200):
            await echo.echo(payload)
        samples = []
        for _ in range(count):
            start = time.perf_counter_ns()
            result = await echo.echo(payload)
            samples.append(time.perf_counter_ns() - start)
        assert result.data == payload
        del server
        return statistics.median(samples) / 1000

    return asyncio.run(capnp.run(run()))


if __name__ == "__main__":
    print(measure_pycapnp_rtt_us(2000))
