"""A recording's monitor timeline: what the system monitor saw, beside the cast.

The cast stays a plain asciicast any player reads; the timeline is a second file,
`{recording id}.monitor`, served at `/r/{token}.monitor`. JSON lines: the header
`{"version": 1, "format": "capos-monitor-timeline", "keep": {...}}`, then events
`[time, code, data]`, each `time` in seconds since the cast began, on the cast's own
clock (the running sum of its intervals), written to the microsecond:

- `k` a keyframe: the whole state, a MonitorSnapshot (schema/capos.capnp) whose
  `calls`, `logs` and `exits` hold the latest `keep[name]` records seen so far;
- `d` a delta from the state before: the scalars that changed (`seq`, `uptimeNs`,
  `tracing`, `scopePid`), `processes` started (whole) or changed (the pid and the
  fields that changed), `gone` (the pids that ended), `endpoints` (whole, when they
  changed), and the `calls`, `logs` and `exits` new since (by their seq);
- `n` a note: the timeline stopped early (a quota, a failed write), and why; the cast
  goes on, with a marker saying the same.

The state at any time is the last keyframe before it with the deltas after it applied
(web/static/monitor-timeline.js). A keyframe comes again once the deltas since the last
one outgrow it KEY_RATIO times, so seeking applies a bounded amount of deltas and the
keyframes add at most 1/KEY_RATIO to the file. Every snapshot, whoever sent it (a tab is
its owner's, and may lie), is checked and completed against the schema first: a
replay page can trust the shape of what it draws.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.codec import Bundle
from server.recording import seconds
from server.schemajson import SchemaMismatch, checked

VERSION = 1
FORMAT = "capos-monitor-timeline"
SUFFIX = ".monitor"
KEEP = {"calls": 200, "logs": 200, "exits": 64}  # the records a state keeps, newest last
SCALARS = ("seq", "uptimeNs", "scopePid", "tracing")
KEY_RATIO = 2
NOTE_ROOM = 400  # a stopping note may pass the timeline's own cap by this much
SNAPSHOT = Bundle.default().struct("MonitorSnapshot")


class BadSnapshot(ValueError):
    """Not a MonitorSnapshot the schema accepts; the message says what is wrong."""


def normalize(snapshot: object) -> dict[str, Any]:
    """The snapshot checked against the schema, with every field present (a list the
    sender left out is empty): what the replay page's views can draw."""
    try:
        return checked(snapshot, SNAPSHOT)
    except SchemaMismatch as exc:
        raise BadSnapshot(f"not a MonitorSnapshot: {exc}") from None


@dataclass(frozen=True)
class Step:
    """The next line of a timeline and the state it leaves, not yet written."""

    line: str
    state: dict[str, Any]
    key: bool

    @property
    def size(self) -> int:
        return len(self.line.encode())


class TimelineWriter:
    """Appends a recording's monitor states to its timeline, each line flushed whole."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path, self.max_bytes = path, max_bytes
        # Only the server's user may read it, as its cast: the replay link is a secret.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(descriptor, "w", encoding="utf-8", buffering=1)
        self.size = 0
        self._state: dict[str, Any] | None = None
        self._key_size = 0  # bytes of the last keyframe
        self._since_key = 0  # bytes of the deltas after it
        self._write(json.dumps({"version": VERSION, "format": FORMAT, "keep": KEEP}) + "\n")

    def _write(self, line: str) -> None:
        self._file.write(line)
        self.size += len(line.encode())

    def step(self, snapshot: dict[str, Any], at: float) -> Step | None:
        """The line that takes the timeline to `snapshot` at `at` (s on the cast's clock),
        or None when nothing the views show changed. BadSnapshot for a malformed one."""
        snapshot = normalize(snapshot)
        before = self._state
        if before is not None and snapshot["seq"] < before["seq"]:
            before = None  # a system that began again (a restored VM): start afresh
        state = advance(before, snapshot)
        if before is not None:
            change = delta(before, state)
            if not change.keys() - {"uptimeNs"}:
                return None
            step = Step(_line(at, "d", change), state, key=False)
            if self._since_key + step.size <= KEY_RATIO * self._key_size:
                return step
        return Step(_line(at, "k", state), state, key=True)

    def over(self, size: int) -> str | None:
        """Why the timeline may not grow by `size` bytes, or None."""
        if self.size + size > self.max_bytes:
            return f"the monitor timeline reached its limit of {self.max_bytes // 1024} KiB"
        return None

    def write(self, step: Step) -> None:
        self._write(step.line)
        self._state = step.state
        if step.key:
            self._key_size, self._since_key = step.size, 0
        else:
            self._since_key += step.size

    def note(self, at: float, text: str) -> int:
        """A last line saying why the timeline stops; the bytes it took."""
        line = _line(at, "n", text[: NOTE_ROOM - 40])
        self._write(line)
        return len(line.encode())

    def close(self) -> None:
        self._file.close()


def advance(state: dict[str, Any] | None, snapshot: dict[str, Any]) -> dict[str, Any]:
    """The state after `snapshot`: the snapshot, its appended records joined to those
    the state kept (by seq), the newest KEEP of each."""
    if state is None:
        return {**snapshot, **{name: snapshot[name][-keep:] for name, keep in KEEP.items()}}
    joined = dict(snapshot)
    for name, keep in KEEP.items():
        joined[name] = (state[name] + _newer(state[name], snapshot[name]))[-keep:]
    return joined


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed from `before` to `after`, as a `d` line holds it."""
    change: dict[str, Any] = {k: after[k] for k in SCALARS if after[k] != before[k]}
    old = {p["pid"]: p for p in before["processes"]}
    new = {p["pid"]: p for p in after["processes"]}
    changed = [_patch(old.get(pid), p) for pid, p in new.items() if old.get(pid) != p]
    gone = [pid for pid in old if pid not in new]
    if changed:
        change["processes"] = changed
    if gone:
        change["gone"] = gone
    if after["endpoints"] != before["endpoints"]:
        change["endpoints"] = after["endpoints"]
    for name in KEEP:
        fresh = _newer(before[name], after[name])
        if fresh:
            change[name] = fresh
    return change


def _patch(before: dict | None, after: dict) -> dict:
    """A process as a delta holds it: whole when it is new, else its pid and the fields
    that changed (its counters move with every call; its caps and ledger seldom do)."""
    if before is None:
        return after
    return {"pid": after["pid"]} | {k: v for k, v in after.items() if before.get(k) != v}


def _newer(kept: list[dict], records: list[dict]) -> list[dict]:
    last = kept[-1]["seq"] if kept else -1
    return [r for r in records if r["seq"] > last]


def _line(at: float, code: str, data: object) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"[{seconds(round(at * 1_000_000))}, {json.dumps(code)}, {text}]\n"


def timeline_path(cast: Path) -> Path:
    """Where the timeline beside the cast `cast` is."""
    return cast.with_suffix(SUFFIX)
