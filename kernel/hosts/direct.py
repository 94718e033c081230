"""The direct host: processes are played by the caller, one SQE at a time.

Nothing runs on its own: the caller writes SQEs into a process's ring and
calls `kernel.enter`. Tests use it to set up exact interleavings (death
mid-call, a full receiver), and `kernel.selfcheck` to exercise the core in
whatever Python it finds itself in, Pyodide included. Time stands still
unless the caller moves `clock_ns`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from kernel.process import Process
from kernel.region import MemoryRegion


@dataclass
class DirectHost:
    console: bytearray = field(default_factory=bytearray)
    screen: bytearray = field(default_factory=bytearray)
    started: list[tuple[int, str]] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    agent_replies: list[dict] = field(default_factory=list)
    clock_ns: int = 1_000_000_000

    def allocate_region(self, pid: int, size: int) -> MemoryRegion:
        return MemoryRegion(bytearray(size))

    def start(self, proc: Process, module: str) -> None:
        self.started.append((proc.pid, module))

    def stop(self, proc: Process) -> None:
        self.stopped.append(proc.pid)

    def now_ns(self) -> int:
        return self.clock_ns

    def entropy(self, size: int) -> bytes:
        return os.urandom(size)

    def console_write(self, proc: Process, data: bytes) -> None:
        self.console += data

    def terminal_write(self, name: str, data: bytes) -> None:
        self.screen += data

    def agent_reply(self, response: dict) -> None:
        self.agent_replies.append(response)
