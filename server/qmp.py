"""A minimal QMP client: QEMU's JSON monitor, over a socket QEMU was handed at start."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Sequence
from typing import Any


class QmpError(Exception):
    """QEMU refused a command or its monitor went away."""


class Qmp:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()  # one command at a time: replies are not tagged

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(sock=self._sock)
        await self._message()  # the greeting
        await self.command("qmp_capabilities")

    async def _message(self) -> dict:
        assert self._reader is not None, "connect() first"
        while True:
            line = await self._reader.readline()
            if not line:
                raise QmpError("QEMU's monitor closed (the VM has exited)")
            message = json.loads(line)
            if "event" not in message:  # events are not needed by anyone yet
                return message

    async def command(self, name: str, *, fds: Sequence[int] = (), **arguments: Any) -> Any:
        """Run a command; `fds` travel with it (SCM_RIGHTS), as `getfd` needs."""
        assert self._writer is not None, "connect() first"
        async with self._lock:
            request: dict[str, Any] = {"execute": name}
            if arguments:
                request["arguments"] = arguments
            data = json.dumps(request).encode() + b"\n"
            if fds:
                # Past the lock, QEMU has answered every earlier command, so it has read
                # them all: nothing is queued in the transport to overtake.
                sent = socket.send_fds(self._sock, [data], list(fds))
                data = data[sent:]
            self._writer.write(data)
            await self._writer.drain()
            reply = await self._message()
        if "error" in reply:
            raise QmpError(f"{name}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        else:
            self._sock.close()
