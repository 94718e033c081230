"""The monitor feed: whole-system snapshots a host ships to its page, as JSON.

A host that shows the monitoring views (the browser's, beside the terminal)
calls `tick` on each pass of its loop. A snapshot is due at once when a
process started or ended, at most every 250 ms while calls or logs arrive,
and once a second otherwise, so counters stay fresh without a snapshot per
call. Each snapshot carries the latest calls and logs (the tour panel,
web/static/tour.js, looks for a call in the newest snapshot). The snapshot
is the SystemMonitor view of the whole system: the page holds the tab's
system, and sees what its kernel sees.

Making one takes milliseconds, so a due snapshot waits for a quiet pass
(nothing rang): a spawned child and the calls that print its first words go
first. Under a load that never pauses it goes out once LATE_NS overdue.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from kernel.services.monitor import SystemMonitor

if TYPE_CHECKING:
    from kernel.kernel import Kernel

BUSY_NS = 250_000_000
IDLE_NS = 1_000_000_000
LATE_NS = 250_000_000
QUIET_MS = 10  # how soon the host looks again for a quiet pass while a snapshot is due
CALLS = 200
LOGS = 200


class MonitorFeed:
    def __init__(self, kernel: Kernel, send: Callable[[str], object]) -> None:
        self.kernel = kernel
        self.send = send
        self.view = SystemMonitor(kernel)
        self._sent_ns = -IDLE_NS
        self._seq = -1
        self._lifecycle = -1
        self._due_ns: int | None = None  # when the snapshot now waiting became due

    @property
    def waiting(self) -> bool:
        """A snapshot is due: the host should not sleep past QUIET_MS."""
        return self._due_ns is not None

    def tick(self, now_ns: int, quiet: bool = True) -> None:
        """`quiet`: nothing rang in this pass of the host's loop."""
        monitor = self.kernel.monitor
        if self._due_ns is None:
            since = now_ns - self._sent_ns
            if not (
                monitor.lifecycle != self._lifecycle  # a process started or ended
                or (monitor.seq != self._seq and since >= BUSY_NS)
                or since >= IDLE_NS
            ):
                return
            self._due_ns = now_ns
        if not quiet and now_ns - self._due_ns < LATE_NS:
            return
        self._due_ns = None
        self._sent_ns = now_ns
        self._seq = monitor.seq
        self._lifecycle = monitor.lifecycle
        self.send(json.dumps(self.view.take_snapshot(CALLS, LOGS), separators=(",", ":")))
