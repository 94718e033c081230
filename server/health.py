"""What `/healthz` tells: each shared part's state, as the part itself last reported it.

Parts: the QEMU pool, the share hub, Redis, the store (SQLite and the disk under the
data directory), the model and MCP. Each says `ok`, `starting`, `down` (with why) or
`off` (not configured on this server). The probe answers 503 naming every part that is
down, so an orchestrator restarts or drains a server that only looks alive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

PARTS = ("pool", "share_hub", "redis", "store", "model", "mcp")


@dataclass
class PartState:
    state: str  # ok | starting | down | off
    detail: str
    since: float  # wall-clock time of the last change of state

    def as_dict(self) -> dict:
        answer = {"state": self.state, "since": self.since}
        if self.detail:
            answer["detail"] = self.detail
        return answer


class Health:
    def __init__(self) -> None:
        self.parts: dict[str, PartState] = {
            name: PartState("starting", "", time.time()) for name in PARTS
        }

    def _set(self, name: str, state: str, detail: str) -> None:
        part = self.parts.get(name)
        if part is None or part.state != state:
            self.parts[name] = PartState(state, detail, time.time())
        else:
            part.detail = detail

    def ok(self, name: str, detail: str = "") -> None:
        self._set(name, "ok", detail)

    def starting(self, name: str, detail: str = "") -> None:
        self._set(name, "starting", detail)

    def down(self, name: str, detail: str) -> None:
        self._set(name, "down", detail)

    def off(self, name: str, detail: str) -> None:
        self._set(name, "off", detail)

    def report(self) -> tuple[int, dict]:
        """The probe's status code and body."""
        down = [name for name, part in self.parts.items() if part.state == "down"]
        body: dict[str, Any] = {
            "status": "down" if down else "ok",
            "parts": {name: part.as_dict() for name, part in self.parts.items()},
        }
        if down:
            body["down"] = down
        return (503 if down else 200), body
