"""The directory of live sessions: every kind in one place, each run by its own task.

Everything that asks about sessions (the APIs, sharing, agents, replicas, metrics)
asks here. The directory's task group holds one task per session, `session.run()`,
which nothing raised inside a session leaves; the directory counts sessions by kind
and the faults that ended any. It keeps ended sessions for a while, so a client that
asks after the end learns why. An id it does not know may name a session kept from
before a restart: it asks its keeper (server/hosting.py), which brings that one back.

When the server stops, every session is told to end and gets SHUTDOWN_GRACE_S, all of
them together, to do it cleanly (a QEMU session saves its VM meanwhile, each save
bounded by server/vmstate.py's SAVE_TIMEOUT_S); what has not ended by then is cancelled,
and is lost as in a crash.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, TypeVar

from server.metrics import Metrics
from server.sessions.live import SHUTTING_DOWN, LiveSession, SessionError

S = TypeVar("S", bound=LiveSession)
SHUTDOWN_GRACE_S = 45.0  # every session together, when the server stops


ENDED_KEPT = 256  # ended sessions still answering with their reason, at most
ENDED_KEPT_S = 600.0  # and for at most this long


class Keeper(Protocol):
    def claim(self, session_id: str) -> LiveSession | None:
        """The session kept under this id from before a restart, added to the directory
        again; None when none is."""


class SessionDirectory:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.sessions: dict[str, LiveSession] = {}
        self.keeper: Keeper | None = None  # set while the QEMU hosting runs
        self._group: asyncio.TaskGroup | None = None
        self._runs: set[asyncio.Task] = set()

    async def run(self) -> None:
        """Own every session's task until cancelled; then end them all, cleanly if they can."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                await asyncio.Future()
            except asyncio.CancelledError:
                self._group = None
                for session in self.sessions.values():
                    session.end(SHUTTING_DOWN)
                if self._runs:
                    await asyncio.wait(set(self._runs), timeout=SHUTDOWN_GRACE_S)
                raise

    @property
    def accepting(self) -> bool:
        return self._group is not None

    def add(self, session: S) -> S:
        """Start running `session`; it is found here from now on."""
        if self._group is None:
            raise SessionError("the server is not accepting sessions (starting or stopping)")
        self._forget_old()
        self.sessions[session.id] = session
        task = self._group.create_task(self._own(session))
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        return session

    async def _own(self, session: LiveSession) -> None:
        live = self.metrics.sessions.labels(backend=session.backend)
        live.inc()
        try:
            await session.run()
        finally:
            live.dec()
            if session.fault is not None:
                self.metrics.session_faults.labels(backend=session.backend).inc()

    def get(self, session_id: str, kind: type[S]) -> S | None:
        """The session with this id, if it is of `kind`."""
        session = self.find(session_id)
        return session if isinstance(session, kind) else None

    def find(self, session_id: str) -> LiveSession | None:
        """The session with this id, of any kind; one kept from before a restart comes back."""
        session = self.sessions.get(session_id)
        if session is None and self.keeper is not None and self.accepting:
            session = self.keeper.claim(session_id)
        return session

    def live(self, kind: type[S]) -> list[S]:
        """The sessions of `kind` that have not ended."""
        return [s for s in self.running() if isinstance(s, kind)]

    def running(self) -> list[LiveSession]:
        """Every session, of any kind, that has not ended."""
        return [s for s in self.sessions.values() if s.reason is None]

    def _forget_old(self) -> None:
        now = time.monotonic()
        ended = sorted(
            (s for s in self.sessions.values() if s.ended_at is not None),
            key=lambda s: s.ended_at or 0.0,
        )
        excess = max(0, len(ended) - ENDED_KEPT)
        for n, session in enumerate(ended):
            if n < excess or now - (session.ended_at or now) > ENDED_KEPT_S:
                del self.sessions[session.id]
