"""Strict readers of asciicast v2 and v3, written from the published formats
(docs.asciinema.org/manual/asciicast/v2 and /v3), to check what the server writes.

Each answers the header and the events as (time in µs since the start, code, data):
a v3 line's interval is added to the time before it, a v2 line's time is the time.
Anything the format does not allow raises CastError: a missing or mistyped required
field, an attribute the format does not list, an event that is not a 3-element array,
a negative interval or a time going back, a resize that is not "COLSxROWS", an exit
status that is not a number or not last, a blank line, a line without its newline.
"""

from __future__ import annotations

import json
import re

RESIZE = re.compile(r"[0-9]+x[0-9]+")
STATUS = re.compile(r"-?[0-9]+")
THEME_KEYS = {"fg", "bg", "palette"}
COLOR = r"#[0-9a-fA-F]{6}"


class CastError(AssertionError):
    pass


def _check(ok: object, what: str) -> None:
    if not ok:
        raise CastError(what)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _theme(theme: object) -> None:
    _check(isinstance(theme, dict) and set(theme) == THEME_KEYS, f"theme: {theme!r}")
    assert isinstance(theme, dict)
    _check(all(re.fullmatch(COLOR, theme[k]) for k in ("fg", "bg")), f"theme colors: {theme}")
    palette = theme["palette"].split(":")
    _check(len(palette) in (8, 16), f"palette of {len(palette)} colors")
    _check(all(re.fullmatch(COLOR, c) for c in palette), f"palette: {theme['palette']}")


def _common(header: dict, allowed: set[str]) -> None:
    _check(not set(header) - allowed, f"attributes not in the format: {set(header) - allowed}")
    _check(_integer(header.get("timestamp", 0)), "timestamp must be an integer")
    _check(_number(header.get("idle_time_limit", 0)), "idle_time_limit must be a number")
    for key in ("command", "title"):
        _check(isinstance(header.get(key, ""), str), f"{key} must be a string")
    env = header.get("env", {})
    _check(isinstance(env, dict), "env must be an object")
    _check(all(isinstance(v, str) for v in env.values()), "env's values must be strings")


def _lines(text: str) -> list[str]:
    _check(text.endswith("\n"), "the last line has no newline")
    lines = text[:-1].split("\n")
    _check(all(lines), "a blank line")
    return lines


def _event(line: str) -> tuple[float, str, str]:
    event = json.loads(line)
    _check(isinstance(event, list) and len(event) == 3, f"not a 3-element array: {line}")
    seconds, code, data = event
    _check(_number(seconds) and seconds >= 0, f"not a time: {line}")
    _check(isinstance(code, str) and isinstance(data, str), f"code and data: {line}")
    if code == "r":
        _check(RESIZE.fullmatch(data), f"resize not COLSxROWS: {line}")
    return seconds, code, data


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def read_v3(text: str) -> tuple[dict, list[tuple[int, str, str]]]:
    first, *lines = _lines(text)
    _check(not first.startswith("#"), "the first line is a comment")
    header = json.loads(first)
    _check(isinstance(header, dict) and header.get("version") == 3, f"not v3: {first}")
    _check(not isinstance(header["version"], bool), "version must be an integer")
    allowed = {"version", "term", "timestamp", "idle_time_limit", "command", "title", "env"}
    _common(header, allowed)
    term = header.get("term")
    _check(isinstance(term, dict), "term is required, an object")
    assert isinstance(term, dict)
    _check(not set(term) - {"cols", "rows", "type", "version", "theme"}, f"term: {term}")
    _check(all(_integer(term.get(k)) and term[k] > 0 for k in ("cols", "rows")), f"{term}")
    _check(all(isinstance(term.get(k, ""), str) for k in ("type", "version")), f"{term}")
    if "theme" in term:
        _theme(term["theme"])
    events, now = [], 0
    for line in lines:
        if line.startswith("#"):
            continue
        seconds, code, data = _event(line)
        now += _us(seconds)
        events.append((now, code, data))
    exits = [n for n, (_, code, _) in enumerate(events) if code == "x"]
    _check(exits in ([], [len(events) - 1]), "the exit event must come once, last")
    _check(all(STATUS.fullmatch(events[n][2]) for n in exits), "the exit status is a number")
    return header, events


def read_v2(text: str) -> tuple[dict, list[tuple[int, str, str]]]:
    first, *lines = _lines(text)
    header = json.loads(first)
    _check(isinstance(header, dict) and header.get("version") == 2, f"not v2: {first}")
    _check(not isinstance(header["version"], bool), "version must be an integer")
    allowed = {"version", "width", "height", "timestamp", "duration", "idle_time_limit"}
    _common(header, allowed | {"command", "title", "env", "theme"})
    for key in ("width", "height"):
        _check(_integer(header.get(key)) and header[key] > 0, f"{key} is required: {first}")
    _check(_number(header.get("duration", 0)), "duration must be a number")
    if "theme" in header:
        _theme(header["theme"])
    events: list[tuple[int, str, str]] = []
    for line in lines:
        seconds, code, data = _event(line)
        _check(code in "oimr" and len(code) == 1, f"v2 has no {code!r} events: {line}")
        _check(not events or _us(seconds) >= events[-1][0], f"time goes back: {line}")
        events.append((_us(seconds), code, data))
    return header, events
