"""SystemMonitor: a capability-scoped view of the live system.

A view sees its scope only: the whole system, or one process subtree. The
scope is the object, not an argument: `subtree` hands out a narrower view
(a new object), and no method widens one. Within a subtree view a process
appears with its cap table, ledger and counters; calls appear when the
caller or the callee is inside, with a caller outside shown as pid 0; logs
and exit records appear for processes inside. Calls on a SystemMonitor are
not traced, so a view that polls does not fill the trace with itself.
"""

from __future__ import annotations

import itertools
import weakref
from typing import TYPE_CHECKING

from kernel.capobject import PENDING, CallContext, CapObject, Deferred, KernelService, Pending
from kernel.captable import CapEntry, Origin, TransferPolicy
from kernel.codec import Bundle
from kernel.endpoint import ClientFacet, Endpoint
from kernel.errors import CapError
from kernel.monitor import call_record, counters, log_record

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.process import Process

CHANGES_MAX = 32  # records per `changes` answer; the caller pages on with `seq`
MAX_WAIT_NS = 60 * 1_000_000_000


class ObjectIds:
    """Stable names for objects while they live: the nodes of the authority graph."""

    def __init__(self) -> None:
        self._ids: weakref.WeakKeyDictionary[CapObject, str] = weakref.WeakKeyDictionary()
        self._next = itertools.count(1)

    def of(self, obj: CapObject) -> str:
        if isinstance(obj, ClientFacet):  # a client facet is its endpoint, seen from outside
            obj = obj.endpoint
        if isinstance(obj, Endpoint):
            return f"endpoint:{obj.endpoint_id}"
        key = self._ids.get(obj)
        if key is None:
            key = f"{type(obj).__name__.lower()}:{next(self._next)}"
            self._ids[obj] = key
        return key


class SystemMonitor(KernelService):
    interface_name = "SystemMonitor"
    traced = False

    def __init__(self, kernel: Kernel, root: int = 0, ids: ObjectIds | None = None) -> None:
        super().__init__()
        self.kernel = kernel
        self.root = root  # 0: the whole system
        self.ids = ids or ObjectIds()

    def describe(self) -> str:
        return "SystemMonitor" + (f" of pid {self.root}'s subtree" if self.root else "")

    def sees(self, pid: int) -> bool:
        return self.root == 0 or self.kernel.monitor.descends(pid, self.root)

    # --- methods -----------------------------------------------------------------------------

    def snapshot(self, ctx: CallContext, params: dict) -> dict:
        return {"snapshot": self.take_snapshot(params["maxCalls"], params["maxLogs"])}

    def changes(self, ctx: CallContext, params: dict) -> dict | Pending:
        since, wait_ns = params["since"], min(params["waitNs"], MAX_WAIT_NS)
        changes = self.changes_since(since)
        if wait_ns == 0 or _any(changes):
            return {"changes": changes}
        deferred = self.defer(ctx)
        checked = [since]  # records up to here are known to be outside this view

        def answer() -> bool:
            """Run after each new record: cheap unless the record is in scope."""
            if not deferred.live:
                return True
            if not self._news(checked[0]):
                checked[0] = self.kernel.monitor.seq
                return False
            deferred.resolve({"changes": self.changes_since(since)})
            return True

        monitor = self.kernel.monitor
        monitor.watchers = [w for w in monitor.watchers if not w()]  # drop the finished
        monitor.watchers.append(answer)
        self.kernel.add_timer(self.kernel.uptime_ns() + wait_ns, _Timeout(self, deferred, since))
        return PENDING

    def subtree(self, ctx: CallContext, params: dict) -> tuple[dict, list[CapEntry]]:
        pid = params["pid"]
        known = pid in self.kernel.processes or pid in self.kernel.monitor.parents
        if not known or not self.sees(pid):
            raise CapError.invalid_argument(f"pid {pid} is not in this monitor's view")
        view = SystemMonitor(self.kernel, pid, self.ids)
        entry = CapEntry(view, view.interface_id, TransferPolicy.COPY, Origin.RESULT_CAP)
        return {"monitor": 0}, [entry]

    # --- the records, in scope ---------------------------------------------------------------

    def take_snapshot(self, max_calls: int = 0, max_logs: int = 0) -> dict:
        """The MonitorSnapshot of this view (hosts call this too, to ship it whole)."""
        monitor = self.kernel.monitor
        procs = [p for p in self.kernel.processes.values() if self.sees(p.pid)]
        calls = self._calls(monitor.calls)[-max_calls:] if max_calls else []
        logs = self._logs(monitor.logs)[-max_logs:] if max_logs else []
        return {
            "seq": monitor.seq,
            "uptimeNs": self.kernel.uptime_ns(),
            "scopePid": self.root,
            "processes": [self.process_info(p) for p in procs],
            "endpoints": [self._endpoint_info(e) for p in procs for e in p.endpoints],
            "exits": self._exits(monitor.exits),
            "calls": calls,
            "logs": logs,
            "tracing": monitor.tracing,
        }

    def changes_since(self, since: int) -> dict:
        monitor = self.kernel.monitor
        started = [
            (seq, {"started": self.process_info(self.kernel.processes[pid])})
            for pid, seq in monitor.started.items()
            if seq > since and pid in self.kernel.processes and self.sees(pid)
        ]
        merged = sorted(
            started
            + [(r["seq"], {"exits": r}) for r in self._exits(monitor.exits.since(since))]
            + [(r["seq"], {"calls": r}) for r in self._calls(monitor.calls.since(since))]
            + [(r["seq"], {"logs": r}) for r in self._logs(monitor.logs.since(since))],
            key=lambda item: item[0],
        )
        taken = merged[:CHANGES_MAX]
        out: dict = {"started": [], "exits": [], "calls": [], "logs": []}
        for _, item in taken:
            for kind, record in item.items():
                out[kind].append(record)
        out["seq"] = taken[-1][0] if len(merged) > CHANGES_MAX else max(monitor.seq, since)
        out["missed"] = any(b.missed(since) for b in (monitor.calls, monitor.logs, monitor.exits))
        return out

    def _news(self, after: int) -> bool:
        """Whether a record newer than `after` is in scope (looks at those records only)."""
        monitor = self.kernel.monitor
        return (
            any(seq > after and self.sees(pid) for pid, seq in monitor.started.items())
            or bool(self._calls(monitor.calls.since(after)))
            or bool(self._logs(monitor.logs.since(after)))
            or bool(self._exits(monitor.exits.since(after)))
        )

    def process_info(self, proc: Process) -> dict:
        bundle = Bundle.default()
        names = {cap_id: name for name, cap_id, _ in proc.capset}
        caps = []
        for cap_id, entry in proc.table:
            try:
                interface = bundle.interface_by_id(entry.interface_id).name
            except KeyError:
                interface = f"0x{entry.interface_id:016x}"
            caps.append(
                {
                    "capId": cap_id,
                    "name": names.get(cap_id, ""),
                    "interface": interface,
                    "object": entry.obj.describe(),
                    "objectId": self.ids.of(entry.obj),
                    "servedBy": entry.obj.server_pid(),
                    "origin": entry.origin.value,
                    "transfer": entry.policy.value,
                    "revoked": _revoked(entry),
                }
            )
        return {
            "pid": proc.pid,
            "name": proc.name,
            "binary": proc.binary,
            "parentPid": proc.parent.pid if proc.parent is not None else 0,
            "state": proc.state.value,
            "startNs": proc.start_ns,
            "counters": counters(proc),
            "ledger": [
                {"resource": name, "used": used, "limit": limit}
                for name, (used, limit) in proc.ledger.snapshot().items()
            ],
            "caps": caps,
        }

    def _endpoint_info(self, endpoint: Endpoint) -> dict:
        try:
            interface = Bundle.default().interface_by_id(endpoint.serves).name
        except KeyError:
            interface = "ClientEndpoint"
        return {
            "objectId": self.ids.of(endpoint),
            "ownerPid": endpoint.owner.pid,
            "interface": interface,
            "queuedCalls": len(endpoint.calls),
            "waitingReceives": len(endpoint.recvs),
            "inFlight": len(endpoint.in_flight),
        }

    def _calls(self, items) -> list[dict]:
        out = []
        for seq, call in items:
            caller_in = self.sees(call[1])
            if caller_in or (call[2] and self.sees(call[2])):
                out.append(call_record(seq, call, hide_caller=not caller_in))
        return out

    def _logs(self, items) -> list[dict]:
        return [log_record(seq, log) for seq, log in items if self.sees(log[1])]

    def _exits(self, items) -> list[dict]:
        return [
            {**record, "seq": seq, "lastCalls": self._calls(record["lastCalls"])}
            for seq, record in items
            if self.sees(record["pid"])
        ]


def _any(changes: dict) -> bool:
    return any(changes[k] for k in ("started", "exits", "calls", "logs"))


class _Timeout:
    """The kernel timer that ends a `changes` wait with whatever (maybe nothing) is new."""

    __slots__ = ("deferred", "since", "view")

    def __init__(self, view: SystemMonitor, deferred: Deferred, since: int) -> None:
        self.view = view
        self.deferred = deferred
        self.since = since

    @property
    def live(self) -> bool:
        return self.deferred.live

    def resolve(self, results: dict) -> None:
        self.deferred.resolve({"changes": self.view.changes_since(self.since)})

    def cancel(self) -> None:
        self.deferred.cancel()


def _revoked(entry: CapEntry) -> str:
    """Why a call through this hold edge fails now, as `_op_call` would refuse it."""
    if entry.obj.revoked:
        return "its server has ended"
    if entry.lease is not None and not entry.lease.live:
        return f"the session that granted it {entry.lease.ended}"
    return ""
