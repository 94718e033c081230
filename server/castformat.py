"""asciicast v2 and v3, each from the other: a recording downloads in either format.

Recordings are written as v3 (server/recording.py); those recorded before that are v2
and stay so on disk, and the replay page plays both. `?format=v2` (for older tools,
asciinema CLI 2.x) or `?format=v3` converts a cast line by line as it is read:

- v3 to v2: the header's `term` becomes `width` and `height` (its `type` goes to
  `env.TERM`, its `theme` to `theme`); each event's time is the running sum of the
  intervals up to it, in whole microseconds, so it never drifts; `o`, `i`, `m` and `r`
  pass, while `x` (the exit status), which v2 has no code for, and comments are left out.
- v2 to v3: the reverse; each interval is the time since the event before.

A last line without its newline (a recording still being written) is not whole yet and
is left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from server.recording import event_line

FORMATS = {"v2": 2, "v3": 3}
V2_CODES = frozenset("oimr")  # the event codes asciicast v2 has
SHARED_KEYS = ("timestamp", "idle_time_limit", "command", "title")  # same in both headers


def stored_version(path: Path) -> int:
    """The asciicast version of the cast at `path`, from its header line."""
    with path.open(encoding="utf-8") as file:
        return json.loads(file.readline())["version"]


def convert(path: Path, version: int) -> Iterator[str]:
    """The cast at `path` in the other version (`version`: 2 for a v3 cast, 3 for a v2
    one), a line at a time."""
    with path.open(encoding="utf-8") as file:
        header = json.loads(file.readline())
        to_v2 = version == 2
        converted = _v2_header(header) if to_v2 else _v3_header(header)
        yield json.dumps(converted, ensure_ascii=False) + "\n"
        before_us = 0  # the time of the event before, in µs since the start
        for line in file:
            if not line.endswith("\n") or not line.startswith("["):  # torn, comment, blank
                continue
            time_s, code, data = json.loads(line)
            if to_v2:
                before_us += round(time_s * 1_000_000)
                if code in V2_CODES:
                    yield event_line(before_us, code, data)
            else:
                now_us = max(before_us, round(time_s * 1_000_000))
                yield event_line(now_us - before_us, code, data)
                before_us = now_us


def _v2_header(v3: dict) -> dict:
    term = v3["term"]
    header = {"version": 2, "width": term["cols"], "height": term["rows"]}
    header |= {key: v3[key] for key in SHARED_KEYS if key in v3}
    env = dict(v3.get("env", {})) | ({"TERM": term["type"]} if "type" in term else {})
    if env:
        header["env"] = env
    if "theme" in term:
        header["theme"] = term["theme"]
    return header


def _v3_header(v2: dict) -> dict:
    env = dict(v2.get("env", {}))
    term = {"cols": v2["width"], "rows": v2["height"]}
    if "TERM" in env:
        term["type"] = env.pop("TERM")
    if "theme" in v2:
        term["theme"] = v2["theme"]
    header = {"version": 3, "term": term} | {key: v2[key] for key in SHARED_KEYS if key in v2}
    if env:
        header["env"] = env
    return header
