"""Runtime: one per process, the only thing that touches the process's ring.

Calls are synchronous to the program (submit, `cap_enter`, match the CQE by
user_data) but the ring underneath is not: completions that arrive for
other requests, such as RECVs on endpoints this process serves, are kept
until asked for. Caps that arrive in results become owned `Cap`s that
RELEASE themselves when dropped, as capOS's `OwnedCapability` does.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, overload

from kernel import abi
from kernel.abi import Err, Op, SqeFlags, TransferMode
from kernel.codec import Bundle, decode, encode
from kernel.codec.bundle import InterfaceType, ListType, Method, StructType
from kernel.region import Region
from kernel.ring import Cqe, UserRing, sqe
from kernel.runtime.buffers import BufferArena
from kernel.runtime.capset import read_capset
from kernel.runtime.errors import ProcessEnded, RemoteError, TransportFailure
from kernel.runtime.syscalls import Syscalls

DEFAULT_RESULT_SIZE = 8 * 1024
RELEASE_TAG = 1 << 63  # user_data of RELEASEs: nobody waits for those completions


class Cap:
    """A capability this process holds. Attribute access yields typed methods."""

    __slots__ = ("__weakref__", "cap_id", "interface", "interface_id", "owned", "runtime")

    def __init__(self, runtime: Runtime, cap_id: int, interface_id: int, *, owned: bool) -> None:
        self.runtime = runtime
        self.cap_id = cap_id
        self.interface_id = interface_id
        try:
            self.interface: InterfaceType | None = runtime.bundle.interface_by_id(interface_id)
        except KeyError:  # an endpoint typed with an id this schema does not know
            self.interface = None
        self.owned = owned  # bootstrap CapSet refs are not owned: dropping them keeps the cap

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        interface = self.interface
        if interface is None or name.startswith("_"):
            raise AttributeError(name)
        try:
            method = interface.method(name)
        except KeyError:
            raise AttributeError(f"{interface.name} has no method {name!r}") from None
        runtime = self.runtime
        return lambda **params: runtime.result(
            runtime.begin_method(self, method, params, DEFAULT_RESULT_SIZE)
        )

    def release(self) -> None:
        """Give the cap back now (RELEASE); the handle is unusable afterwards."""
        if self.cap_id:
            self.runtime._release(self.cap_id)
            self.cap_id = 0

    def __del__(self) -> None:
        if self.owned and self.cap_id:
            with contextlib.suppress(Exception):  # interpreter shutdown
                self.runtime._pending_releases.append(self.cap_id)

    def __repr__(self) -> str:
        name = self.interface.name if self.interface else f"{self.interface_id:#x}"
        return f"<Cap {name} {self.cap_id:#x}>"


@dataclass(slots=True)
class Pending:
    """A CALL in flight: collect it with `Runtime.result`, or `abandon` it."""

    user_data: int
    base: int  # the call's buffer allocation
    result_addr: int
    method: Method | None = None
    moved: tuple[Cap, ...] = ()  # caps the call moves away: gone from here once it succeeds


@dataclass(frozen=True, slots=True)
class PendingReturn:
    user_data: int
    params_addr: int
    xfer_addr: int  # -1: none


@dataclass(frozen=True, slots=True)
class Move:
    """Wrap a Cap in params to move it instead of copying it."""

    cap: Cap


@dataclass(slots=True)
class Incoming:
    """One call delivered to an endpoint this process serves."""

    call_id: int
    interface_id: int
    method_id: int
    params: bytes
    caps: list[Cap]
    scoped_ref: int  # 128-bit, opaque: the caller's session as this endpoint sees it
    session_epoch: int


class Runtime:
    def __init__(self, region: Region, syscalls: Syscalls, bundle: Bundle | None = None):
        self.ring = UserRing.attach(region)
        self.syscalls = syscalls
        self.bundle = bundle or Bundle.default()
        self.arena = BufferArena(self.ring.buffer_size)
        self.pid = self.ring.get(abi.Header.PID)
        self.capset = read_capset(region)
        self._user_data = itertools.count(1)
        self._completed: dict[int, Cqe] = {}
        self._pending_releases: list[int] = []
        self._abandoned: dict[int, int] = {}  # user_data -> buffer to free on completion
        self.caps: dict[str, Cap] = {
            e.name: Cap(self, e.cap_id, e.interface_id, owned=False) for e in self.capset
        }

    # --- CapSet ----------------------------------------------------------------------

    def cap(self, name: str, interface: str | None = None) -> Cap:
        """A bootstrap cap by name, checked against the interface the program expects."""
        try:
            found = self.caps[name]
        except KeyError:
            have = ", ".join(self.caps) or "nothing"
            raise LookupError(
                f"no cap named {name!r} in this process's CapSet (it has: {have})"
            ) from None
        if interface is not None and found.interface_id != self.bundle.interface(interface).id:
            actual = found.interface.name if found.interface else hex(found.interface_id)
            raise LookupError(f"cap {name!r} is a {actual}, not a {interface}")
        return found

    # --- the ring ----------------------------------------------------------------------

    def submit(self, entry: tuple) -> None:
        """Queue one SQE, entering the kernel first if the SQ is full."""
        ring = self.ring
        if self._pending_releases:
            self._flush_releases()
        while ring.sq_space() == 0:
            self.enter(0)
        ring.submit(entry)

    def enter(self, min_complete: int, timeout_ns: int | None = None) -> None:
        """cap_enter, then keep every completion that arrived."""
        if self._pending_releases:
            self._flush_releases()
        self.syscalls.cap_enter(min_complete, timeout_ns)
        self._reap()

    def _reap(self) -> None:
        ring = self.ring
        if ring.dead:
            raise ProcessEnded(f"pid {self.pid} was ended by the kernel")
        completed, abandoned = self._completed, self._abandoned
        for cqe in ring.reap():
            user_data = cqe[0]
            if user_data & RELEASE_TAG:
                continue
            if abandoned and user_data in abandoned:
                self._drop_abandoned(cqe, abandoned.pop(user_data))
            else:
                completed[user_data] = cqe

    def done(self, user_data: int) -> bool:
        """Whether this request's completion has arrived (and waits to be collected)."""
        return user_data in self._completed

    def wait(self, user_data: int) -> Cqe:
        completed = self._completed
        while user_data not in completed:
            self.enter(1)
        return completed.pop(user_data)

    # Without a timeout there is always an answer; the overloads say so to the checker.
    @overload
    def ready(self, user_datas: Iterable[int]) -> int: ...
    @overload
    def ready(self, user_datas: Iterable[int], timeout_ns: int | None) -> int | None: ...
    def ready(self, user_datas: Iterable[int], timeout_ns: int | None = None) -> int | None:
        """The first of these requests to complete, left for collecting (None: timed out)."""
        wanted = list(user_datas)
        completed = self._completed
        while True:
            for ud in wanted:
                if ud in completed:
                    return ud
            before = len(completed)
            self.enter(1, timeout_ns)
            if timeout_ns is not None and len(completed) == before:
                return None

    def _release(self, cap_id: int) -> None:
        self._pending_releases.append(cap_id)
        self._flush_releases()

    def _flush_releases(self) -> None:
        releases, self._pending_releases = self._pending_releases, []
        for cap_id in releases:
            while self.ring.sq_space() == 0:
                self.enter(0)
            self.ring.submit(sqe(Op.RELEASE, cap_id=cap_id, user_data=RELEASE_TAG | cap_id))

    # --- buffers ------------------------------------------------------------------------

    def _put(self, data: bytes) -> int:
        addr = self.arena.alloc(len(data))
        self.ring.write_buffer(addr, data)
        return addr

    def _put_transfers(self, caps: list[tuple[Cap, TransferMode]]) -> int:
        if not caps:
            return 0
        return self._put(b"".join(abi.XFER.pack(c.cap_id, m, b"\0\0\0") for c, m in caps))

    def _records(self, cqe: Cqe) -> list[Cap]:
        if not cqe.cap_count:
            return []
        raw = self.ring.read_buffer(cqe.caps_addr, cqe.cap_count * abi.CAP_RECORD_SIZE)
        return [Cap(self, c, i, owned=True) for c, _, i in abi.CAP_RECORD.iter_unpack(raw)]

    # --- calling -----------------------------------------------------------------------

    def call(
        self,
        cap: Cap,
        method_name: str,
        params: dict[str, Any] | None = None,
        *,
        result_size: int = DEFAULT_RESULT_SIZE,
    ) -> dict[str, Any]:
        """Invoke a method; returns its results with cap fields as owned Caps."""
        return self.result(self.begin(cap, method_name, params, result_size=result_size))

    def begin(
        self,
        cap: Cap,
        method_name: str,
        params: dict[str, Any] | None = None,
        *,
        result_size: int = DEFAULT_RESULT_SIZE,
    ) -> Pending:
        """Submit a typed call without waiting: `result()` or `first()` collects it."""
        if cap.interface is None:
            raise TypeError(f"{cap!r}: interface not in the schema bundle")
        return self.begin_method(cap, cap.interface.method(method_name), params, result_size)

    def begin_method(
        self, cap: Cap, method: Method, params: dict[str, Any] | None, result_size: int
    ) -> Pending:
        """`begin` with the method already looked up (a Cap's attribute did it)."""
        sent: list[tuple[Cap, TransferMode]] = []
        message = encode(method.params, _swap_caps_out(params, sent) if params else {})
        pending = self.begin_raw(cap, method.ordinal, message, sent, result_size=result_size)
        pending.method = method
        return pending

    def begin_raw(
        self,
        cap: Cap,
        method_id: int,
        message: bytes,
        transfers: Sequence[tuple[Cap, TransferMode]] = (),
        *,
        result_size: int = DEFAULT_RESULT_SIZE,
    ) -> Pending:
        """Submit a CALL with an encoded message.

        Params, descriptors and the result buffer share one allocation: a
        call costs the arena one alloc and one free.
        """
        params_len = len(message)
        xfer_addr = (params_len + 7) & ~7
        if transfers:
            xfer = b"".join(abi.XFER.pack(c.cap_id, m, b"\0\0\0") for c, m in transfers)
            result_offset = xfer_addr + abi.align8(len(xfer))
        else:
            result_offset = xfer_addr
        base = self.arena.alloc(result_offset + result_size)
        ring = self.ring
        ring.write_buffer(base, message)
        if transfers:
            ring.write_buffer(base + xfer_addr, xfer)
            moved = tuple(c for c, mode in transfers if mode is TransferMode.MOVE)
            pending = Pending(next(self._user_data), base, base + result_offset, moved=moved)
        else:
            pending = Pending(next(self._user_data), base, base + result_offset)
        try:
            self.submit(
                (
                    Op.CALL,
                    0,
                    len(transfers),
                    cap.cap_id,
                    cap.interface_id,
                    method_id,
                    0,
                    params_len,
                    base,
                    pending.result_addr,
                    result_size,
                    base + xfer_addr if transfers else 0,
                    0,
                    pending.user_data,
                    0,
                    0,
                    0,
                )
            )
        except BaseException:
            self.arena.free(base)
            raise
        return pending

    def call_raw(
        self,
        cap: Cap,
        method_id: int,
        message: bytes,
        transfers: Sequence[tuple[Cap, TransferMode]] = (),
        *,
        result_size: int = DEFAULT_RESULT_SIZE,
    ) -> tuple[Cqe, bytes]:
        """CALL and wait; returns the CQE and the raw result message."""
        pending = self.begin_raw(cap, method_id, message, transfers, result_size=result_size)
        return self.raw_result(pending)

    @overload
    def first(self, pendings: Iterable[Pending]) -> Pending: ...
    @overload
    def first(self, pendings: Iterable[Pending], timeout_ns: int | None) -> Pending | None: ...
    def first(self, pendings: Iterable[Pending], timeout_ns: int | None = None) -> Pending | None:
        """The first of `pendings` to complete (None if `timeout_ns` passes first)."""
        by_ud = {p.user_data: p for p in pendings}
        user_data = self.ready(by_ud, timeout_ns)
        return None if user_data is None else by_ud[user_data]

    def raw_result(self, pending: Pending) -> tuple[Cqe, bytes]:
        """Wait for a call, free its buffer; raise its error or return its bytes."""
        try:
            cqe = self.wait(pending.user_data)
            if cqe.result < 0:
                self._check(cqe, pending.result_addr)
            for cap in pending.moved:
                cap.cap_id = 0  # the callee holds it now; this handle names nothing
            return cqe, self.ring.read_buffer(pending.result_addr, cqe.result)
        finally:
            self.arena.free(pending.base)

    def result(self, pending: Pending) -> dict[str, Any]:
        """A typed call's results (waiting if need be), caps adopted as owned Caps."""
        cqe, message = self.raw_result(pending)
        method = pending.method
        assert method is not None, "result() needs a call made with begin()"
        results = decode(method.results, message)
        if cqe.cap_count:
            return _swap_caps_in(method.results, results, self._records(cqe))
        return results

    def abandon(self, pending: Pending) -> None:
        """Stop waiting for a call (Ctrl-C). Its buffer is freed, and any caps it
        brings released, when its completion arrives: the kernel still writes there."""
        if pending.user_data in self._completed:
            self._drop_abandoned(self._completed.pop(pending.user_data), pending.base)
        else:
            self._abandoned[pending.user_data] = pending.base

    def _drop_abandoned(self, cqe: Cqe, base: int) -> None:
        self.arena.free(base)
        if cqe.result >= 0:
            for cap in self._records(cqe):  # queue RELEASEs; flushed on the next enter
                self._pending_releases.append(cap.cap_id)
                cap.cap_id = 0

    def _check(self, cqe: Cqe, result_addr: int) -> None:
        if cqe.result >= 0:
            return
        if cqe.result == Err.APPLICATION_EXCEPTION:
            raw = self.ring.read_buffer(result_addr, cqe.exception_len)
            exc = decode(self.bundle.struct("CapException"), raw)
            raise RemoteError(exc["type"], exc["message"])
        raise TransportFailure(cqe.result)

    # --- serving ------------------------------------------------------------------------

    def recv_submit(self, endpoint: Cap, size: int = DEFAULT_RESULT_SIZE) -> tuple[int, int]:
        """Post a RECV; returns (user_data, buffer address) for `recv_complete`."""
        addr = self.arena.alloc(size)
        user_data = next(self._user_data)
        # Sqe fields in order (see ring.Sqe); a plain tuple keeps the serving path short.
        self.submit(
            (
                Op.RECV,
                0,
                0,
                endpoint.cap_id,
                endpoint.interface_id,
                0,
                0,
                0,
                0,
                addr,
                size,
                0,
                0,
                user_data,
                0,
                0,
                0,
            )
        )
        return user_data, addr

    def recv_complete(self, cqe: Cqe, addr: int) -> Incoming:
        """Read a RECV completion out of its buffer and free the buffer."""
        try:
            self._check(cqe, addr)
            raw = self.ring.read_buffer(addr, cqe.result)  # the header, then the params
            call_id, iface, method_id, _, params_len, lo, hi, epoch = abi.RECV_HEADER.unpack_from(
                raw
            )
            params = raw[abi.RECV_HEADER_SIZE : abi.RECV_HEADER_SIZE + params_len]
            caps = self._records(cqe) if cqe.cap_count else []
            return Incoming(call_id, iface, method_id, params, caps, lo | hi << 64, epoch)
        finally:
            self.arena.free(addr)

    def recv(self, endpoint: Cap, size: int = DEFAULT_RESULT_SIZE) -> Incoming:
        """The next call; a call bigger than `size` is received into a buffer it fits."""
        while True:
            user_data, addr = self.recv_submit(endpoint, size)
            cqe = self.wait(user_data)
            if cqe.result == Err.RESULT_TOO_SMALL and cqe.call_id > size:
                self.arena.free(addr)
                size = cqe.call_id
                continue
            return self.recv_complete(cqe, addr)

    def return_(
        self,
        endpoint: Cap,
        call_id: int,
        message: bytes,
        transfers: Sequence[tuple[Cap, TransferMode]] = (),
        *,
        exception: bool = False,
    ) -> None:
        """RETURN: answer `call_id`. Raises TransportFailure if the kernel refused."""
        pending = self.submit_return(endpoint, call_id, message, transfers, exception=exception)
        self.wait(pending.user_data)
        self.collect_return(pending)

    def submit_return(
        self,
        endpoint: Cap,
        call_id: int,
        message: bytes,
        transfers: Sequence[tuple[Cap, TransferMode]] = (),
        *,
        exception: bool = False,
    ) -> PendingReturn:
        """Queue a RETURN without waiting; `collect_return` finishes it."""
        params_addr = self._put(message)
        xfer_addr = self._put_transfers(list(transfers)) if transfers else -1
        user_data = next(self._user_data)
        self.submit(
            (
                Op.RETURN,
                SqeFlags.EXCEPTION if exception else 0,
                len(transfers),
                endpoint.cap_id,
                endpoint.interface_id,
                0,
                0,
                len(message),
                params_addr,
                0,
                0,
                max(xfer_addr, 0),
                call_id,
                user_data,
                0,
                0,
                0,
            )
        )
        return PendingReturn(user_data, params_addr, xfer_addr)

    def collect_return(self, pending: PendingReturn) -> bool:
        """False while the RETURN is still pending; frees its buffers once done.

        Raises TransportFailure if the kernel refused it (the caller could
        not take the answer)."""
        cqe = self._completed.pop(pending.user_data, None)
        if cqe is None:
            return False
        self.arena.free(pending.params_addr)
        if pending.xfer_addr >= 0:
            self.arena.free(pending.xfer_addr)
        if cqe.result < 0:
            raise TransportFailure(cqe.result, "RETURN")
        return True

    def wait_for(
        self, user_data: int, *, also: Collection[int] = (), timeout_ns: int | None = None
    ) -> Cqe | None:
        """One completion, when those of `also` are due first (a server's RETURNs): the
        kernel then wakes us once for all of them. None if `timeout_ns` passes.

        Each wait asks only for what has not arrived yet. Asking again for a RETURN's
        completion already reaped waits for more than can come, which only the host's
        idle wake ends, and only while nothing else of ours is outstanding."""
        completed = self._completed
        while user_data not in completed:
            before = len(completed)
            due = 1
            for ud in also:
                if ud not in completed:
                    due += 1
            self.enter(due, timeout_ns)
            if timeout_ns is not None and len(completed) == before:
                return None
        return completed.pop(user_data)

    def serve(
        self,
        endpoint: Cap,
        interface: str,
        impl: object,
        *,
        until: Callable[[], bool] = lambda: False,
    ) -> None:
        """Answer calls on `endpoint` with `impl`'s methods of the same names (see
        service.ServiceLoop, which this runs)."""
        from kernel.runtime.service import ServiceLoop

        ServiceLoop(self, endpoint, interface, impl).run(until)

    def exit(self, code: int = 0) -> None:
        if self._pending_releases:
            self._flush_releases()
        self.syscalls.exit(code)


_HOLDS_CAPS = (Cap, Move, dict, list)  # what _swap_caps_out must look inside or replace


def _swap_caps_out(value: Any, sent: list[tuple[Cap, TransferMode]]) -> Any:
    """Replace Cap (and Move) objects in params by capability-table indices.

    A cap named twice travels once: both places get the same index.
    """
    if type(value) is dict:
        for item in value.values():
            if isinstance(item, _HOLDS_CAPS):
                break
        else:
            return value  # most params: plain values only, nothing to replace
    if isinstance(value, Cap | Move):
        cap, mode = (
            (value, TransferMode.COPY) if isinstance(value, Cap) else (value.cap, TransferMode.MOVE)
        )
        for index, (other, other_mode) in enumerate(sent):
            if other.cap_id == cap.cap_id:
                if other_mode != mode:
                    raise ValueError(f"{cap!r} is both copied and moved in one call")
                return index
        sent.append((cap, mode))
        return len(sent) - 1
    if isinstance(value, dict):
        return {k: _swap_caps_out(v, sent) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap_caps_out(v, sent) for v in value]
    return value


def _swap_caps_in(struct: StructType, value: dict[str, Any], caps: list[Cap]) -> dict[str, Any]:
    """Replace capability-table indices in decoded results by the Caps received."""
    if not caps:
        return value

    def convert(kind: Any, item: Any) -> Any:
        if item is None:
            return None
        if isinstance(kind, InterfaceType) or kind == "capability":
            return caps[item] if isinstance(item, int) and 0 <= item < len(caps) else None
        if isinstance(kind, ListType):
            return [convert(kind.element, x) for x in item]
        if isinstance(kind, StructType):
            return _swap_caps_in(kind, item, caps)
        return item

    out = dict(value)
    for field in struct.fields:
        if field.name not in out:
            continue
        kind = field.group if field.group is not None else field.type
        out[field.name] = convert(kind, out[field.name])
    return out
