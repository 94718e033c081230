"""Recordings: which sessions are being recorded, and every cast kept under the data directory.

A recording's id is unguessable (256 bits) and is its replay link
(`/r/{id}`); it expires like a share link and its owner (whoever holds the
session id) may stop or delete it. Each running recorder is a task in this
session's task group (server/sessions/live.py), so it ends with the session,
and each cast is valid however it stopped. A disk that fails or fills stops
the recording with a marker saying why; the session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from server.recording import CastWriter, Recorder, RecordingLimits, free_mib, repair
from server.sessions.live import LiveSession
from server.shares import ShareError
from server.store import Store, StoreError

ID_LEN = 43  # token_urlsafe(32)
DEFAULT_EXPIRES_IN = 30 * 24 * 3600.0
MAX_EXPIRES_IN = 365 * 24 * 3600.0
MAX_ACTIVE_PER_SESSION = 2


@dataclass(eq=False)
class Recording:
    id: str
    session_id: str
    file: str  # under the recordings directory
    started: float
    expires_at: float
    record_input: bool
    stopped: float | None = None
    reason: str | None = None  # why it stopped
    size: int = 0
    recorder: Recorder | None = field(default=None, repr=False)  # while recording

    def gone(self) -> str | None:
        if time.time() >= self.expires_at:
            return "this recording has expired"
        return None

    def info(self) -> dict:
        size = self.recorder.writer.size if self.recorder is not None else self.size
        info = {
            "id": self.id,
            "url": f"/r/{self.id}",
            "cast": f"/r/{self.id}.cast",
            "recording": self.recorder is not None,
            "started": self.started,
            "stopped": self.stopped,
            "expires_at": self.expires_at,
            "input": self.record_input,
            "size": size,
        }
        if self.reason is not None:
            info["reason"] = self.reason
        return info

    def row(self) -> dict:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "file": self.file,
            "started": self.started,
            "expires_at": self.expires_at,
            "record_input": int(self.record_input),
            "stopped": self.stopped,
            "reason": self.reason,
            "size": self.size,
        }


class RecordingRegistry:
    def __init__(self, directory: Path, store: Store, limits: RecordingLimits) -> None:
        self.directory, self.store, self.limits = directory, store, limits
        self.recordings: dict[str, Recording] = {}

    async def load(self) -> None:
        """Reload what the store kept; a recording cut short by a restart is closed and kept."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for row in await self.store.recordings():
            recording = Recording(**{**row, "record_input": bool(row["record_input"])})
            path = self.path(recording)
            if not path.exists():
                continue
            if recording.stopped is None:
                repair(path)
                recording.stopped = time.time()
                recording.reason = "the server restarted while recording; what came before is kept"
                recording.size = path.stat().st_size
                await self.store.put_recording(recording.row())
            self.recordings[recording.id] = recording

    def path(self, recording: Recording) -> Path:
        return self.directory / recording.file

    async def start(
        self,
        session: LiveSession,
        *,
        record_input: bool,
        cols: int,
        rows: int,
        expires_in: float,
    ) -> Recording:
        self._check_free_space()
        active = [r for r in self.of_session(session.id) if r.recorder is not None]
        if len(active) >= MAX_ACTIVE_PER_SESSION:
            raise ShareError(
                f"this session already has {len(active)} recordings running, the most allowed; "
                "stop one first",
                429,
            )
        recording_id = secrets.token_urlsafe(32)
        recording = Recording(
            id=recording_id,
            session_id=session.id,
            file=f"{recording_id}.cast",
            started=time.time(),
            expires_at=time.time() + expires_in,
            record_input=record_input,
        )
        try:
            writer = CastWriter(self.path(recording), cols, rows, title="capOS Playground session")
        except OSError as exc:
            raise ShareError(f"the server cannot write recordings now ({exc})", 507) from None
        recording.recorder = Recorder(
            session.stream, writer, self.limits, record_input, self.directory
        )
        try:
            await self.store.put_recording(recording.row())
        except StoreError as exc:
            writer.close()
            self.path(recording).unlink(missing_ok=True)
            raise ShareError(str(exc), 503) from None
        self.recordings[recording.id] = recording
        session.start(self._record(session, recording, recording.recorder), "a recorder")
        return recording

    def _check_free_space(self) -> None:
        """Refuse a new recording before the disk under the data directory fills."""
        free = free_mib(self.directory)
        if free < self.limits.min_free_mib:
            raise ShareError(
                f"the server's disk is nearly full ({free:.0f} MiB free, it keeps "
                f"{self.limits.min_free_mib} MiB free): recordings are refused; try again later",
                507,
            )

    async def _record(self, session: LiveSession, recording: Recording, recorder: Recorder) -> None:
        session.observers.append(recorder.observe)
        try:
            await recorder.run()
        finally:
            with contextlib.suppress(ValueError):
                session.observers.remove(recorder.observe)
            recording.recorder = None
            recording.stopped = time.time()
            recording.reason = recorder.reason
            recording.size = recorder.writer.size
            if recording.id in self.recordings:  # not deleted meanwhile
                with contextlib.suppress(StoreError):  # the store says so on /healthz
                    await asyncio.shield(self.store.put_recording(recording.row()))

    def of_session(self, session_id: str) -> list[Recording]:
        return [r for r in self.recordings.values() if r.session_id == session_id]

    def find(self, recording_id: str) -> Recording | None:
        if len(recording_id) != ID_LEN:
            return None
        recording = self.recordings.get(recording_id)
        if recording is None or not secrets.compare_digest(recording.id, recording_id):
            return None
        return recording

    def mark(self, session_id: str, label: str) -> int:
        """A marker (a chapter in the player) in every running recording of the session.

        Tours call this at each step; it answers how many recordings got it.
        """
        marked = 0
        for recording in self.of_session(session_id):
            if recording.recorder is not None:
                recording.recorder.mark(label)
                marked += 1
        return marked

    def stop(self, recording: Recording) -> None:
        if recording.recorder is not None:
            recording.recorder.stop("stopped by the session's owner")

    async def delete(self, recording: Recording) -> None:
        self.stop(recording)
        try:
            await self.store.delete_recording(recording.id)
        except StoreError as exc:
            raise ShareError(str(exc), 503) from None
        self.recordings.pop(recording.id, None)
        self.path(recording).unlink(missing_ok=True)
