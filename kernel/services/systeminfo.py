"""SystemInfo: facts about this system from the boot manifest's kernelParams."""

from __future__ import annotations

from kernel.capobject import CallContext, KernelService


class SystemInfo(KernelService):
    interface_name = "SystemInfo"

    def __init__(self, motd: str, hostname: str) -> None:
        super().__init__()
        self._motd = motd
        self._hostname = hostname

    def motd(self, ctx: CallContext, params: dict) -> dict:
        return {"text": self._motd}

    def hostname(self, ctx: CallContext, params: dict) -> dict:
        return {"name": self._hostname}
