"""Recording a session as an asciicast v3 file (`.cast`), one event a line.

The file is the header line (`{"version": 3, "term": {"cols", "rows", "type"}, ...}`),
then `[interval, code, data]` lines, each interval in seconds since the event before:
`o` output, `r` resize ("COLSxROWS"), `i` input (only when the owner opted in: the
player's keystroke overlay shows it), `m` markers (tour steps, or on demand), and `x`
the session's exit status when the session ends while recording. Intervals are whole
microseconds, so their running sum is each event's exact time (server/castformat.py
turns a cast into v2 for older tools). Every line is written whole and flushed at once,
so whatever the server has written is a valid cast even if it is killed mid-recording;
`repair` trims a torn last line left by a crash. A recorder reads the session's output
stream like any viewer, so a recording never slows the session. Beside the cast it
keeps the session's monitor timeline (server/monitortimeline.py) on the same clock,
watching the session's monitor feed like a monitor socket does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from server.settings import RecordingLimits
from server.stream import Chunk, Ended, OutputStream, Reset
from server.supervise import race

if TYPE_CHECKING:
    from server.monitorfeed import SnapshotFeed
    from server.monitortimeline import TimelineWriter

READ_CHUNK = 16 * 1024
KEPT = "what came before is kept"
TERM_TYPE = "xterm-256color"  # what the pages' xterm.js emulates
FREE_CHECK_BYTES = 64 * 1024  # how often (in bytes written) a recorder looks at the disk
log = logging.getLogger("capos.recordings")


def free_mib(path: Path) -> float:
    """Free space, for this server's user, on the file system that holds `path`."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize / (1024 * 1024)


class CastWriter:
    """Appends asciicast v3 lines to a file, each flushed whole."""

    def __init__(self, path: Path, cols: int, rows: int, title: str) -> None:
        self.path = path
        self.started = time.monotonic()
        self._last_us = 0  # the time of the last event written, in µs since the start
        # Only the server's user may read a cast: its replay link is a secret.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(descriptor, "w", encoding="utf-8", buffering=1)  # line-buffered
        header = {
            "version": 3,
            "term": {"cols": cols, "rows": rows, "type": TERM_TYPE},
            "timestamp": int(time.time()),
            "title": title,
        }
        self.size = 0
        self._write(json.dumps(header, ensure_ascii=False) + "\n")

    def _write(self, line: str) -> None:
        self._file.write(line)
        self.size += len(line.encode())

    def _event_line(self, kind: str, data: str) -> tuple[str, int]:
        """The event's line and its time (µs since the start)."""
        now_us = max(self._last_us, round(self.elapsed() * 1_000_000))
        return event_line(now_us - self._last_us, kind, data), now_us

    def event(self, kind: str, data: str) -> None:
        line, now_us = self._event_line(kind, data)
        self._write(line)
        self._last_us = now_us  # only once written: a torn line is dropped, not counted

    def end_after_failure(self, kind: str, data: str) -> None:
        """After a write failed: close the file, drop the line it took only part of (which
        frees that much), and add this one last event if the disk takes it."""
        with contextlib.suppress(OSError):
            self._file.close()
        repair(self.path)
        line, _ = self._event_line(kind, data)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def close(self) -> None:
        self._file.close()


def event_line(interval_us: int, kind: str, data: str) -> str:
    """`[seconds, kind, data]` with the seconds written to the microsecond, as asciinema
    writes them (`0.248848`), never in exponent form. A lone surrogate (a JSON body may
    hold one: `"\\ud800"`) becomes "?", so the line is valid UTF-8 as the format asks."""
    text = data.encode(errors="replace").decode()
    return f"[{seconds(interval_us)}, {json.dumps(kind)}, {json.dumps(text, ensure_ascii=False)}]\n"


def seconds(us: int) -> str:
    """`us` microseconds as seconds with six decimals, never in exponent form."""
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def repair(path: Path) -> None:
    """Trim a torn last line (a crash mid-write) so the file parses as a cast again."""
    with path.open("rb+") as file:
        data = file.read()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            file.truncate(keep)


class Recorder:
    """Writes one session's output (and resizes, input, markers, its exit) into a cast until
    stopped."""

    def __init__(
        self,
        stream: OutputStream,
        writer: CastWriter,
        limits: RecordingLimits,
        record_input: bool,
        directory: Path,
        room: Callable[[int], str | None],
        grew: Callable[[int], None],
        exit_status: Callable[[], int],
        monitor: tuple[SnapshotFeed, TimelineWriter] | None = None,
    ) -> None:
        """`directory`: where the cast is, whose disk must keep `limits.min_free_mib` free;
        `room(n)`: why the recording may not grow by n bytes (a quota it would pass), or
        None; `grew(n)`: it grew by n bytes (server/quota.py counts them); `exit_status()`:
        the session's, once its stream has ended (the `x` event); `monitor`: the session's
        monitor feed and the timeline to keep it in, if it has one."""
        self.stream, self.writer, self.limits = stream, writer, limits
        self.monitor = monitor
        self._room, self._grew, self._exit_status = room, grew, exit_status
        self.record_input = record_input
        self.directory = directory
        self.reason: str | None = None  # why it stopped, once it has
        self._stop = asyncio.Event()
        self._next_free_check = 0

    @property
    def size(self) -> int:
        """What the recording takes on the disk: its cast and its timeline."""
        return self.writer.size + (self.monitor[1].size if self.monitor is not None else 0)

    def observe(self, kind: str, data: str) -> None:
        """A resize ("r") or keystrokes ("i") on the session."""
        if kind == "r" or (kind == "i" and self.record_input):
            self._write(kind, data)

    def mark(self, label: str) -> None:
        self._write("m", label[: self.limits.max_marker])

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._stop.set()

    def _write(self, kind: str, data: str) -> None:
        if self.reason is not None:  # stopped (perhaps deleted, its quota released)
            return
        framing = 40  # the line's brackets, time, kind and quotes: at most 40 bytes
        over = self._room(len(data.encode(errors="replace")) + framing)
        if over is not None:
            self._stop_with_marker(over)
            return
        try:
            if self.writer.size >= self._next_free_check:
                self._next_free_check = self.writer.size + FREE_CHECK_BYTES
                free = free_mib(self.directory)
                if free < self.limits.min_free_mib:
                    self._stop_with_marker(
                        f"the server's disk is nearly full ({free:.0f} MiB free); {KEPT}"
                    )
                    return
            before = self.writer.size
            self.writer.event(kind, data)
            self._grew(self.writer.size - before)
        except OSError as exc:
            log.warning("capOS: a recording could not be written: %s", exc)
            reason = f"the server could not write the recording ({exc.strerror or exc}); {KEPT}"
            self._stop_with_marker(reason, failed=True)

    def _stop_with_marker(self, reason: str, failed: bool = False) -> None:
        """Stop, leaving a marker (a chapter in the player) that says why, if it still fits;
        `failed`: the last write failed, so the file is mended first."""
        self.stop(reason)
        marker = f"recording stopped: {reason}"[: self.limits.max_marker]
        with contextlib.suppress(OSError):  # if the disk refuses even that, the reason
            if failed:  # is still in the recording's info
                self.writer.end_after_failure("m", marker)
            else:
                self.writer.event("m", marker)

    async def run(self) -> None:
        """Record from the stream's current end until stopped, a limit, or the session's end."""
        left = self.limits.max_duration_s - self.writer.elapsed()
        try:
            async with asyncio.timeout(max(0.0, left)):
                await race(self._copy(self.stream.end), self._chart(), self._stop.wait())
        except TimeoutError:
            limit = self.limits.max_duration_s
            self.stop(
                f"the recording reached its time limit of {limit:.0f} s; what came before is kept"
            )
        finally:
            self.stop("the server is shutting down")
            try:
                self.writer.close()
            except OSError as exc:  # the last line could not be written
                log.warning("capOS: a recording could not be closed: %s", exc)
            with contextlib.suppress(OSError):
                repair(self.writer.path)  # a line the disk took only half of
            if self.monitor is not None:
                with contextlib.suppress(OSError):
                    self.monitor[1].close()
                    repair(self.monitor[1].path)

    async def _copy(self, offset: int) -> None:
        """The stream into the cast, from `offset` until the recorder stops or the stream ends."""
        while self.reason is None:
            item = await self.stream.next(offset, READ_CHUNK)
            if isinstance(item, Chunk):
                self._write("o", item.data)
                offset = item.offset + len(item.data.encode())
            elif isinstance(item, Reset):
                offset = item.offset
            elif isinstance(item, Ended):
                self._write("x", str(self._exit_status()))
                self.stop(f"the session ended: {item.reason}")

    async def _chart(self) -> None:
        """The session's monitor snapshots into the timeline, until the recorder stops."""
        if self.monitor is not None:
            feed, timeline = self.monitor
            async with feed.watching():
                seen = None
                while self.reason is None and (current := await feed.next(seen)) is not None:
                    seen = current["seq"]
                    if not self._chart_one(timeline, current):
                        break
        await self._stop.wait()  # the cast goes on

    def _chart_one(self, timeline: TimelineWriter, snapshot: dict) -> bool:
        """One snapshot into the timeline; False when the timeline stopped, with a note
        in it and a marker in the cast saying why."""
        at = self.writer.elapsed()
        try:
            step = timeline.step(snapshot, at)
            if step is None:
                return True
            why = self._room(step.size) or timeline.over(step.size)
            if why is None:
                timeline.write(step)
                self._grew(step.size)
                return True
            self._grew(timeline.note(at, f"stopped: {why}"))
        except ValueError as exc:  # BadSnapshot: a feed passes only checked ones
            why = str(exc)
        except OSError as exc:
            log.warning("capOS: a monitor timeline could not be written: %s", exc)
            why = f"the server could not write it ({exc.strerror or exc})"
        self.mark(f"monitor timeline stopped: {why}; the terminal is still recorded")
        return False
