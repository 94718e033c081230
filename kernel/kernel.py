"""The kernel: drains rings, dispatches SQEs, and owns process lifecycles.

It makes every decision and performs no I/O: the host calls in (`enter`,
`exit`, `lost`, `run_timers`) and carries out what the kernel asks through
the `Host` protocol. One table maps each opcode to its handler. Nothing a
process writes into its ring can raise out of `enter`: every SQE ends in
exactly one completion, possibly an error.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel import abi
from kernel.abi import Err, Header, Op, SqeFlags
from kernel.binaries import BinarySpec, read_binaries
from kernel.capobject import CallContext, CapObject, Waiter
from kernel.captable import CapEntry, CapTable, Origin, TransferPolicy
from kernel.codec import Bundle, DecodeError, decode
from kernel.completion import Reply
from kernel.endpoint import Endpoint
from kernel.errors import CapError, TransportError
from kernel.ledger import Resource, ResourceLedger
from kernel.monitor import CallTrace, Monitor
from kernel.process import Process, SessionContext, State
from kernel.ring import KernelRing, RawCqe, Sqe
from kernel.services.agentport import AgentPort
from kernel.services.bootpackage import BootPackage
from kernel.services.broker import AuthorityBroker, BrokerAdmin
from kernel.services.console import Console
from kernel.services.credentials import CredentialStore
from kernel.services.entropy import EntropySource
from kernel.services.log import Log
from kernel.services.manual import Manual
from kernel.services.model import HostModel
from kernel.services.monitor import SystemMonitor
from kernel.services.sessions import SessionManager
from kernel.services.systeminfo import SystemInfo
from kernel.services.terminal import Terminal
from kernel.services.timer import Timer
from kernel.spawn import KILLED_EXIT_CODE, ProcessSpawner
from kernel.transfer import Transfer, finish

if TYPE_CHECKING:
    from kernel.host import Host, ModelBackend

MAX_FAULTS_KEPT = 32
# Ints, not enum members, on the per-SQE path: an enum member costs a lookup each time.
_NOP = int(Op.NOP)
_RETURN = int(Op.RETURN)
_PIPELINE = int(SqeFlags.PIPELINE)
_EXCEPTION = int(SqeFlags.EXCEPTION)
_new_tuple = tuple.__new__  # Sqe._make without its checks: the fields come from Struct


class BootError(Exception):
    """The manifest cannot be booted; the message says why."""


@dataclass(frozen=True, slots=True)
class KernelConfig:
    region_size: int = abi.DEFAULT_REGION_SIZE
    limits: tuple[tuple[str, int], ...] = ()  # overrides of ledger.DEFAULT_LIMITS by name


class Kernel:
    def __init__(
        self,
        host: Host,
        manifest: bytes,
        config: KernelConfig | None = None,
        *,
        manual: Iterable[dict] = (),
    ) -> None:
        self.host = host
        self.config = config or KernelConfig()
        self.manifest_bytes = manifest
        bundle = Bundle.default()
        try:
            self.manifest = decode(bundle.struct("SystemManifest"), manifest)
        except DecodeError as exc:
            raise BootError(f"the boot manifest is not a valid SystemManifest: {exc}") from None
        self.binaries = self._read_binaries(self.manifest, bundle)
        self.boot_ns = host.now_ns()
        self.secret = host.entropy(32)
        self.processes: dict[int, Process] = {}
        self.faults: list[str] = []  # the latest contained kernel bugs, for the host to report
        self.fault_count = 0
        self.halted = False
        self.monitor = Monitor(self.uptime_ns)
        self._pids = itertools.count(1)
        self._endpoint_ids = itertools.count(1)
        self._woken: set[Process] = set()
        self._timers: list[tuple[int, int, Waiter]] = []
        self._timer_seq = itertools.count()
        self._iface = {name: bundle.interface(name).id for name in ("Endpoint", "ClientEndpoint")}
        params = self.manifest["kernelParams"]
        broker = AuthorityBroker()
        # What init receives at boot, by the manifest's KernelCap names.
        self.kernel_caps: dict[str, CapObject] = {
            "console": Console(self),
            "timer": Timer(self),
            "entropy": EntropySource(self),
            "systemInfo": SystemInfo(params["motd"], params["hostname"]),
            "processSpawner": ProcessSpawner(self),
            "bootPackage": BootPackage(manifest),
            "sessionManager": SessionManager(self, CredentialStore(host.entropy)),
            "authorityBroker": broker,
            "brokerAdmin": BrokerAdmin(broker),
            "manual": Manual(list(manual)),
            "systemMonitor": SystemMonitor(self),
            "log": Log(self),
        }
        self.agents = AgentPort(self)  # outside agents' requests, for the shell to serve
        self.kernel_caps["agentPort"] = self.agents
        self.terminals: dict[str, Terminal] = {}
        self.model: HostModel | None = None
        self._ops: dict[int, Callable[[Process, Sqe], None]] = {  # by raw opcode
            Op.CALL: self._op_call,
            Op.RECV: self._op_recv,
            Op.RETURN: self._op_return,
            Op.RELEASE: self._op_release,
        }

    @staticmethod
    def _read_binaries(manifest: dict, bundle: Bundle) -> dict[str, BinarySpec]:
        try:
            binaries = read_binaries(manifest, bundle)
        except ValueError as exc:
            raise BootError(str(exc)) from None
        init = manifest["initConfig"]["init"]
        if init not in binaries:
            raise BootError(f"init binary {init!r} is not among the manifest's binaries")
        return binaries

    # --- boot and processes -------------------------------------------------------

    def boot(self) -> Process:
        """Start init with the kernel's bootstrap caps, in manifest-independent order."""
        grants = [
            (name, "cap", CapEntry(obj, obj.interface_id, TransferPolicy.COPY, Origin.KERNEL))
            for name, obj in self.kernel_caps.items()
        ]
        session = self.new_session(profile="system")
        init, _ = self.create_process(
            "init", self.manifest["initConfig"]["init"], grants, parent=None, session=session
        )
        return init

    def attach_terminal(
        self, name: str = "terminal", *, interactive: bool, cols: int = 80, rows: int = 24
    ) -> Terminal:
        """A host terminal, among the caps init receives under `name`. Before boot."""
        if name in self.kernel_caps and name not in self.terminals:
            raise ValueError(f"{name!r} is already a kernel cap")
        terminal = Terminal(self, name, interactive=interactive, cols=cols, rows=rows)
        self.terminals[name] = terminal
        self.kernel_caps[name] = terminal
        return terminal

    def attach_model(self, info: dict, backend: ModelBackend) -> HostModel:
        """A model (a ModelInfo dict) that `backend` runs, among init's caps as
        languageModel. Before boot."""
        if self.model is not None:
            raise ValueError("a model is already attached")
        self.model = HostModel(self, info, backend)
        self.kernel_caps["languageModel"] = self.model
        return self.model

    def new_session(self, profile: str = "anonymous") -> SessionContext:
        """A fresh SessionContext: a trusted spawn path's alternative to inheriting."""
        return SessionContext(self.host.entropy(16), profile=profile)

    def create_process(
        self,
        name: str,
        binary: str,
        grants: list[tuple],
        *,
        parent: Process | None,
        session: SessionContext | None = None,
    ) -> tuple[Process, list[Endpoint]]:
        """Build a process with exactly `grants` and ask the host to run it.

        Grants are (name, kind, value): ("cap", CapEntry) copies a held cap,
        ("clientOf", CapEntry of an Endpoint) narrows it to its client facet,
        ("newEndpoint", interface id) makes an endpoint the child owns.
        Returns the child and its new endpoints, whose client facets the
        spawner hands back.
        """
        if session is None:
            assert parent is not None, "a process without a parent is given its session"
            session = parent.session
        pid = next(self._pids)
        ledger = ResourceLedger()
        for resource, limit in self.config.limits:
            ledger.limits[Resource(resource)] = limit
        region = self.host.allocate_region(pid, self.config.region_size)
        proc = Process(
            pid=pid,
            name=name,
            binary=binary,
            ring=KernelRing.create(region, pid),
            ledger=ledger,
            table=CapTable(ledger),
            session=session,
            parent=parent,
            woken=self._woken,
            start_ns=self.uptime_ns(),
        )
        endpoints = []
        for grant_name, kind, value in grants:
            if kind == "newEndpoint":
                endpoint = self.new_endpoint(proc, value)
                endpoints.append(endpoint)
                entry = CapEntry(
                    endpoint,
                    self._iface["Endpoint"],
                    TransferPolicy.NON_TRANSFERABLE,
                    Origin.SPAWN_GRANT,
                )
            elif kind == "clientOf":
                ep = value if isinstance(value, Endpoint) else value.obj
                entry = CapEntry(ep.client, ep.serves, TransferPolicy.COPY, Origin.SPAWN_GRANT)
            else:  # a copy of the hold edge, bound to the same session as the original
                entry = CapEntry(
                    value.obj,
                    value.interface_id,
                    value.policy,
                    Origin.SPAWN_GRANT,
                    lease=value.lease,
                )
            cap_id = proc.table.insert(entry)
            proc.capset.append((grant_name, cap_id, entry.interface_id))
        proc.write_capset()
        proc.ring.set(Header.MEMORY_LIMIT_MIB, ledger.limits[Resource.MEMORY_MIB])
        self.processes[pid] = proc
        try:
            self.host.start(proc, self.binaries[binary].module)
        except Exception:
            del self.processes[pid]
            for endpoint in endpoints:
                endpoint.revoke()
            proc.table.clear()
            raise
        self.monitor.process_started(proc)
        return proc, endpoints

    def new_endpoint(self, owner: Process, serves: int) -> Endpoint:
        """An endpoint `owner` serves; revoked when `owner` ends."""
        endpoint = Endpoint(
            next(self._endpoint_ids), owner, serves or self._iface["ClientEndpoint"], self.secret
        )
        owner.endpoints.append(endpoint)
        return endpoint

    @property
    def endpoint_interface(self) -> int:
        return self._iface["Endpoint"]

    def exit(self, pid: int, code: int) -> None:
        """The `exit` syscall."""
        self._end(pid, State.EXITED, code, "exited", "exited")

    def kill(self, pid: int, reason: str) -> None:
        self._end(pid, State.KILLED, KILLED_EXIT_CODE, reason, "killed")

    def lost(self, pid: int, reason: str) -> None:
        """The host saw the process die without `exit` (a crash, a signal)."""
        self._end(pid, State.KILLED, KILLED_EXIT_CODE, reason, "crashed")

    def _end(self, pid: int, state: State, code: int, reason: str, kind: str) -> None:
        proc = self.processes.pop(pid, None)
        if proc is None:
            return
        proc.state = state
        proc.exit_code = code
        proc.end_reason = reason
        self.monitor.process_ended(proc, kind)
        proc.ring.mark_dead()
        for reply in list(proc.replies):
            reply.cancel()
        for endpoint in proc.endpoints:  # epoch revocation: its callers see disconnected
            endpoint.revoke()
        proc.table.clear()
        proc.backlog.clear()
        if proc.parent is not None and proc.parent.alive:
            proc.parent.ledger.release(Resource.PROCESSES)
        for callback in proc.on_end:
            callback(proc)
        self._woken.add(proc)
        self.host.stop(proc)
        if not self.processes:
            self.halted = True

    # --- the ring ----------------------------------------------------------------------

    def enter(self, pid: int) -> None:
        """`cap_enter`'s kernel half: post what waited, then drain the SQ once."""
        proc = self.processes.get(pid)
        if proc is None:
            return
        self._woken.add(proc)
        proc.enters += 1
        if proc.backlog:
            proc.flush_backlog()
            if len(proc.backlog) >= abi.CQ_ENTRIES:
                return  # back-pressure: reap completions before submitting more
        entries, corrupt = proc.ring.take_submissions(abi.SQ_ENTRIES)
        if corrupt:
            proc.post((0, Err.CORRUPT_SQ, 0, 0, 0, 0, 0))
        nops: list[RawCqe] = []  # consecutive NOPs complete as one batch
        for raw in entries:
            # NOP fast path: opcode NOP and flags, reserved and pipeline fields all zero
            if raw[0] == _NOP and not (raw[1] or raw[6] or raw[14] or raw[15] or raw[16]):
                nops.append((raw[13], 0, 0, 0, 0, 0, 0))
                continue
            if nops:
                proc.post_many(nops)
                nops = []
            self._dispatch(proc, _new_tuple(Sqe, raw))
            if not proc.alive:
                return
        if nops:
            proc.post_many(nops)

    def _dispatch(self, proc: Process, sqe: Sqe) -> None:
        try:
            if sqe.reserved or sqe.reserved2:
                raise TransportError(Err.INVALID_SQE, "reserved SQE fields must be zero")
            if sqe.pipeline_dep or sqe.pipeline_field or sqe.flags & _PIPELINE:
                raise TransportError(Err.INVALID_SQE, "promise pipelining is not supported")
            allowed = _EXCEPTION if sqe.opcode == _RETURN else 0
            if sqe.flags & ~allowed:
                raise TransportError(Err.INVALID_SQE, f"flags {sqe.flags:#x} not valid here")
            handler = self._ops.get(sqe.opcode)
            if handler is None:
                raise TransportError(Err.UNSUPPORTED_OPCODE, f"opcode {sqe.opcode}")
            handler(proc, sqe)
        except TransportError as exc:
            proc.post((sqe.user_data, exc.code, 0, 0, 0, 0, 0))
        except Exception as exc:  # a kernel bug: contain it, keep the evidence
            self._fault(f"pid {proc.pid} opcode {sqe.opcode}: {type(exc).__name__}: {exc}")
            proc.post((sqe.user_data, Err.KERNEL_FAULT, 0, 0, 0, 0, 0))

    def _fault(self, text: str) -> None:
        self.fault_count += 1
        self.faults.append(text)
        del self.faults[:-MAX_FAULTS_KEPT]

    def _params(self, proc: Process, sqe: Sqe) -> bytes:
        if not proc.ring.buffer_range_ok(sqe.params_addr, sqe.params_len):
            raise TransportError(Err.BAD_BUFFER, "params range outside the buffer area")
        return proc.ring.read_buffer(sqe.params_addr, sqe.params_len)

    def _op_call(self, proc: Process, sqe: Sqe) -> None:
        entry = proc.table.lookup(sqe.cap_id, sqe.interface_id)
        params = self._params(proc, sqe)
        reply = Reply(proc, sqe.user_data, sqe.result_addr, sqe.result_len)
        obj = entry.obj
        transfer = None
        if sqe.xfer_cap_count:  # most calls carry no caps
            try:
                transfer = Transfer.read(proc, sqe, to_process=obj.takes_transfer)
            except TransportError:
                reply.cancel()
                raise
        if obj.traced and self.monitor.tracing:
            reply.trace = CallTrace(
                self.monitor, proc.pid, obj.server_pid(), sqe.interface_id, sqe.method_id
            )
        ctx = CallContext(
            self, proc, entry, sqe.method_id, sqe.interface_id, params, transfer, reply
        )
        try:
            if obj.revoked:
                raise CapError.disconnected(f"{obj.describe()} is gone")
            if entry.lease is not None and not entry.lease.live:
                raise CapError.disconnected(
                    f"{obj.describe()}: revoked, the session that granted it {entry.lease.ended}"
                )
            obj.invoke(ctx)
        except CapError as exc:
            finish(transfer, commit=False)
            reply.fail(exc)
            return
        except TransportError as exc:  # e.g. no room for the answer, checked up front
            finish(transfer, commit=False)
            reply.transport(exc.code)
            return
        except Exception as exc:
            finish(transfer, commit=False)
            self._fault(f"pid {proc.pid} calling {obj.describe()}: {type(exc).__name__}: {exc}")
            reply.fail(CapError.failed(f"{obj.describe()} failed inside the kernel"))
            return
        if not obj.takes_transfer:
            finish(transfer, commit=True)

    def _endpoint(self, proc: Process, sqe: Sqe) -> Endpoint:
        entry = proc.table.lookup(sqe.cap_id, sqe.interface_id)
        if not isinstance(entry.obj, Endpoint) or sqe.interface_id != self._iface["Endpoint"]:
            raise TransportError(Err.WRONG_INTERFACE, "RECV and RETURN need a raw Endpoint")
        return entry.obj

    def _op_recv(self, proc: Process, sqe: Sqe) -> None:
        endpoint = self._endpoint(proc, sqe)
        endpoint.receive(Reply(proc, sqe.user_data, sqe.result_addr, sqe.result_len))

    def _op_return(self, proc: Process, sqe: Sqe) -> None:
        endpoint = self._endpoint(proc, sqe)
        message = self._params(proc, sqe)
        transfer = Transfer.read(proc, sqe, to_process=True) if sqe.xfer_cap_count else None
        error = endpoint.answer(
            proc, sqe.call_id, message, transfer, exception=bool(sqe.flags & SqeFlags.EXCEPTION)
        )
        proc.post((sqe.user_data, error or 0, 0, 0, 0, 0, 0))

    def _op_release(self, proc: Process, sqe: Sqe) -> None:
        entry = proc.table.get(sqe.cap_id)
        proc.table.remove(sqe.cap_id)
        if isinstance(entry.obj, Endpoint) and entry.obj.owner is proc:
            entry.obj.revoke()  # nobody can serve it any more
            proc.endpoints.remove(entry.obj)
        proc.post((sqe.user_data, 0, 0, 0, 0, 0, 0))

    # --- time -----------------------------------------------------------------------------

    def uptime_ns(self) -> int:
        return self.host.now_ns() - self.boot_ns

    def add_timer(self, deadline_ns: int, waiter: Waiter) -> None:
        heapq.heappush(self._timers, (deadline_ns, next(self._timer_seq), waiter))

    def next_deadline(self) -> int | None:
        while self._timers and not self._timers[0][2].live:
            heapq.heappop(self._timers)[2].cancel()
        return self._timers[0][0] if self._timers else None

    def run_timers(self, now_ns: int) -> None:
        while self._timers and self._timers[0][0] <= now_ns:
            _, _, waiter = heapq.heappop(self._timers)
            if waiter.live:
                waiter.resolve({})

    # --- for hosts ---------------------------------------------------------------------------

    def take_woken(self) -> set[Process]:
        """Processes with new completions (or newly dead) since the last call."""
        woken = set(self._woken)
        self._woken.clear()
        return woken
