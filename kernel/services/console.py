"""Console: the simplest output a process can be granted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel.capobject import CallContext, KernelService
from kernel.errors import CapError

if TYPE_CHECKING:
    from kernel.kernel import Kernel

MAX_WRITE = 16 * 1024


class Console(KernelService):
    interface_name = "Console"

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self.kernel = kernel

    def write(self, ctx: CallContext, params: dict) -> dict:
        self._emit(ctx, params["data"])
        return {}

    def writeLine(self, ctx: CallContext, params: dict) -> dict:
        self._emit(ctx, params["text"].encode() + b"\n")
        return {}

    def _emit(self, ctx: CallContext, data: bytes) -> None:
        if len(data) > MAX_WRITE:
            raise CapError.invalid_argument(f"at most {MAX_WRITE} bytes a write, not {len(data)}")
        self.kernel.host.console_write(ctx.caller, data)
