"""Recordings: which sessions are being recorded, and every cast kept under the data directory.

A recording has two names: a short public `id`, which its owner's API paths use
(`/api/sessions/{session}/recordings/{id}`) and its cast's file is named by, and a
secret token (256 bits), its replay link (`/r/{token}`), handed out once when it
starts and kept only as its SHA-256 digest, like a share link's. It expires like a
share link (at most `retention_s` after it started, when the retention sweep deletes
it) and its owner (whoever holds the session id) may stop or delete it. It counts
against the disk quotas (server/quota.py) of its session and of the address that
started it. Each running recorder is a task in its session's task group
(server/sessions/live.py), so it ends with the session, and each cast is valid however
it stopped. A disk that fails or fills, or a quota reached, stops the recording with a
marker saying why; the session goes on. A session with a system monitor (a QEMU or a
tab session) gets a monitor timeline beside its cast (server/monitortimeline.py), in
the same quotas.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from server.monitortimeline import TimelineWriter, timeline_path
from server.quota import DiskQuota, Owner
from server.recording import CastWriter, Recorder, RecordingLimits, free_mib, repair
from server.sessions.live import LiveSession
from server.shares import TOKEN_RE, ShareError, digest
from server.store import Store, StoreError, private_dir

MAX_ACTIVE_PER_SESSION = 2


@dataclass(eq=False)
class Recording:
    id: str  # public: the owner's API paths and the cast's file name
    token_digest: str  # of the replay link's token, which is never kept
    session_id: str
    client_ip: str  # who started it: the recording counts against this address's quota
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

    @property
    def owner(self) -> Owner:
        return Owner(self.session_id, self.client_ip)

    def info(self, token: str | None = None) -> dict:
        """What the owner sees; with `token` (only when it starts) its replay links too."""
        size = self.recorder.size if self.recorder is not None else self.size
        links = {"url": f"/r/{token}", "cast": f"/r/{token}.cast"} if token else {}
        if token and self.recorder is not None and self.recorder.monitor is not None:
            links["monitor"] = f"/r/{token}.monitor"
        info = {
            "id": self.id,
            **links,
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
            "token_digest": self.token_digest,
            "session_id": self.session_id,
            "client_ip": self.client_ip,
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
        self.recordings: dict[str, Recording] = {}  # by public id
        self._by_digest: dict[str, Recording] = {}
        self.quota = DiskQuota(limits)

    async def load(self) -> None:
        """Reload what the store kept; a recording cut short by a restart is closed and kept.

        A cast still named as the first schema named it (by its replay token) is renamed
        by its public id; a cast no row names (its recording was deleted, or the server
        died starting it) is deleted, so the quota counts all that is on the disk."""
        private_dir(self.directory)
        for row in await self.store.recordings():
            recording = Recording(**{**row, "record_input": bool(row["record_input"])})
            named = f"{recording.id}.cast"
            if recording.file != named and (self.directory / recording.file).exists():
                (self.directory / recording.file).rename(self.directory / named)
                recording.file = named
                await self.store.put_recording(recording.row())
            path = self.path(recording)
            if not path.exists():
                continue
            path.chmod(0o600)
            if recording.stopped is None:
                repair(path)
                recording.stopped = time.time()
                recording.reason = "the server restarted while recording; what came before is kept"
                timeline = timeline_path(path)
                if timeline.exists():
                    repair(timeline)
                recording.size = sum(p.stat().st_size for p in (path, timeline) if p.exists())
                await self.store.put_recording(recording.row())
            self._add(recording)
        kept = {recording.file for recording in self.recordings.values()}
        for cast in self.directory.glob("*.cast"):
            if cast.name not in kept:
                cast.unlink()
        for timeline in self.directory.glob("*.monitor"):
            if timeline.with_suffix(".cast").name not in kept:
                timeline.unlink()

    def _add(self, recording: Recording) -> None:
        self.recordings[recording.id] = recording
        self._by_digest[recording.token_digest] = recording
        self.quota.add(recording.id, recording.owner, recording.size, recording.expires_at)

    def _drop(self, recording: Recording) -> None:
        if self.recordings.pop(recording.id, None) is not None:
            del self._by_digest[recording.token_digest]
            self.quota.remove(recording.id)

    def path(self, recording: Recording) -> Path:
        return self.directory / recording.file

    async def start(
        self,
        session: LiveSession,
        client_ip: str,
        *,
        record_input: bool,
        cols: int,
        rows: int,
        expires_in: float,
    ) -> tuple[Recording, str]:
        """A new recording and its replay token, which the caller hands out once: it is
        not kept. ShareError (QuotaError past a quota) when it cannot start."""
        self._check_free_space()
        active = [r for r in self.of_session(session.id) if r.recorder is not None]
        if len(active) >= MAX_ACTIVE_PER_SESSION:
            raise ShareError(
                f"this session already has {len(active)} recordings running, the most allowed; "
                "stop one first",
                429,
            )
        self.quota.admit(Owner(session.id, client_ip))
        recording_id, token = secrets.token_urlsafe(9), secrets.token_urlsafe(32)
        recording = Recording(
            id=recording_id,
            token_digest=digest(token),
            session_id=session.id,
            client_ip=client_ip,
            file=f"{recording_id}.cast",
            started=time.time(),
            expires_at=time.time() + expires_in,
            record_input=record_input,
        )
        path = self.path(recording)
        try:
            writer = CastWriter(path, cols, rows, title="capOS Playground session")
        except OSError as exc:
            raise ShareError(f"the server cannot write recordings now ({exc})", 507) from None
        monitor = None
        try:
            if session.monitor is not None:
                timeline = TimelineWriter(timeline_path(path), self.limits.max_timeline_bytes)
                monitor = (session.monitor, timeline)
            await self.store.put_recording(recording.row())
        except (OSError, StoreError) as exc:
            writer.close()
            if monitor is not None:
                monitor[1].close()
            self._remove_files(path)
            if isinstance(exc, StoreError):
                raise ShareError(str(exc), 503) from None
            raise ShareError(f"the server cannot write recordings now ({exc})", 507) from None
        self._add(recording)
        recording.recorder = Recorder(
            session.stream,
            writer,
            self.limits,
            record_input,
            self.directory,
            room=lambda more: self.quota.over(recording_id, more),
            grew=lambda more: self.quota.grow(recording_id, more),
            exit_status=lambda: session.exit_status,
            monitor=monitor,
        )
        self.quota.settle(recording.id, recording.recorder.size)  # the headers
        session.start(self._record(session, recording, recording.recorder), "a recorder")
        return recording, token

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
        self._keys(session)
        try:
            await recorder.run()
        finally:
            with contextlib.suppress(ValueError):
                session.observers.remove(recorder.observe)
            recording.recorder = None
            self._keys(session)
            recording.stopped = time.time()
            recording.reason = recorder.reason
            recording.size = recorder.size
            if recording.id in self.recordings:  # not deleted meanwhile
                self.quota.settle(recording.id, recording.size)  # the last marker, a torn line
                with contextlib.suppress(StoreError):  # the store says so on /healthz
                    await asyncio.shield(self.store.update_recording(recording.row()))

    def _keys(self, session: LiveSession) -> None:
        """Tell the session whether a running recording of it keeps keystrokes."""
        running = [r for r in self.of_session(session.id) if r.recorder is not None]
        session.want_keys(any(r.record_input for r in running))

    def of_session(self, session_id: str) -> list[Recording]:
        return [r for r in self.recordings.values() if r.session_id == session_id]

    def get(self, recording_id: str) -> Recording | None:
        """The recording with this public id (the owner's API paths), or None."""
        return self.recordings.get(recording_id)

    def find(self, token: str) -> Recording | None:
        """The recording a replay token opens, or None; digests compared in constant time."""
        if not TOKEN_RE.fullmatch(token):
            return None
        wanted = digest(token)
        recording = self._by_digest.get(wanted)
        if recording is None or not secrets.compare_digest(recording.token_digest, wanted):
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
        """Stop it and delete its row and its cast; ShareError (503) when the store fails."""
        self.stop(recording)
        try:
            await self.store.delete_recording(recording.id)
        except StoreError as exc:
            raise ShareError(str(exc), 503) from None
        self._drop(recording)
        self._remove_files(self.path(recording))

    @staticmethod
    def _remove_files(cast: Path) -> None:
        cast.unlink(missing_ok=True)
        timeline_path(cast).unlink(missing_ok=True)

    def timeline(self, recording: Recording) -> Path | None:
        """Its monitor timeline, or None when it has none (its session had no monitor,
        or it was recorded before timelines were kept)."""
        path = timeline_path(self.path(recording))
        return path if path.exists() else None

    def expired(self, now: float) -> list[Recording]:
        return [r for r in self.recordings.values() if r.expires_at <= now]
