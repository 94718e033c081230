"""ProcessSpawner and ProcessHandle: authority at spawn, and a child's fate.

A child gets exactly the caps its spawner names, in order, in a read-only
CapSet; nothing is inherited implicitly. Every resource the spawn will use
(the parent's child quota, the result cap slots) is reserved before the
child exists, and given back if anything after that fails.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kernel import abi
from kernel.capobject import PENDING, CallContext, Deferred, KernelService, Pending
from kernel.captable import CapEntry, Origin, TransferPolicy
from kernel.codec import Bundle
from kernel.endpoint import Endpoint
from kernel.errors import CapError
from kernel.ledger import QuotaExceeded, Resource
from kernel.process import Process, State

if TYPE_CHECKING:
    from kernel.kernel import Kernel

NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
KILLED_EXIT_CODE = -9


class ProcessSpawner(KernelService):
    interface_name = "ProcessSpawner"

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self.kernel = kernel

    def spawn(self, ctx: CallContext, params: dict) -> tuple[dict, list[CapEntry]]:
        name, binary = params["name"], params["binaryName"]
        if not NAME_RE.match(name):
            raise CapError.invalid_argument(
                f"process name {name!r}: use 1-64 of A-Z a-z 0-9 _ . : -"
            )
        if binary not in self.kernel.binaries:
            known = ", ".join(sorted(self.kernel.binaries)) or "none"
            raise CapError.invalid_argument(
                f"no binary {binary!r} in the boot package (it has: {known})"
            )
        grants = self._resolve_grants(ctx, params["grants"])
        self.kernel.binaries[binary].check_grants(
            {name: self._seen_as(kind, value) for name, kind, value in grants}, Bundle.default()
        )
        new_endpoints = [iface for _, kind, iface in grants if kind == "newEndpoint"]
        caller_endpoints = [grant for grant in grants if grant[1] == "callerEndpoint"]
        client_indices = list(range(1, 1 + len(new_endpoints)))
        first_owned = 1 + len(new_endpoints)
        owned_indices = list(range(first_owned, first_owned + len(caller_endpoints)))
        answer = {"handle": 0, "clients": client_indices, "endpoints": owned_indices}
        ctx.require_result_room(answer, 1 + len(client_indices) + len(owned_indices))
        parent = ctx.caller
        try:
            parent.ledger.reserve(Resource.PROCESSES)
        except QuotaExceeded as exc:
            raise CapError.overloaded(f"cannot spawn {name!r}: {exc.message}") from None
        try:
            ctx.reserve_result_caps(1 + len(new_endpoints) + len(caller_endpoints))
        except QuotaExceeded:
            parent.ledger.release(Resource.PROCESSES)
            raise
        owned: list[Endpoint] = []
        try:
            owned = self._caller_endpoints(parent, grants)
            session = self.kernel.new_session() if params["freshSession"] else None
            child, endpoints = self.kernel.create_process(
                name, binary, grants, parent=parent, session=session
            )
        except BaseException:
            for endpoint in owned:
                endpoint.revoke()
                parent.endpoints.remove(endpoint)
            parent.ledger.release(Resource.PROCESSES)
            parent.ledger.release(Resource.CAP_SLOTS, ctx.prereserved_caps)
            ctx.prereserved_caps = 0
            raise
        handle = ProcessHandle(self.kernel, child)
        results = [
            CapEntry(
                handle, handle.interface_id, TransferPolicy.NON_TRANSFERABLE, Origin.RESULT_CAP
            )
        ]
        results += [
            CapEntry(endpoint.client, endpoint.serves, TransferPolicy.COPY, Origin.RESULT_CAP)
            for endpoint in endpoints
        ]
        results += [
            CapEntry(
                endpoint,
                self.kernel.endpoint_interface,
                TransferPolicy.NON_TRANSFERABLE,
                Origin.RESULT_CAP,
            )
            for endpoint in owned
        ]
        return answer, results

    def _caller_endpoints(self, parent: Process, grants: list[tuple]) -> list[Endpoint]:
        """Make the endpoints the caller will serve; their grants become clientOf them."""
        owned = []
        for index, (name, kind, iface) in enumerate(grants):
            if kind == "callerEndpoint":
                endpoint = self.kernel.new_endpoint(parent, iface)
                owned.append(endpoint)
                grants[index] = (name, "clientOf", endpoint)
        return owned

    @staticmethod
    def _seen_as(kind: str, value: CapEntry | int) -> int:
        """The interface id the child's CapSet entry will carry for a grant."""
        if isinstance(value, int):
            return value  # newEndpoint / callerEndpoint: the interface it serves
        if kind == "clientOf":
            assert isinstance(value.obj, Endpoint)  # _resolve_grants checked it
            return value.obj.serves
        return value.interface_id  # cap

    def _resolve_grants(self, ctx: CallContext, grants: list[dict]) -> list[tuple]:
        """Check every grant before anything is created: (name, kind, entry or iface)."""
        if len(grants) > abi.CAPSET_MAX_ENTRIES:
            raise CapError.invalid_argument(
                f"{len(grants)} grants; a CapSet holds at most {abi.CAPSET_MAX_ENTRIES}"
            )
        resolved = []
        seen: set[str] = set()
        for grant in grants:
            name = grant["name"]
            if not name or len(name.encode()) > abi.CAPSET_NAME_MAX:
                raise CapError.invalid_argument(
                    f"grant name {name!r} must be 1-{abi.CAPSET_NAME_MAX} bytes"
                )
            if name in seen:
                raise CapError.invalid_argument(f"grant {name!r} is named twice")
            seen.add(name)
            source = grant.get("source") or {}
            if "cap" in source:
                entry = ctx.param_cap(source["cap"])
                if entry.policy is TransferPolicy.NON_TRANSFERABLE:
                    raise CapError.invalid_argument(
                        f"grant {name!r}: a {entry.obj.describe()} cannot be passed on"
                    )
                resolved.append((name, "cap", entry))
            elif "clientOf" in source:
                entry = ctx.param_cap(source["clientOf"])
                if not isinstance(entry.obj, Endpoint):
                    raise CapError.invalid_argument(
                        f"grant {name!r}: clientOf needs an Endpoint, not {entry.obj.describe()}"
                    )
                resolved.append((name, "clientOf", entry))
            elif "newEndpoint" in source:
                resolved.append((name, "newEndpoint", source["newEndpoint"]))
            elif "callerEndpoint" in source:
                resolved.append((name, "callerEndpoint", source["callerEndpoint"]))
            else:
                raise CapError.invalid_argument(f"grant {name!r} names no source")
        return resolved


class ProcessHandle(KernelService):
    interface_name = "ProcessHandle"

    def __init__(self, kernel: Kernel, child: Process) -> None:
        super().__init__()
        self.kernel = kernel
        self.child = child
        self._waiter: Deferred | None = None
        child.on_end.append(self._child_ended)

    def describe(self) -> str:
        return f"ProcessHandle of pid {self.child.pid} ({self.child.name})"

    def wait(self, ctx: CallContext, params: dict) -> dict | Pending:
        if not self.child.alive:
            return {"exitCode": self.child.exit_code}
        if self._waiter is not None and self._waiter.live:
            raise CapError.overloaded(f"pid {self.child.pid} already has a waiter")
        self._waiter = self.defer(ctx)
        return PENDING

    def kill(self, ctx: CallContext, params: dict) -> dict:
        if self.child.alive:
            self.kernel.kill(self.child.pid, f"killed by pid {ctx.caller.pid}")
        return {}

    def status(self, ctx: CallContext, params: dict) -> dict:
        child = self.child
        if child.state is State.RUNNING:
            state: dict = {"running": None}
        elif child.state is State.EXITED:
            state = {"exited": child.exit_code}
        else:
            state = {"killed": child.end_reason}
        return {
            "status": {
                "pid": child.pid,
                "name": child.name,
                "binaryName": child.binary,
                "state": state,
            }
        }

    def _child_ended(self, child: Process) -> None:
        if self._waiter is not None and self._waiter.live:
            self._waiter.resolve({"exitCode": child.exit_code})
        self._waiter = None
