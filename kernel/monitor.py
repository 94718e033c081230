"""What the kernel remembers for monitoring: a bounded IPC trace, logs and exit records.

Cheap by construction. The per-process ring counters are plain integers the
kernel bumps anyway (`Process.enters`, `Process.errors`) or reads from the
ring header (SQ head, CQ tail, CQ overflow); nothing here runs on the NOP
path. A traced CALL costs one small object and two clock reads; with
`tracing` off it costs one attribute test. Every buffer is bounded and drops
its oldest record, counting what it dropped, so a busy or hostile process
cannot grow the kernel's memory. Only `SystemMonitor` caps read any of it
(kernel/services/monitor.py), each within its scope.

All records share one sequence: `seq` grows by one per record of any kind,
so a reader that saw up to `seq` can ask for exactly what came after.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from kernel import abi
from kernel.abi import Err
from kernel.codec import Bundle

if TYPE_CHECKING:
    from kernel.process import Process

T = TypeVar("T")

TRACE_CAPACITY = 512
LOG_CAPACITY = 256
EXIT_CAPACITY = 64
LAST_CALLS = 8  # calls kept in an exit record
PARENTS_KEPT = 4096  # lineage of ended pids, for scoping their records
LEVELS = ("debug", "info", "warn", "error")


class Bounded(Generic[T]):
    """A drop-oldest buffer of (seq, record) in seq order, counting what it dropped."""

    __slots__ = ("_items", "capacity", "dropped", "dropped_through")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a bounded buffer needs room for one record")
        self.capacity = capacity
        self._items: deque[tuple[int, T]] = deque(maxlen=capacity)
        self.dropped = 0
        self.dropped_through = 0  # the seq of the newest record dropped so far

    def append(self, seq: int, record: T) -> None:
        items = self._items
        if len(items) == self.capacity:
            self.dropped += 1
            self.dropped_through = items[0][0]
        items.append((seq, record))

    def since(self, seq: int) -> list[tuple[int, T]]:
        """Records newer than `seq`, oldest first."""
        newer: list[tuple[int, T]] = []
        for item in reversed(self._items):
            if item[0] <= seq:
                break
            newer.append(item)
        newer.reverse()
        return newer

    def missed(self, seq: int) -> bool:
        """Whether a record newer than `seq` was dropped before it could be read."""
        return self.dropped_through > seq

    def __iter__(self) -> Iterator[tuple[int, T]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class CallTrace:
    """One CALL being timed: made at submission, finished when its CQE is posted."""

    __slots__ = ("at", "callee", "caller", "interface_id", "method_id", "monitor")

    def __init__(
        self, monitor: Monitor, caller: int, callee: int, interface_id: int, method_id: int
    ) -> None:
        self.monitor = monitor
        self.caller = caller
        self.callee = callee
        self.interface_id = interface_id
        self.method_id = method_id
        self.at = monitor.now()

    def finish(self, result: int) -> None:
        monitor = self.monitor
        monitor.record(
            monitor.calls,
            (
                self.at,
                self.caller,
                self.callee,
                self.interface_id,
                self.method_id,
                monitor.now() - self.at,
                result,
            ),
        )


class Monitor:
    """The kernel's monitoring records; the kernel feeds it, SystemMonitor caps read it."""

    def __init__(self, now: Callable[[], int], *, tracing: bool = True) -> None:
        self.now = now  # nanoseconds since boot
        self.tracing = tracing  # the switch the benchmark flips
        self.seq = 0
        # (at, caller pid, callee pid, interface id, method id, latency ns, CQE result)
        self.calls: Bounded[tuple] = Bounded(TRACE_CAPACITY)
        self.logs: Bounded[tuple] = Bounded(LOG_CAPACITY)  # (at, pid, process, level, text)
        self.exits: Bounded[dict] = Bounded(EXIT_CAPACITY)  # ExitRecord fields, seq unset
        self.started: dict[int, int] = {}  # pid -> the seq at which it started
        self.lifecycle = 0  # processes started plus processes ended: moves when either does
        self.parents: dict[int, int] = {}  # pid -> parent pid (0: none), ended ones too
        # Callables run after each record until they return True (SystemMonitor.changes).
        self.watchers: list[Callable[[], bool]] = []

    def record(self, buffer: Bounded, record: object) -> None:
        self.seq += 1
        buffer.append(self.seq, record)
        if self.watchers:
            self.watchers = [w for w in self.watchers if not w()]

    # --- fed by the kernel ---------------------------------------------------------------

    def process_started(self, proc: Process) -> None:
        self.lifecycle += 1
        self.seq += 1
        self.started[proc.pid] = self.seq
        self.parents[proc.pid] = proc.parent.pid if proc.parent is not None else 0
        if len(self.parents) > PARENTS_KEPT:
            self._forget_ended()
        if self.watchers:
            self.watchers = [w for w in self.watchers if not w()]

    def _forget_ended(self) -> None:
        """Drop the oldest quarter of the lineage, keeping every live process's ancestry."""
        keep: set[int] = set()
        for pid in self.started:  # the live processes
            while pid and pid not in keep:
                keep.add(pid)
                pid = self.parents.get(pid, 0)
        for pid in [p for p in self.parents if p not in keep][: PARENTS_KEPT // 4 + 1]:
            del self.parents[pid]

    def process_ended(self, proc: Process, kind: str) -> None:
        """Keep an exit record; called before the ring is marked dead."""
        self.lifecycle += 1
        self.started.pop(proc.pid, None)
        pid = proc.pid
        last = [c for c in self.calls if c[1][1] == pid or c[1][2] == pid][-LAST_CALLS:]
        record = {
            "pid": pid,
            "name": proc.name,
            "binary": proc.binary,
            "parentPid": self.parents.get(pid, 0),
            "kind": kind,
            "code": proc.exit_code or 0,
            "reason": proc.end_reason,
            "startNs": proc.start_ns,
            "endNs": self.now(),
            "counters": counters(proc),
            "lastCalls": last,
        }
        self.record(self.exits, record)

    def log(self, proc: Process, level: str, text: str) -> None:
        self.record(self.logs, (self.now(), proc.pid, proc.name, level, text))

    # --- scope -----------------------------------------------------------------------------

    def descends(self, pid: int, root: int) -> bool:
        """Whether `pid` is `root` or one of its descendants (alive or ended)."""
        for _ in range(len(self.parents) + 1):
            if pid == root:
                return True
            pid = self.parents.get(pid, 0)
            if pid == 0:
                return False
        return False


def counters(proc: Process) -> dict:
    """A process's RingCounters, from the kernel's integers and the ring header."""
    ring = proc.ring
    return {
        "enters": proc.enters,
        "sqes": ring.get(abi.Header.SQ_HEAD),
        "cqes": ring.get(abi.Header.CQ_TAIL),
        "cqOverflow": ring.get(abi.Header.CQ_OVERFLOW),
        "sqCorruptions": ring.get(abi.Header.SQ_CORRUPTIONS),
        "errors": [
            {"code": code, "name": error_name(code), "count": count}
            for code, count in sorted(proc.errors.items(), reverse=True)
        ],
    }


def error_name(code: int) -> str:
    try:
        return Err(code).name.lower()
    except ValueError:
        return f"error {code}"


@functools.cache
def _method_names(interface_id: int, method_id: int) -> tuple[str, str]:
    try:
        iface = Bundle.default().interface_by_id(interface_id)
    except KeyError:
        return "?", f"@{method_id}"
    found = iface.method_by_ordinal(method_id)
    return iface.name, found.name if found is not None else f"@{method_id}"


def call_record(seq: int, call: tuple, *, hide_caller: bool = False) -> dict:
    """A trace tuple as a CallRecord, names resolved only now (the trace stores ids)."""
    at, caller, callee, interface_id, method_id, latency, result = call
    interface, method = _method_names(interface_id, method_id)
    if result >= 0:
        outcome = "ok"
    elif result == Err.APPLICATION_EXCEPTION:
        outcome = "exception"
    else:
        outcome = error_name(result)
    return {
        "seq": seq,
        "atNs": at,
        "callerPid": 0 if hide_caller else caller,
        "calleePid": callee,
        "interface": interface,
        "method": method,
        "latencyNs": latency,
        "result": outcome,
    }


def log_record(seq: int, log: tuple) -> dict:
    at, pid, process, level, text = log
    return {"seq": seq, "atNs": at, "pid": pid, "process": process, "level": level, "text": text}
