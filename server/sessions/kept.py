"""Suspended QEMU sessions, kept on disk so that they outlive the server process.

A suspended session is a state file (server/vmstate.py) and a row in SQLite holding all
that brings it back: its terminal's scrollback and offset, its lifetime and the CPU it
used, who made it (for the per-client limits) and why it was suspended. The row is keyed
by the SHA-256 digest of the session's id, its owner's credential, which is never kept.
A row is written when a session is suspended (idle, or because the server stops) and
deleted, with its file, when the session is restored or ends: a crash loses only the
sessions that were running.

After a restart the rows wait here until someone presents an id whose digest names one
(the owner's link, or a share link, whose row keeps the session it opens): `claim` hands
the row over, and the session comes back under the same id, suspended, to restore its VM
when a client attaches, as after any idle suspend. A row whose session's lifetime ends
while it waits is deleted with its file by the sweep, which also removes templates no
state file needs any more.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from server.shares import digest
from server.store import Store, StoreError
from server.vmstate import StateFiles

log = logging.getLogger("capos.sessions")
SWEEP_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Suspension:
    """A suspended session, as kept: its row in SQLite."""

    owner_digest: str  # SHA-256 of the session's id, the owner's credential (not kept)
    file: str  # its saved VM, in the state files' directory
    template: str | None  # the template the file was compressed against
    client: str  # who made the session, for the per-client limits (server/admission.py)
    created: float
    expires_at: float  # wall clock: the session's lifetime ends, suspended time included
    cpu_seconds: float  # what its VMs used so far, against its CPU budget
    suspended_at: float
    why: str  # why it was suspended
    size: int  # the state file's bytes
    scroll_start: int  # the terminal's offset of the scrollback's first byte
    scrollback: bytes  # the terminal output kept for clients that reconnect

    def info(self) -> dict:
        return {"why": self.why, "at": self.suspended_at, "state_bytes": self.size}


class KeptSessions:
    def __init__(self, store: Store, states: StateFiles) -> None:
        self.store, self.states = store, states
        self._waiting: dict[str, Suspension] = {}  # not claimed since the restart, by digest

    async def load(self) -> None:
        """Take the rows the last server left: those whose session may still live wait to
        be claimed; the rest go, and so does every file none of them needs."""
        now = time.time()
        for row in await self.store.sessions():
            suspension = Suspension(**row)
            why = self._unusable(suspension, now)
            if why is None:
                self._waiting[suspension.owner_digest] = suspension
            else:
                log.warning("capOS: a suspended session is dropped: %s", why)
                await self.forget(suspension)
        waiting = self._waiting.values()
        self.states.prune({n for s in waiting for n in (s.file, s.template) if n is not None})

    def _unusable(self, suspension: Suspension, now: float) -> str | None:
        """Why a kept session cannot come back, or None when it can."""
        if suspension.expires_at <= now:
            return "its lifetime ended"
        if not (self.states.root / suspension.file).is_file():
            return "its saved VM is gone"
        template = suspension.template
        if template is not None and not (self.states.root / template).is_file():
            return f"the template its VM was saved against ({template}) is gone"
        return None

    def claim(self, session_id: str) -> Suspension | None:
        """The suspension of the session with this id, if one waits: it is the caller's now."""
        return self._waiting.pop(digest(session_id), None)

    def waiting(self, client: str | None = None) -> int:
        """How many wait to be claimed (made by `client`, if given)."""
        return sum(1 for s in self._waiting.values() if client is None or s.client == client)

    async def keep(self, suspension: Suspension) -> None:
        """Write a suspended session's row; if SQLite cannot, it stays suspended in this
        process only (the store's health says why)."""
        try:
            await self.store.put_session(dataclasses.asdict(suspension))
        except StoreError as exc:
            log.warning("capOS: a suspended session will not outlive the server: %s", exc)

    async def forget(self, suspension: Suspension) -> None:
        """Delete a session's row and its saved VM: it was restored, or it ended."""
        self.states.remove(suspension.file)
        try:
            await self.store.delete_session(suspension.owner_digest)
        except StoreError as exc:  # the next start drops the row: its file is gone
            log.warning("capOS: a suspended session's row stays for now: %s", exc)

    async def run(self, template: Path) -> None:
        """Sweep every SWEEP_INTERVAL_S until cancelled; `template`: the pool's (made, or
        being made)."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            await self.sweep(template)

    async def sweep(self, template: Path | None) -> None:
        """Drop the waiting sessions whose lifetime has ended, and the templates that no
        state file needs (`template`, the pool's, stays)."""
        now = time.time()
        for suspension in [s for s in self._waiting.values() if s.expires_at <= now]:
            del self._waiting[suspension.owner_digest]
            await self.forget(suspension)
        keep = await self.store.session_files()
        self.states.prune(keep | ({template.name} if template else set()), templates_only=True)
