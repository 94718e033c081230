"""The two syscalls, as the host provides them to a process."""

from __future__ import annotations

from typing import NoReturn, Protocol


class Syscalls(Protocol):
    def cap_enter(self, min_complete: int, timeout_ns: int | None) -> int:
        """Hand the kernel the SQ, then wait until `min_complete` CQEs are
        available or `timeout_ns` passes (None: no limit). Returns how many
        CQEs are available. Raises ProcessEnded if the process was ended."""

    def exit(self, code: int) -> NoReturn:
        """End this process with `code`."""
