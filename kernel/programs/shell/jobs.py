"""Children the shell launched, and the StdIO it serves each of them.

A child never sees the shell's TerminalSession: each `client @stdio` grant
is a fresh endpoint the shell owns and serves. Writes go straight to the
terminal; a `readLine` is answered by the shell's line editor when the
child is in the foreground (without echo when it asks for a hidden line),
and waits while it is in the background.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from kernel.codec import DecodeError, decode, encode
from kernel.runtime import Cap, Incoming, Pending, RemoteError, Runtime, TransportFailure

MAX_WRITE = 64 * 1024


@dataclass
class StdioRequest:
    """A readLine/read a child is waiting on, answered later."""

    endpoint: Cap
    call_id: int
    method: str
    prompt: str = ""
    hidden: bool = False  # readLine's: echo off


@dataclass
class Job:
    number: int
    binary: str
    handle: Cap
    pid: int
    stdio: list[Cap] = field(default_factory=list)  # raw endpoints the shell serves
    recvs: dict[int, tuple[Cap, int]] = field(default_factory=dict)  # RECV ud -> (ep, addr)
    waiting: Pending | None = None  # handle.wait()
    reads: list[StdioRequest] = field(default_factory=list)
    exit_code: int | None = None
    status_text: str = ""
    exited: list[Callable[[], None]] = field(default_factory=list)  # told once it exits

    @property
    def done(self) -> bool:
        return self.exit_code is not None


class StdioServer:
    """Decodes one StdIO call and either answers it or hands back a read to defer."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.iface = rt.bundle.interface("StdIO")

    def listen(self, job: Job, endpoint: Cap) -> int:
        user_data, addr = self.rt.recv_submit(endpoint, 4096 + 256)
        job.recvs[user_data] = (endpoint, addr)
        return user_data

    def take(self, job: Job, user_data: int) -> Incoming | None:
        """The call a RECV delivered (None if the endpoint was released meanwhile)."""
        _endpoint, addr = job.recvs.pop(user_data)
        try:
            return self.rt.recv_complete(self.rt.wait(user_data), addr)
        except (TransportFailure, RemoteError):
            return None

    def handle(self, job: Job, endpoint: Cap, incoming: Incoming) -> bytes | StdioRequest | None:
        """Output to show (bytes), a read to answer later, or None (already refused)."""
        method = self.iface.method_by_ordinal(incoming.method_id)
        try:
            if method is None:
                raise RemoteError("unimplemented", f"StdIO has no method @{incoming.method_id}")
            try:
                params = decode(method.params, incoming.params)
            except DecodeError as exc:
                raise RemoteError("invalidArgument", f"malformed params: {exc}") from None
            if method.name == "write":
                data = params["data"]
                if len(data) > MAX_WRITE:
                    raise RemoteError("invalidArgument", f"at most {MAX_WRITE} bytes a write")
                self.answer(endpoint, incoming.call_id, "write", {})
                return data
            prompt, hidden = params.get("prompt", ""), bool(params.get("hidden", False))
            return StdioRequest(endpoint, incoming.call_id, method.name, prompt, hidden)
        except RemoteError as exc:
            self.refuse(endpoint, incoming.call_id, exc)
            return None

    def answer(self, endpoint: Cap, call_id: int, method: str, results: dict) -> None:
        message = encode(self.iface.method(method).results, results)
        with contextlib.suppress(TransportFailure):  # the child is gone: nobody to answer
            self.rt.return_(endpoint, call_id, message)

    def answer_line(self, request: StdioRequest, line: str | None) -> None:
        """Answer a read with a line, or with end of input (None)."""
        if request.method == "readLine":
            results = {"line": line or "", "eof": line is None}
        else:
            data = b"" if line is None else (line + "\n").encode()
            results = {"data": data, "eof": line is None}
        self.answer(request.endpoint, request.call_id, request.method, results)

    def refuse(self, endpoint: Cap, call_id: int, error: RemoteError) -> None:
        message = encode(
            self.rt.bundle.struct("CapException"), {"type": error.type, "message": error.message}
        )
        with contextlib.suppress(TransportFailure):
            self.rt.return_(endpoint, call_id, message, exception=True)
