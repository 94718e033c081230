"""Guided tours: small declarative files, one per folder of demos/, checked on load.

A tour is `demos/NAME/tour.toml` (the guide for writing one is demos/README.md).
The server validates every tour when it starts and serves them as JSON; the
page's tour panel (web/static/tour.js) shows the steps and evaluates their
checks against the live system. A malformed file is refused with a message
naming the file, the step and the field, never half-loaded. A step whose
command uses a playground extension (kernel.differences lists them) is served
with those words under `extensions`, and the panel marks them as such.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.differences import extension_commands
from kernel.programs.shell.syntax import Builtin, Call, CapRef, Launch, Let, ParseError, parse
from server.settings import REPO_ROOT

TOURS_ROOT = REPO_ROOT / "demos"
TOUR_FILE = "tour.toml"
NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
LABELS = {"calls": "typed calls"}  # how the panel names an extension that is not a word

# What a check may ask of the live system. Each kind maps its fields to their types;
# every field given must match (strings compare exactly, except `text`, a substring).
CHECKS: dict[str, dict[str, type]] = {
    "output": {"text": str},  # the terminal printed this after the step began
    "process": {"binary": str, "name": str},  # such a process is running now
    "cap": {"holder": str, "interface": str, "name": str},  # a running process holds it
    "call": {"interface": str, "method": str, "result": str},  # such a call, after the step began
    "exit": {"binary": str, "kind": str},  # such a process ended, after the step began
}
# `input`: lines typed after the command (a password a step chooses for the visitor)
STEP_FIELDS: dict[str, type] = {
    "title": str,
    "text": str,
    "command": str,
    "input": list,
    "check": dict,
}
TOUR_FIELDS = {"title": str, "summary": str, "order": int, "steps": list}
REQUIRED_STEP = ("title", "text")
REQUIRED_TOUR = ("title", "summary", "steps")


class TourError(Exception):
    """A tour file that cannot be used; the message names the file, step and field."""


@dataclass(frozen=True)
class Tour:
    name: str
    title: str
    summary: str
    order: int
    steps: tuple[dict[str, Any], ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "summary": self.summary,
            "steps": list(self.steps),
        }


def load_tour(path: Path) -> Tour:
    name = path.parent.name
    where = _relative(path)
    if not NAME.match(name):
        raise TourError(f"{where}: the folder name {name!r} must be lowercase a-z, 0-9 and -")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TourError(f"{where}: not valid TOML: {exc}") from None
    _fields(document, TOUR_FIELDS, REQUIRED_TOUR, where)
    if not document["steps"]:
        raise TourError(f"{where}: steps: a tour needs at least one step")
    steps = tuple(
        _step(step, f"{where}: step {number}")
        for number, step in enumerate(document["steps"], start=1)
    )
    return Tour(name, document["title"], document["summary"], document.get("order", 100), steps)


def load_tours(root: Path = TOURS_ROOT) -> list[Tour]:
    """Every tour under `root`, in the order the landing page lists them."""
    tours = [load_tour(path) for path in sorted(root.glob(f"*/{TOUR_FILE}"))]
    return sorted(tours, key=lambda tour: (tour.order, tour.name))


def _step(step: Any, where: str) -> dict[str, Any]:
    if not isinstance(step, dict):
        raise TourError(f"{where}: each step must be a table ([[steps]])")
    _fields(step, STEP_FIELDS, REQUIRED_STEP, where)
    check = step.get("check", {})
    for kind, wanted in check.items():
        fields = CHECKS.get(kind)
        if fields is None:
            raise TourError(f"{where}: check.{kind}: unknown check; known: {', '.join(CHECKS)}")
        if not isinstance(wanted, dict) or not wanted:
            raise TourError(f"{where}: check.{kind}: must be a table of {', '.join(fields)}")
        _fields(wanted, fields, (), f"{where}: check.{kind}")
    if "\n" in step.get("command", ""):
        raise TourError(f"{where}: command: one line only (the panel types it, then Enter)")
    lines = step.get("input", [])
    if "command" not in step and lines:
        raise TourError(f"{where}: input: only a step with a command types input after it")
    if not all(isinstance(line, str) and "\n" not in line for line in lines):
        raise TourError(f"{where}: input: a list of single-line strings")
    served = {key: step[key] for key in STEP_FIELDS if key in step}
    used = extensions_used(step.get("command", ""))
    if used:
        served["extensions"] = used
    return served


def extensions_used(line: str) -> list[str]:
    """The playground extensions a shell command line uses, in the order written.

    Lines typed to a child program (`look`, `/exit`) parse as words no list names.
    """
    try:
        command = parse(line)
    except ParseError:
        return []
    words: list[str] = []
    if isinstance(command, Let):
        words.append("let")
    body = command.value if isinstance(command, Let) else command
    if isinstance(body, Builtin):
        words.append(body.word)
    elif isinstance(body, Call):
        words.append("calls")
        words += ["move" for ref in _refs(body.args) if ref.move]
    elif isinstance(body, Launch):
        for _, ref in body.grants:
            words += ["new"] if ref.new else ["move"] if ref.move else []
    known = extension_commands()
    return list(dict.fromkeys(LABELS.get(word, word) for word in words if word in known))


def _refs(value: Any) -> list[CapRef]:
    """The cap references anywhere in a typed call's arguments."""
    if isinstance(value, CapRef):
        return [value]
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in _refs(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in _refs(item)]
    return []


def _fields(table: dict, known: dict[str, type], required: tuple[str, ...], where: str) -> None:
    for key, value in table.items():
        kind = known.get(key)
        if kind is None:
            raise TourError(f"{where}: unknown field {key!r}; accepted: {', '.join(known)}")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise TourError(f"{where}: {key}: expected {kind.__name__}, got {value!r}")
    for key in required:
        if key not in table:
            raise TourError(f"{where}: missing field {key!r}")


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
