"""CPU time of OS processes, so that a latency figure comes with what it burns.

/proc/PID/stat counts utime and stime in clock ticks (10 ms), far coarser
than a window of a few hundred round trips; each thread's schedstat starts
with the nanoseconds the scheduler ran it, which this sums per process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def cpu_ns(pid: int) -> int:
    """Nanoseconds on a CPU so far, over every thread of process `pid`."""
    total = 0
    for thread in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{thread}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except FileNotFoundError:  # the thread ended since the listing
            continue
    return total


def cpu_snapshot(pids: Iterable[int]) -> dict[int, int]:
    return {pid: cpu_ns(pid) for pid in pids}


def cpu_spent_ns(before: dict[int, int], after: dict[int, int]) -> dict[int, int]:
    """Per process, what it ran between two snapshots (processes in both only)."""
    return {pid: after[pid] - before[pid] for pid in before if pid in after}
