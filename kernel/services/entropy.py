"""EntropySource: random bytes from the host's CSPRNG."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kernel.capobject import CallContext, KernelService
from kernel.errors import CapError

if TYPE_CHECKING:
    from kernel.kernel import Kernel

MAX_RANDOM = 4096


class EntropySource(KernelService):
    interface_name = "EntropySource"

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self.kernel = kernel

    def getRandom(self, ctx: CallContext, params: dict) -> dict:
        size = params["len"]
        if size > MAX_RANDOM:
            raise CapError.invalid_argument(f"at most {MAX_RANDOM} bytes a call, not {size}")
        return {"data": self.kernel.host.entropy(size)}
