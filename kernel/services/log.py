"""Log: where a process writes leveled records into the kernel's bounded log.

The kernel stamps each record with the writer's pid, name and the time, so
a writer cannot speak for another process. Readers are SystemMonitor caps,
each seeing the records of its own scope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel.capobject import CallContext, KernelService
from kernel.errors import CapError
from kernel.monitor import LEVELS

if TYPE_CHECKING:
    from kernel.kernel import Kernel

MAX_TEXT = 1024


class Log(KernelService):
    interface_name = "Log"

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self.kernel = kernel

    def write(self, ctx: CallContext, params: dict) -> dict:
        level, text = params["level"], params["text"]
        if level not in LEVELS:  # an ordinal this schema does not define decodes as an int
            raise CapError.invalid_argument(f"level {level!r}: use one of {', '.join(LEVELS)}")
        if len(text) > MAX_TEXT:
            raise CapError.invalid_argument(
                f"at most {MAX_TEXT} characters a record, not {len(text)}"
            )
        self.kernel.monitor.log(ctx.caller, level, text)
        return {}
