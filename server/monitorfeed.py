"""One QEMU session's monitor snapshots, asked of its guest once for every socket that
watches it.

The guest's SystemMonitor answers a whole-system snapshot over the control channel,
which costs the guest and the server a decode each time. However many monitor sockets
watch a session, one feed (a task in the session's own group, while anyone watches)
polls at most every POLL_S and hands each socket the snapshots whose change counter
moved; with nobody watching, nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from server.control import ControlError
from server.sessions.live import SessionError
from server.supervise import any_set

if TYPE_CHECKING:
    from server.sessions.qemu import QemuSession

POLL_S = 0.5


async def snapshot(session: QemuSession) -> dict:
    """The guest's snapshot now; ControlError while the session is not running."""
    vm = session.vm
    if session.state != "running" or vm is None:
        raise ControlError(
            f"the session is {session.state}: attach its terminal to wake it, then ask again"
        )
    return await vm.control.monitor()


class MonitorFeed:
    def __init__(self, session: QemuSession) -> None:
        self.session = session
        self.latest: dict | None = None
        self.watchers = 0
        self._polling = False
        self._changed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """A socket watches for the duration of the block; the first starts the polling."""
        self.watchers += 1
        try:
            if not self._polling:
                with contextlib.suppress(SessionError):  # ended: next() says so
                    self.session.start(self._poll(), "its monitor feed")
                    self._polling = True
            yield
        finally:
            self.watchers -= 1

    async def next(self, seen: int | None) -> dict | None:
        """The first snapshot whose change counter is not `seen`; None once the session ends."""
        while self.session.reason is None:
            changed = self._changed
            if self.latest is not None and self.latest["seq"] != seen:
                return self.latest
            await any_set(changed, self.session.ending)
        return None

    async def _poll(self) -> None:
        try:
            while self.watchers and self.session.reason is None:
                with contextlib.suppress(ControlError, TimeoutError):  # suspended, restoring
                    current = await snapshot(self.session)
                    if self.latest is None or current["seq"] != self.latest["seq"]:
                        self.latest = current
                        self._wake()
                await asyncio.sleep(POLL_S)
        finally:
            self._polling = False
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
