"""A live session of any kind: the unit of ownership and of failure.

Every kind (a QEMU session, a relayed tab, a mirror of another replica's session)
shares this: an id, an output stream that clients read at their own offsets, the
clients attached, observers told of input and resizes (recorders), and one task group
that owns everything running for the session. The kind's own work is `serve()`; the
session's recorders and its replica publisher join the group through `start()`.

`run()` is the group's owner. Whatever a task in it raises ends *this* session with a
reason that the page (the stream's `exit`), the API (`reason`), the log and the
`capos_session_faults` counter show; it never reaches the directory, a sibling or the
server. When `serve()` returns, the stream closes and the other tasks get a moment to
finish on their own (a recorder writes its last line, the publisher tells Redis the
session ended) before they are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

from server.stream import OutputStream

if TYPE_CHECKING:
    from server.monitorfeed import SnapshotFeed

log = logging.getLogger("capos.sessions")

FINISH_GRACE_S = 2.0  # tasks left when the session's own work ends may finish this long
SHUTTING_DOWN = "the server is shutting down"
HANGUP_STATUS = 128 + signal.SIGHUP  # a shell's status when its terminal went away


class SessionError(Exception):
    """A request about a session cannot be met; the message says why."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status that fits


class LiveSession(ABC):
    backend: ClassVar[str]  # "qemu", "tab" or "mirror"

    def __init__(
        self, stream: OutputStream, session_id: str | None = None, client: str = ""
    ) -> None:
        """`client`: who made it, for the per-client limits (server/admission.py)."""
        self.id = session_id or secrets.token_urlsafe(16)
        self.client = client
        self.stream = stream
        self.created = time.time()
        self.reason: str | None = None  # why it ended (or is ending)
        self.fault: str | None = None  # set when a task of it failed: what failed
        self.ended_at: float | None = None  # monotonic, once everything of it has stopped
        # Its exit status, a recording's last event: its main process's (a QEMU session's
        # VM) when that exited by itself, else a hangup's, as ended from outside (its
        # owner, a limit, a closed tab, the server stopping).
        self.exit_status = HANGUP_STATUS
        self.clients = 0
        self.idle_since = time.monotonic()
        # Told of input ("i") and resizes ("r", "COLSxROWS"): recorders (server/recordings.py).
        self.observers: list[Callable[[str, str], None]] = []
        # Its system's monitor snapshots, for monitor sockets and recordings; None for a
        # kind that has none here (a mirror of another replica's session).
        self.monitor: SnapshotFeed | None = None
        self.ending = asyncio.Event()  # set with `reason`: serve() returns soon after
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def state(self) -> str:
        return "ended" if self.reason is not None else "running"

    def info(self) -> dict:
        info: dict[str, Any] = {
            "id": self.id,
            "backend": self.backend,
            "state": self.state,
            "created": self.created,
            "clients": self.clients,
            "output_offset": self.stream.end,
        }
        if self.reason is not None:
            info["reason"] = self.reason
        return info

    # --- what clients do ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def attached(self) -> AsyncIterator[None]:
        """A client is here for the duration of the block."""
        self.clients += 1
        self.attach_changed()
        try:
            yield
        finally:
            self.clients -= 1
            self.idle_since = time.monotonic()
            self.attach_changed()

    def attach_changed(self) -> None:  # noqa: B027 (most kinds do nothing then)
        """A client came or went (a kind that suspends when idle wakes its supervisor)."""

    @abstractmethod
    def input(self, data: bytes) -> None:
        """Keystrokes from the owner or a drive link; SessionError when they cannot go."""

    async def resize(self, cols: int, rows: int) -> None:
        self.observe("r", f"{cols}x{rows}")

    def want_keys(self, wanted: bool) -> None:  # noqa: B027 (most kinds have them already)
        """Whether a recording that keeps keystrokes runs: a kind whose owner types
        elsewhere (a tab) then sends them here, to be observed as input."""

    def observe(self, kind: str, data: str) -> None:
        """Tell the observers (recorders) of input or a resize."""
        for observer in self.observers:
            observer(kind, data)

    def end(self, reason: str) -> None:
        """End the session: its own work stops, then every task it owns."""
        if self.reason is None:
            self.reason = reason
        self.ending.set()

    # --- the task group -----------------------------------------------------------------

    @abstractmethod
    async def serve(self) -> None:
        """The kind's own work, until the session ends (`ending` is set, or it ends itself)."""

    def start(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run `coro` in this session's task group, ending with the session; a failure in
        it ends the session with `what` named in the reason."""
        if self._group is None or self.ended_at is not None:
            coro.close()
            raise SessionError(f"the session has ended: {self.reason or 'not started'}", 410)
        task = self._group.create_task(self._guarded(coro, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """Own every task of this session until it has ended; raises nothing but a
        cancellation from its owner (the directory, when the server stops)."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                await self._guarded(self.serve(), "the session")
                self.end(self.reason or "the session ended")
                self.stream.close(self.reason or "the session ended")
                await self._let_finish()
        finally:
            self._group = None
            self.end(self.reason or SHUTTING_DOWN)
            self.stream.close(self.reason or SHUTTING_DOWN)
            self.ended_at = time.monotonic()

    async def _let_finish(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=FINISH_GRACE_S)
        for task in self._tasks:
            task.cancel()

    async def _guarded(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await coro
        except Exception as exc:
            log.exception("capOS: %s of %s session %s failed", what, self.backend, self.id[:8])
            self.fault = f"{what}: {type(exc).__name__}"
            self.end(
                f"the server failed serving this session ({what}: {exc or type(exc).__name__})"
            )
