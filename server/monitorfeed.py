"""A session's monitor snapshots, gathered once for everyone who watches it.

Monitor sockets and recordings (server/recording.py) watch a session's feed: while
anyone does, the feed gathers snapshots and hands each watcher those whose change
counter (`seq`) moved; with nobody watching, nothing is gathered. Two kinds:

- a QEMU session's guest answers a whole-system snapshot over the control channel,
  which costs the guest and the server a decode each time, so one `MonitorFeed` (a
  task in the session's own group) polls at most every POLL_S for every watcher;
- a tab session's kernel runs in its owner's tab, which pushes snapshots over its relay
  (server/sessions/tab.py) while the `PushedFeed` asks it to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from server.control import ControlError
from server.sessions.live import SessionError
from server.supervise import any_set

if TYPE_CHECKING:
    from server.sessions.live import LiveSession
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


class SnapshotFeed:
    """The newest snapshot, and the watchers waiting for the next."""

    def __init__(self, session: LiveSession) -> None:
        self.session = session
        self.latest: dict | None = None
        self.watchers = 0
        self._changed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Someone watches for the duration of the block."""
        self.watchers += 1
        try:
            self._watched()
            yield
        finally:
            self.watchers -= 1
            self._unwatched()

    def _watched(self) -> None:
        """A watcher came: gather snapshots if not already."""

    def _unwatched(self) -> None:
        """A watcher went (a poll notices by itself)."""

    async def next(self, seen: int | None) -> dict | None:
        """The first snapshot whose change counter is not `seen`; None once the session ends."""
        while self.session.reason is None:
            changed = self._changed
            if self.latest is not None and self.latest["seq"] != seen:
                return self.latest
            await any_set(changed, self.session.ending)
        return None

    def publish(self, current: dict) -> None:
        """A snapshot gathered now: the watchers get it if its change counter moved."""
        if self.latest is None or current["seq"] != self.latest["seq"]:
            self.latest = current
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class MonitorFeed(SnapshotFeed):
    """A QEMU session's: polls its guest while anyone watches."""

    def __init__(self, session: QemuSession) -> None:
        super().__init__(session)
        self.guest = session
        self._polling = False

    def _watched(self) -> None:
        if not self._polling:
            with contextlib.suppress(SessionError):  # ended: next() says so
                self.session.start(self._poll(), "its monitor feed")
                self._polling = True

    async def _poll(self) -> None:
        try:
            while self.watchers and self.session.reason is None:
                with contextlib.suppress(ControlError, TimeoutError):  # suspended, restoring
                    self.publish(await snapshot(self.guest))
                await asyncio.sleep(POLL_S)
        finally:
            self._polling = False
            self._wake()


class PushedFeed(SnapshotFeed):
    """A tab session's: `ask(True)` when the first watcher comes (the tab then pushes
    snapshots, each `publish`ed), `ask(False)` when the last goes."""

    def __init__(self, session: LiveSession, ask: Callable[[bool], None]) -> None:
        super().__init__(session)
        self._ask = ask

    def _watched(self) -> None:
        if self.watchers == 1:
            self._ask(True)

    def _unwatched(self) -> None:
        if self.watchers == 0:
            self._ask(False)
            self.latest = None  # the tab stops pushing: what it sent last goes stale
