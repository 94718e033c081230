"""The real server in this process, on a free loopback port, with a handle on its parts.

The tests and benchmarks that inject faults need what a client cannot reach: the
running parts (the lifespan's state: directory, hosting, hub, health) and the event
loop they live on, to start a misbehaving guest in the same pool as the sessions it
must not disturb. Everything else goes through HTTP and websockets like any client.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import uvicorn

from server.admission import AdmissionLimits
from server.app import create_app
from server.settings import WS_MAX_MESSAGE, Settings

T = TypeVar("T")

# For a rig whose one address (this process) plays every visitor: limits per client that
# a test of something else never meets. The admission tests use the real defaults.
ONE_ADDRESS_RIG = AdmissionLimits(
    qemu_sessions=1000,
    suspended_sessions=1000,
    tab_sessions=1000,
    owner_sockets=1000,
    monitor_streams=1000,
    model_sockets=1000,
)


class LiveServer:
    def __init__(self, server: uvicorn.Server, port: int, loop: asyncio.AbstractEventLoop):
        self._server, self.port, self.loop = server, port, loop
        self.base = f"http://127.0.0.1:{port}"
        self.app = server.config.app  # its routes, for tests that must cover every one

    @property
    def state(self) -> dict[str, Any]:
        """The running parts, as the lifespan handed them to every request."""
        return self._server.lifespan.state

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run `coro` on the server's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@contextmanager
def live_server(
    settings: Settings | None = None, start_timeout: float = 180
) -> Iterator[LiveServer]:
    """The real server for as long as the block runs (the QEMU pool, when the settings
    have one, is booted by the time the block starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws_max_size=WS_MAX_MESSAGE,
    )
    server = uvicorn.Server(config)
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        loops.append(asyncio.get_running_loop())
        await server.serve()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the server did not start within {start_timeout:.0f} s")
        time.sleep(0.05)
    try:
        yield LiveServer(server, port, loops[0])
    finally:
        server.should_exit = True
        thread.join(timeout=30)
