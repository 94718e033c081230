"""A strict reader of monitor timelines (server/monitortimeline.py), and a small
system's story told in real kernel snapshots, for the timeline tests.

`read_timeline` answers the header and the events as (time in µs, code, data), raising
TimelineError for what the format does not allow: a header that is not version 1, a
line that is not `[seconds, code, data]` with its newline, a time going back, an
unknown code, a delta before any keyframe, a line after the note.
"""

from __future__ import annotations

import json

from harness import Machine

from kernel.services.monitor import SystemMonitor

CODES = {"k": dict, "d": dict, "n": str}
GRANTS = {"monitor": "systemMonitor", "log": "log", "console": "console"}


class TimelineError(AssertionError):
    pass


def _check(ok: object, what: str) -> None:
    if not ok:
        raise TimelineError(what)


def read_timeline(text: str) -> tuple[dict, list[tuple[int, str, object]]]:
    _check(text.endswith("\n"), "the last line has no newline")
    header_line, *lines = text[:-1].split("\n")
    header = json.loads(header_line)
    _check(header.get("version") == 1, f"header: {header}")
    _check(header.get("format") == "capos-monitor-timeline", f"header: {header}")
    _check(set(header) == {"version", "format", "keep"}, f"header keys: {set(header)}")
    events: list[tuple[int, str, object]] = []
    for line in lines:
        event = json.loads(line)
        _check(isinstance(event, list) and len(event) == 3, f"not a 3-element event: {line}")
        seconds, code, data = event
        _check(isinstance(seconds, float | int) and seconds >= 0, f"time: {line[:80]}")
        _check(code in CODES and isinstance(data, CODES[code]), f"code or data: {line[:80]}")
        at = round(seconds * 1_000_000)
        _check(not events or at >= events[-1][0], f"time goes back: {line[:80]}")
        _check(code == "k" or any(e[1] == "k" for e in events), "an event before a keyframe")
        _check(not events or events[-1][1] != "n", "a line after the note")
        events.append((at, code, data))
    return header, events


def story() -> list[dict]:
    """Whole-system snapshots as a small system lives: a server and a client start and
    call, logs are written, the client ends; what a tab's kernel would push."""
    m = Machine()
    view = SystemMonitor(m.kernel)
    shots = []

    def shot() -> None:
        shots.append(view.take_snapshot(200, 200))

    watcher = m.process("watcher", GRANTS)
    shot()
    server = m.process("server", GRANTS, endpoints={"ep": "Echo"})
    client = m.process("client", {"echo": m.client_of(server, "ep"), **GRANTS})
    shot()
    shot()  # the same again: nothing changed
    for i in range(40):
        console = watcher.call_sqe("console", "Console", "writeLine", {"text": f"line {i}"})
        watcher.run(console)
        shot()
    client.run(client.call_sqe("echo", "Echo", "echo", {"data": b"x"}))
    shot()
    m.kernel.exit(client.pid, 3)
    shot()
    return shots
