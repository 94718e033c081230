"""Timer: a monotonic clock, and sleeps the kernel answers when they expire."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel.capobject import PENDING, CallContext, KernelService, Pending
from kernel.errors import CapError

if TYPE_CHECKING:
    from kernel.kernel import Kernel

MAX_SLEEP_NS = 3600 * 10**9


class Timer(KernelService):
    interface_name = "Timer"

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self.kernel = kernel

    def now(self, ctx: CallContext, params: dict) -> dict:
        return {"ns": self.kernel.uptime_ns()}

    def sleep(self, ctx: CallContext, params: dict) -> dict | Pending:
        ns = params["ns"]
        if ns > MAX_SLEEP_NS:
            raise CapError.invalid_argument(f"sleep of {ns} ns is over the 1 hour limit")
        if ns == 0:
            return {}
        self.kernel.add_timer(self.kernel.host.now_ns() + ns, self.defer(ctx))
        return PENDING
