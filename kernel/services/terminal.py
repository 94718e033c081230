"""TerminalSession: the terminal a host attaches, as a capability.

The host owns the transport (a tty, a websocket, a serial line) and feeds
input in; the kernel keeps a bounded input buffer and answers reads, one
waiting reader at a time, in order. Bytes only: line editing is the
shell's business. A resize never touches the input: it answers the calls
waiting in `waitResize` (a tty's SIGWINCH), so a reader redraws at once.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from kernel.capobject import PENDING, CallContext, Deferred, KernelService, Pending
from kernel.errors import CapError

if TYPE_CHECKING:
    from kernel.kernel import Kernel

MAX_WRITE = 64 * 1024
MAX_READ = 64 * 1024
MAX_BUFFERED_INPUT = 256 * 1024  # a paste bigger than this is cut, and says so


class Terminal(KernelService):
    interface_name = "TerminalSession"

    def __init__(
        self, kernel: Kernel, name: str, *, interactive: bool, cols: int, rows: int
    ) -> None:
        super().__init__()
        self.kernel = kernel
        self.name = name
        self.interactive = interactive
        self.cols, self.rows = cols, rows
        self._input = bytearray()
        self._eof = False
        self._readers: deque[tuple[Deferred, int]] = deque()
        self._resize_waiters: list[Deferred] = []
        self.dropped_input = 0  # bytes refused because the buffer was full

    # --- the interface ---------------------------------------------------------------

    def write(self, ctx: CallContext, params: dict) -> dict:
        data = params["data"]
        if len(data) > MAX_WRITE:
            raise CapError.invalid_argument(f"at most {MAX_WRITE} bytes a write, not {len(data)}")
        self.kernel.host.terminal_write(self.name, data)
        return {}

    def read(self, ctx: CallContext, params: dict) -> dict | Pending:
        size = params["maxBytes"]
        if not 0 < size <= MAX_READ:
            raise CapError.invalid_argument(f"maxBytes must be 1..{MAX_READ}, not {size}")
        if self._input or self._eof:
            return self._take(size)
        self._readers.append((self.defer(ctx), size))
        return PENDING

    def size(self, ctx: CallContext, params: dict) -> dict:
        return {"size": {"cols": self.cols, "rows": self.rows}}

    def info(self, ctx: CallContext, params: dict) -> dict:
        return {"interactive": self.interactive}

    def waitResize(self, ctx: CallContext, params: dict) -> dict | Pending:
        known = params["known"]
        if (known["cols"], known["rows"]) != (self.cols, self.rows):
            return self.size(ctx, params)
        # Answered waiters leave at each resize; ones whose caller died or gave up, here.
        self._resize_waiters = [w for w in self._resize_waiters if w.live]
        self._resize_waiters.append(self.defer(ctx))
        return PENDING

    # --- the host's side ----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        room = MAX_BUFFERED_INPUT - len(self._input)
        if len(data) > room:
            self.dropped_input += len(data) - room
            data = data[:room]
        self._input += data
        self._serve()

    def close(self) -> None:
        self._eof = True
        self._serve()

    def resize(self, cols: int, rows: int) -> None:
        """A burst of resizes answers each waiter once: it asks again with the size it got,
        and a later resize answers that call at once."""
        size = (max(1, cols), max(1, rows))
        if size == (self.cols, self.rows):
            return
        self.cols, self.rows = size
        waiters, self._resize_waiters = self._resize_waiters, []
        for waiter in waiters:
            if waiter.live:
                waiter.resolve({"size": {"cols": self.cols, "rows": self.rows}})

    def _take(self, size: int) -> dict:
        data = bytes(self._input[:size])
        del self._input[:size]
        return {"data": data, "eof": not data and self._eof}

    def _serve(self) -> None:
        while self._readers and (self._input or self._eof):
            reader, size = self._readers.popleft()
            if reader.live:
                reader.resolve(self._take(size))
