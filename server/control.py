"""The server's end of a guest's control channel, spoken with pycapnp.

Requests and responses are `schema/control.capnp` messages in standard
stream framing on the VM's second serial port; the guest decodes them with
the project's own codec (kernel/hosts/control.py), so this is a live
conformance check in both directions. Responses carry the request's id,
which lets calls overlap.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import socket
import zlib
from typing import Any

import capnp

from kernel.codec.errors import DecodeError
from kernel.codec.framing import frame_size
from server.settings import REPO_ROOT

SCHEMA_DIR = REPO_ROOT / "schema"
MAX_MESSAGE = 64 * 1024
MAX_SNAPSHOT = 4 * 1024 * 1024  # a MonitorSnapshot, uncompressed
_schema = capnp.load(str(SCHEMA_DIR / "control.capnp"), imports=[str(SCHEMA_DIR)])
_capos = capnp.load(str(SCHEMA_DIR / "capos.capnp"), imports=[str(SCHEMA_DIR)])


class ControlError(Exception):
    """The guest answered with an error, or the channel is gone."""


class ControlClient:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future] = {}
        # Ids start anywhere: a VM restored from a file may still answer a request the
        # client before this one sent, and that answer must not match one of ours.
        self._ids = itertools.count(secrets.randbits(32))
        self.closed = False
        self.broken: str | None = None  # why the guest's frames could not be read, if so

    async def run(self) -> None:
        """Read responses until the channel closes; owned by the VM's task group."""
        reader, self._writer = await asyncio.open_connection(sock=self._sock)
        buffer = bytearray()
        try:
            while data := await reader.read(65536):
                buffer += data
                while (size := frame_size(buffer, MAX_MESSAGE)) is not None:
                    frame = bytes(buffer[:size])
                    del buffer[:size]
                    self._deliver(frame)
        except (DecodeError, capnp.KjException, KeyError, ValueError) as exc:
            # Once one frame is bad the stream's framing cannot be trusted: give up on it.
            self.broken = f"the guest sent a malformed control frame ({exc})"
            self._fail(self.broken)
        except ConnectionResetError:
            pass  # QEMU exited with our requests unread: the channel closed
        finally:
            self._fail("the control channel closed (the VM has exited)")
            self._writer.close()

    def _deliver(self, frame: bytes) -> None:
        with _schema.ControlResponse.from_bytes(frame) as response:
            answer = response.to_dict(verbose=True)  # every field, defaults too
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), int):
            raise ValueError("a response without an id")
        future = self._pending.pop(answer.pop("id"), None)
        if future is not None and not future.done():
            future.set_result(answer)

    def _fail(self, reason: str) -> None:
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ControlError(reason))
        self._pending.clear()

    async def call(self, timeout: float | None = 5.0, **request: Any) -> dict:
        """Send one request (`ping=None`, `resize={...}`, ...) and wait for its answer
        (at most `timeout` seconds; None waits for as long as the guest takes)."""
        if self.closed or self._writer is None:
            raise ControlError("the control channel is not open")
        call_id = next(self._ids) & 0xFFFFFFFF
        message = _schema.ControlRequest.new_message(id=call_id, **request)
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        self._writer.write(message.to_bytes())
        try:
            async with asyncio.timeout(timeout):
                answer = await future
        finally:
            self._pending.pop(call_id, None)
        if "error" in answer:
            raise ControlError(f"the guest refused it: {answer['error']}")
        return answer

    async def monitor(self, max_calls: int = 50, max_logs: int = 50) -> dict:
        """The guest kernel's whole-system MonitorSnapshot, as a dict (JSON-ready)."""
        answer = await self.call(monitor={"maxCalls": max_calls, "maxLogs": max_logs}, timeout=15)
        inflate = zlib.decompressobj()
        try:
            raw = inflate.decompress(answer["snapshot"], MAX_SNAPSHOT)
        except zlib.error as exc:
            raise ControlError(f"the guest sent a snapshot that does not inflate: {exc}") from None
        if inflate.unconsumed_tail:
            raise ControlError(f"the guest sent a snapshot over {MAX_SNAPSHOT} bytes")
        try:
            with _capos.MonitorSnapshot.from_bytes(raw) as snapshot:
                return snapshot.to_dict()
        except capnp.KjException as exc:
            raise ControlError(f"the guest sent a snapshot pycapnp cannot read: {exc}") from None

    async def agent(self, timeout: float, **request: Any) -> dict:
        """One outside agent's request (`listCaps=None`, `call={...}`, ...), served by the
        guest's shell; its AgentResponse as a dict (`caps`, `json` or `error`)."""
        answer = await self.call(timeout=timeout, agent={"id": 0, **request})
        return answer["agent"]
