"""Drive the kernel core directly, one raw SQE at a time, with no threads.

`Machine` is a host whose processes do not run anything: a test plays each
process by hand through `TestProc`, writing SQEs into its ring, calling
`kernel.enter`, and reading CQEs back. That makes hostile input and exact
interleavings (death mid-call, a full receiver) easy to set up and assert.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kernel import abi
from kernel.abi import Op, TransferMode
from kernel.captable import CapEntry, Origin, TransferPolicy
from kernel.codec import Bundle, decode, encode
from kernel.hosts.direct import DirectHost
from kernel.kernel import Kernel, KernelConfig
from kernel.ledger import Resource
from kernel.manifest import encode_document
from kernel.process import Process
from kernel.ring import Cqe, UserRing, sqe

BUNDLE = Bundle.default()


def iface(name: str) -> int:
    return BUNDLE.interface(name).id


def minimal_manifest(**kernel_params: str) -> bytes:
    return encode_document(
        {
            "schemaVersion": 1,
            "kernelParams": {"motd": "test", **kernel_params},
            "binaries": [
                {"name": "init", "module": "kernel.programs.init"},
                {"name": "echo-server", "module": "kernel.programs.echo_server"},
            ],
            "initConfig": {"init": "init", "services": []},
        }
    )


@dataclass
class Machine(DirectHost):
    """A DirectHost with a kernel, whose processes are played by the test."""

    config: KernelConfig | None = None

    def __post_init__(self) -> None:
        self.kernel = Kernel(self, minimal_manifest(), self.config)

    # Building processes
    def process(
        self,
        name: str = "p",
        grants: dict[str, str | CapEntry] | None = None,
        *,
        endpoints: dict[str, str] | None = None,
        parent: TestProc | None = None,
    ) -> TestProc:
        """A process holding kernel caps by name ("console"), given entries, and
        fresh endpoints it owns ({"name": "Echo"})."""
        spec = []
        for grant_name, source in (grants or {}).items():
            if isinstance(source, str):
                obj = self.kernel.kernel_caps[source]
                source = CapEntry(obj, obj.interface_id, TransferPolicy.COPY, Origin.KERNEL)
            spec.append((grant_name, "cap", source))
        for grant_name, interface in (endpoints or {}).items():
            spec.append((grant_name, "newEndpoint", iface(interface)))
        if parent is not None:  # as ProcessSpawner does: the child counts against its parent
            parent.proc.ledger.reserve(Resource.PROCESSES)
        proc, new_endpoints = self.kernel.create_process(
            name, "init", spec, parent=parent.proc if parent else None, session=_session()
        )
        test_proc = TestProc(self, proc)
        test_proc.endpoints = {n: ep for n, ep in zip(endpoints or {}, new_endpoints, strict=True)}
        return test_proc

    def client_of(self, owner: TestProc, endpoint: str) -> CapEntry:
        ep = owner.endpoints[endpoint]
        return CapEntry(ep.client, ep.serves, TransferPolicy.COPY, Origin.SPAWN_GRANT)


def _session():
    from kernel.process import SessionContext

    return SessionContext(os.urandom(16))


class TestProc:
    """One process, played by hand."""

    __test__ = False  # not a pytest class

    def __init__(self, machine: Machine, proc: Process) -> None:
        self.machine = machine
        self.proc = proc
        self.pid = proc.pid
        self.ring = UserRing.attach(proc.ring.region)
        self.endpoints: dict = {}
        self._next_addr = 0
        self._ud = 0

    @property
    def caps(self) -> dict[str, tuple[int, int]]:
        return {name: (cap_id, iface_id) for name, cap_id, iface_id in self.proc.capset}

    def cap(self, name: str) -> int:
        return self.caps[name][0]

    def alloc(self, data: bytes | int) -> int:
        """Bump-allocate buffer space (tests are short-lived)."""
        size = data if isinstance(data, int) else len(data)
        addr = self._next_addr
        self._next_addr += abi.align8(max(size, 8))
        if self._next_addr > self.ring.buffer_size:
            self._next_addr = abi.align8(max(size, 8))
            addr = 0
        if not isinstance(data, int):
            self.ring.write_buffer(addr, data)
        return addr

    def user_data(self) -> int:
        self._ud += 1
        return self._ud

    def submit(self, *entries: tuple) -> None:
        for entry in entries:
            self.ring.submit(entry)

    def enter(self) -> list[Cqe]:
        self.machine.kernel.enter(self.pid)
        return self.ring.reap()

    def run(self, *entries: tuple) -> list[Cqe]:
        self.submit(*entries)
        return self.enter()

    def xfers(self, caps: list[tuple[int, TransferMode]]) -> int:
        return self.alloc(b"".join(abi.XFER.pack(c, m, b"\0\0\0") for c, m in caps))

    def call_sqe(
        self,
        cap: str | int,
        interface: str,
        method: str,
        params: dict | None = None,
        *,
        result_len: int = 4096,
        xfers: list[tuple[int, TransferMode]] = (),
        raw_params: bytes | None = None,
        user_data: int | None = None,
    ) -> tuple:
        m = BUNDLE.interface(interface).method(method)
        message = raw_params if raw_params is not None else encode(m.params, params or {})
        cap_id = self.cap(cap) if isinstance(cap, str) else cap
        return sqe(
            Op.CALL,
            cap_id=cap_id,
            interface_id=iface(interface),
            method_id=m.ordinal,
            params_addr=self.alloc(message),
            params_len=len(message),
            result_addr=self.alloc(result_len),
            result_len=result_len,
            xfer_addr=self.xfers(list(xfers)) if xfers else 0,
            xfer_cap_count=len(xfers),
            user_data=user_data if user_data is not None else self.user_data(),
        )

    def result(self, cqe: Cqe, sqe_: tuple, interface: str, method: str) -> dict:
        m = BUNDLE.interface(interface).method(method)
        return decode(m.results, self.ring.read_buffer(sqe_.result_addr, cqe.result))

    def exception(self, cqe: Cqe, sqe_: tuple) -> dict:
        assert cqe.result == abi.Err.APPLICATION_EXCEPTION, cqe
        return decode(
            BUNDLE.struct("CapException"),
            self.ring.read_buffer(sqe_.result_addr, cqe.exception_len),
        )

    def records(self, cqe: Cqe) -> list[tuple[int, int]]:
        raw = self.ring.read_buffer(cqe.caps_addr, cqe.cap_count * abi.CAP_RECORD_SIZE)
        return [(c, i) for c, _, i in abi.CAP_RECORD.iter_unpack(raw)]

    def recv_sqe(self, endpoint: str = "ep", *, result_len: int = 4096) -> tuple:
        return sqe(
            Op.RECV,
            cap_id=self.cap(endpoint),
            interface_id=iface("Endpoint"),
            result_addr=self.alloc(result_len),
            result_len=result_len,
            user_data=self.user_data(),
        )

    def return_sqe(
        self,
        call_id: int,
        message: bytes,
        endpoint: str = "ep",
        *,
        xfers: list[tuple[int, TransferMode]] = (),
        flags: int = 0,
    ) -> tuple:
        return sqe(
            Op.RETURN,
            cap_id=self.cap(endpoint),
            interface_id=iface("Endpoint"),
            params_addr=self.alloc(message),
            params_len=len(message),
            call_id=call_id,
            xfer_addr=self.xfers(list(xfers)) if xfers else 0,
            xfer_cap_count=len(xfers),
            user_data=self.user_data(),
            flags=flags,
        )

    def recv_header(self, cqe: Cqe, recv: tuple) -> tuple:
        return abi.RECV_HEADER.unpack(self.ring.read_buffer(recv.result_addr, abi.RECV_HEADER_SIZE))

    def recv_params(self, cqe: Cqe, recv: tuple) -> bytes:
        header = self.recv_header(cqe, recv)
        return self.ring.read_buffer(recv.result_addr + abi.RECV_HEADER_SIZE, header[4])


def echo_params(data: bytes) -> bytes:
    return encode(BUNDLE.interface("Echo").method("echo").params, {"data": data})


def echo_results(data: bytes) -> bytes:
    return encode(BUNDLE.interface("Echo").method("echo").results, {"data": data})
