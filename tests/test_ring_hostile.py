"""Hostile ring input: every SQE field, the ring indices, and a seeded fuzz loop.

Each test submits something a malicious or buggy process could write and
asserts the exact completion the ABI promises (a negative `Err`, or a
CapException in the result buffer), then that the kernel still works: a
NOP completes, other processes are unaffected, and `kernel.faults` is empty.
"""

from __future__ import annotations

import random
import struct
import time
from dataclasses import dataclass

import pytest
from harness import BUNDLE, Machine, TestProc, echo_params, echo_results, iface

from kernel import abi
from kernel.abi import Err, Header, Op, SqeFlags, TransferMode
from kernel.codec import encode
from kernel.ledger import Resource
from kernel.ring import Cqe, Sqe, sqe

CONSOLE = iface("Console")
TIMER = iface("Timer")
ECHO = iface("Echo")
ENDPOINT = iface("Endpoint")
CLIENT_ENDPOINT = iface("ClientEndpoint")
BUFFER_SIZE = abi.DEFAULT_REGION_SIZE - abi.BUFFER_OFFSET
# a successful Console.write answers an empty results struct
WRITE_OK = len(encode(BUNDLE.interface("Console").method("write").results, {}))


@dataclass
class World:
    m: Machine
    p: TestProc  # the hostile process: console, timer, and a client facet of srv's "ep"
    srv: TestProc  # owns the Echo endpoint "ep" and a console
    q: TestProc  # a bystander with its own console


@pytest.fixture
def w() -> World:
    m = Machine()
    srv = m.process("srv", {"console": "console"}, endpoints={"ep": "Echo"})
    p = m.process("p", {"console": "console", "timer": "timer", "echo": m.client_of(srv, "ep")})
    q = m.process("q", {"console": "console"})
    return World(m, p, srv, q)


def one(cqes: list[Cqe]) -> Cqe:
    assert len(cqes) == 1, cqes
    return cqes[0]


def run_one(p: TestProc, entry: tuple) -> Cqe:
    cqe = one(p.run(entry))
    assert cqe.user_data == entry.user_data
    return cqe


def ud(p: TestProc) -> int:
    return p.user_data()


def table_snapshot(p: TestProc) -> list[tuple[int, object, int, bool]]:
    return [(c, e.obj, e.interface_id, e.reserved) for c, e in p.proc.table]


def assert_ledger_consistent(p: TestProc) -> None:
    ledger = p.proc.ledger
    assert ledger.used[Resource.CAP_SLOTS] == len(p.proc.table)
    assert ledger.used[Resource.OUTSTANDING_CALLS] == len(p.proc.replies)
    for resource in Resource:
        assert 0 <= ledger.used[resource] <= ledger.limits[resource], resource


def assert_healthy(w: World) -> None:
    """The kernel still serves everyone: NOPs complete, a bystander's console works."""
    assert w.m.kernel.faults == []
    for proc in (w.p, w.srv, w.q):
        nop = sqe(Op.NOP, user_data=0xABCDEF)
        assert [c for c in proc.run(nop) if c.user_data == 0xABCDEF] == [
            Cqe(0xABCDEF, 0, 0, 0, 0, 0, 0)
        ]
        assert_ledger_consistent(proc)
    before = len(w.m.console)
    write = w.q.call_sqe("console", "Console", "write", {"data": b"still-alive"})
    assert run_one(w.q, write).result == WRITE_OK
    assert bytes(w.m.console[before:]) == b"still-alive"
    assert w.m.kernel.faults == []


def console_write(p: TestProc, data: bytes = b"x", **overrides: int) -> Sqe:
    return p.call_sqe("console", "Console", "write", {"data": data})._replace(**overrides)


# --- opcode and flags -------------------------------------------------------------


@pytest.mark.parametrize("opcode", [0, 6, 7, 0x42, 0xFF])
def test_unknown_opcode_is_unsupported(w: World, opcode: int) -> None:
    entry = sqe(opcode, cap_id=w.p.cap("console"), interface_id=CONSOLE, user_data=ud(w.p))
    assert run_one(w.p, entry).result == Err.UNSUPPORTED_OPCODE
    assert_healthy(w)


def test_zero_filled_sqe_is_unsupported_opcode(w: World) -> None:
    entry = Sqe(*([0] * 17))
    assert one(w.p.run(entry)) == Cqe(0, Err.UNSUPPORTED_OPCODE, 0, 0, 0, 0, 0)
    assert_healthy(w)


@pytest.mark.parametrize("flags", [4, 8, 0x80, 0xFC, SqeFlags.EXCEPTION])
def test_unknown_or_misplaced_flags_on_call_are_invalid_sqe(w: World, flags: int) -> None:
    before = len(w.m.console)
    entry = console_write(w.p, b"never", flags=flags)
    assert run_one(w.p, entry).result == Err.INVALID_SQE
    assert len(w.m.console) == before  # nothing was invoked
    assert_healthy(w)


@pytest.mark.parametrize("opcode", [Op.CALL, Op.RECV, Op.RETURN, Op.RELEASE, Op.NOP])
def test_pipeline_flag_is_invalid_sqe_on_every_opcode(w: World, opcode: int) -> None:
    entry = sqe(opcode, cap_id=w.p.cap("console"), interface_id=CONSOLE, user_data=ud(w.p))
    entry = entry._replace(flags=SqeFlags.PIPELINE)
    assert run_one(w.p, entry).result == Err.INVALID_SQE
    assert w.p.cap("console") in dict(w.p.proc.table)  # RELEASE did not happen
    assert_healthy(w)


@pytest.mark.parametrize("opcode", [Op.CALL, Op.RECV, Op.RELEASE, Op.NOP])
def test_exception_flag_outside_return_is_invalid_sqe(w: World, opcode: int) -> None:
    entry = sqe(opcode, cap_id=w.p.cap("console"), interface_id=CONSOLE, user_data=ud(w.p))
    entry = entry._replace(flags=SqeFlags.EXCEPTION)
    assert run_one(w.p, entry).result == Err.INVALID_SQE
    assert w.p.cap("console") in dict(w.p.proc.table)
    assert_healthy(w)


def test_unknown_flag_on_return_is_invalid_sqe(w: World) -> None:
    entry = w.srv.return_sqe(1, echo_results(b""), flags=SqeFlags.EXCEPTION | 4)
    assert run_one(w.srv, entry).result == Err.INVALID_SQE
    assert_healthy(w)


# --- reserved and pipelining fields ----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reserved", 1),
        ("reserved", 0xFFFF),
        ("reserved2", 1),
        ("reserved2", 0x8000),
        ("pipeline_dep", 1),
        ("pipeline_dep", 0xFFFFFFFF),
        ("pipeline_field", 1),
        ("pipeline_field", 0xFFFF),
    ],
)
@pytest.mark.parametrize("opcode", [Op.NOP, Op.CALL, Op.RELEASE, 0x42])
def test_nonzero_reserved_or_pipeline_field_is_invalid_sqe(
    w: World, field: str, value: int, opcode: int
) -> None:
    before = len(w.m.console)
    entry = console_write(w.p, b"never", opcode=opcode, **{field: value})
    assert run_one(w.p, entry).result == Err.INVALID_SQE
    assert len(w.m.console) == before
    assert w.p.cap("console") in dict(w.p.proc.table)
    assert_healthy(w)


# --- cap_id and interface_id ----------------------------------------------------------------


INVALID_CAP_IDS = {
    "empty_slot": abi.make_cap_id(7, 1),
    "slot_past_table": abi.make_cap_id(0xFFFE, 1),
    "slot_0xffff": abi.make_cap_id(0xFFFF, 1),
    "all_ones": 0xFFFFFFFF,
}


@pytest.mark.parametrize("cap_id", INVALID_CAP_IDS.values(), ids=INVALID_CAP_IDS.keys())
@pytest.mark.parametrize("opcode", [Op.CALL, Op.RECV, Op.RETURN, Op.RELEASE])
def test_cap_id_naming_no_cap_is_invalid_cap(w: World, cap_id: int, opcode: int) -> None:
    entry = console_write(w.p, opcode=opcode, cap_id=cap_id)
    assert run_one(w.p, entry).result == Err.INVALID_CAP
    assert_healthy(w)


@pytest.mark.parametrize("opcode", [Op.CALL, Op.RECV, Op.RETURN, Op.RELEASE])
def test_cap_id_zero_is_stale_because_generation_zero_is_never_issued(
    w: World, opcode: int
) -> None:
    entry = console_write(w.p, opcode=opcode, cap_id=0)
    assert run_one(w.p, entry).result == Err.STALE_CAP
    assert len(w.p.proc.table) == 3
    assert_healthy(w)


def test_cap_id_with_wrong_generation_for_live_slot_is_stale(w: World) -> None:
    console = w.p.cap("console")
    for generation in (0, 2, 0xFFFF):
        cap_id = abi.make_cap_id(abi.cap_slot(console), generation)
        assert run_one(w.p, console_write(w.p, cap_id=cap_id)).result == Err.STALE_CAP
    assert_healthy(w)


def roundtrip(
    cli: TestProc, srv: TestProc, *, xfers: list[tuple[int, TransferMode]] = ()
) -> tuple[Cqe, tuple]:
    """cli echoes through srv, whose RETURN carries `xfers`; returns cli's CQE and SQE."""
    call = cli.call_sqe("echo", "Echo", "echo", {"data": b"rt"})
    assert cli.run(call) == []
    recv = srv.recv_sqe()
    got = run_one(srv, recv)
    assert got.result == abi.RECV_HEADER_SIZE + call.params_len
    ret = srv.return_sqe(got.call_id, echo_results(b"rt"), xfers=xfers)
    assert run_one(srv, ret).result == 0
    answer = one(cli.enter())
    assert answer.user_data == call.user_data
    return answer, call


def test_released_cap_id_is_stale_before_and_after_its_slot_is_reused(w: World) -> None:
    old = w.p.cap("console")
    assert run_one(w.p, sqe(Op.RELEASE, cap_id=old, user_data=ud(w.p))).result == 0
    # the slot is empty: the old id is stale, the next (never issued) id is invalid
    assert run_one(w.p, console_write(w.p, cap_id=old)).result == Err.STALE_CAP
    unissued = abi.make_cap_id(abi.cap_slot(old), abi.cap_generation(old) + 1)
    assert run_one(w.p, console_write(w.p, cap_id=unissued)).result == Err.INVALID_CAP
    # the server hands a console back; it lands in the freed slot with a new generation
    answer, _ = roundtrip(w.p, w.srv, xfers=[(w.srv.cap("console"), TransferMode.COPY)])
    assert answer.cap_count == 1
    [(new, new_iface)] = w.p.records(answer)
    assert new_iface == CONSOLE
    assert abi.cap_slot(new) == abi.cap_slot(old)
    assert abi.cap_generation(new) == abi.cap_generation(old) + 1
    assert run_one(w.p, console_write(w.p, cap_id=old)).result == Err.STALE_CAP
    assert run_one(w.p, sqe(Op.RELEASE, cap_id=old, user_data=ud(w.p))).result == Err.STALE_CAP
    assert run_one(w.p, console_write(w.p, cap_id=new)).result == WRITE_OK
    assert_healthy(w)


@pytest.mark.parametrize("claimed", [0, TIMER, ECHO, ENDPOINT, CLIENT_ENDPOINT, 2**64 - 1])
def test_wrong_interface_id_is_wrong_interface(w: World, claimed: int) -> None:
    before = len(w.m.console)
    entry = console_write(w.p, b"never", interface_id=claimed)
    assert run_one(w.p, entry).result == Err.WRONG_INTERFACE
    assert len(w.m.console) == before
    assert_healthy(w)


@pytest.mark.parametrize("opcode", [Op.RECV, Op.RETURN])
@pytest.mark.parametrize(
    ("cap", "claimed"),
    [
        ("console", CONSOLE),
        ("console", ENDPOINT),
        ("echo", ECHO),  # the client facet, as the interface it carries
        ("echo", ENDPOINT),  # the client facet, claiming to be the raw endpoint
        ("echo", CLIENT_ENDPOINT),
    ],
)
def test_recv_and_return_need_a_raw_endpoint(w: World, opcode: int, cap: str, claimed: int) -> None:
    entry = sqe(
        opcode,
        cap_id=w.p.cap(cap),
        interface_id=claimed,
        result_addr=w.p.alloc(256),
        result_len=256,
        params_addr=w.p.alloc(echo_results(b"")),
        params_len=len(echo_results(b"")),
        call_id=1,
        user_data=ud(w.p),
    )
    assert run_one(w.p, entry).result == Err.WRONG_INTERFACE
    assert w.p.proc.ledger.used[Resource.OUTSTANDING_CALLS] == 0
    assert_healthy(w)


def test_recv_on_raw_endpoint_claiming_its_served_interface_is_wrong_interface(w: World) -> None:
    entry = w.srv.recv_sqe()._replace(interface_id=ECHO)
    assert run_one(w.srv, entry).result == Err.WRONG_INTERFACE
    assert_healthy(w)


def test_call_on_raw_endpoint_is_unimplemented(w: World) -> None:
    entry = sqe(
        Op.CALL,
        cap_id=w.srv.cap("ep"),
        interface_id=ENDPOINT,
        params_addr=w.srv.alloc(echo_params(b"")),
        params_len=len(echo_params(b"")),
        result_addr=w.srv.alloc(512),
        result_len=512,
        user_data=ud(w.srv),
    )
    cqe = run_one(w.srv, entry)
    assert w.srv.exception(cqe, entry)["type"] == "unimplemented"
    assert_healthy(w)


# --- buffer ranges ----------------------------------------------------------------------

BAD_RANGES = {
    "start_past_end": (BUFFER_SIZE + 8, 0),
    "one_past_end": (BUFFER_SIZE, 1),
    "straddles_end": (BUFFER_SIZE - 4, 8),
    "addr_near_2_32": (0xFFFFFFF0, 0x20),
    "len_near_2_32": (16, 0xFFFFFFF8),
    "both_max": (0xFFFFFFFF, 0xFFFFFFFF),
}


@pytest.mark.parametrize(("addr", "length"), BAD_RANGES.values(), ids=BAD_RANGES.keys())
def test_params_range_outside_buffer_area_is_bad_buffer(w: World, addr: int, length: int) -> None:
    before = len(w.m.console)
    entry = console_write(w.p, b"never", params_addr=addr, params_len=length)
    assert run_one(w.p, entry).result == Err.BAD_BUFFER
    assert len(w.m.console) == before
    assert_healthy(w)


@pytest.mark.parametrize(("addr", "length"), BAD_RANGES.values(), ids=BAD_RANGES.keys())
@pytest.mark.parametrize("target", ["console", "echo"])
def test_result_range_outside_buffer_area_is_bad_buffer(
    w: World, addr: int, length: int, target: str
) -> None:
    before = len(w.m.console)
    if target == "console":
        entry = console_write(w.p, b"never", result_addr=addr, result_len=length)
    else:
        call = w.p.call_sqe("echo", "Echo", "echo", {"data": b"never"})
        entry = call._replace(result_addr=addr, result_len=length)
    assert run_one(w.p, entry).result == Err.BAD_BUFFER
    assert len(w.m.console) == before
    assert w.p.proc.ledger.used[Resource.OUTSTANDING_CALLS] == 0
    assert w.srv.endpoints["ep"].calls == type(w.srv.endpoints["ep"].calls)()
    assert_healthy(w)


@pytest.mark.parametrize(("addr", "length"), BAD_RANGES.values(), ids=BAD_RANGES.keys())
def test_recv_result_range_outside_buffer_area_is_bad_buffer(
    w: World, addr: int, length: int
) -> None:
    entry = w.srv.recv_sqe()._replace(result_addr=addr, result_len=length)
    assert run_one(w.srv, entry).result == Err.BAD_BUFFER
    assert w.srv.endpoints["ep"].recvs == type(w.srv.endpoints["ep"].recvs)()
    assert_healthy(w)


def test_return_params_range_outside_buffer_area_is_bad_buffer_and_call_stays_answerable(
    w: World,
) -> None:
    call = w.p.call_sqe("echo", "Echo", "echo", {"data": b"hi"})
    assert w.p.run(call) == []
    got = run_one(w.srv, w.srv.recv_sqe())
    bad = w.srv.return_sqe(got.call_id, echo_results(b"hi"))
    bad = bad._replace(params_addr=BUFFER_SIZE - 2, params_len=16)
    assert run_one(w.srv, bad).result == Err.BAD_BUFFER
    assert w.p.enter() == []
    assert run_one(w.srv, w.srv.return_sqe(got.call_id, echo_results(b"hi"))).result == 0
    answer = one(w.p.enter())
    assert w.p.result(answer, call, "Echo", "echo") == {"data": b"hi"}
    assert_healthy(w)


@pytest.mark.parametrize("params_addr", [0, 1000, BUFFER_SIZE])
def test_zero_length_params_is_invalid_argument(w: World, params_addr: int) -> None:
    entry = console_write(w.p, params_addr=params_addr, params_len=0)
    cqe = run_one(w.p, entry)
    exc = w.p.exception(cqe, entry)
    assert exc["type"] == "invalidArgument"
    assert "Console.write" in exc["message"]
    assert_healthy(w)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff" * 24,
        b"\0" * 7,
        b"\0" * 8,  # one segment of zero words: no root pointer
        struct.pack("<II", 0, 100) + b"\0" * 8,  # a segment that claims more than is there
        struct.pack("<IIq", 0, 1, -1),  # a root pointer far outside its segment
        b"\x00\x00\x00\x00\x02\x00\x00\x00" + b"\x01" * 16,
    ],
)
def test_garbage_params_is_invalid_argument(w: World, garbage: bytes) -> None:
    before = len(w.m.console)
    entry = w.p.call_sqe("console", "Console", "write", raw_params=garbage)
    cqe = run_one(w.p, entry)
    assert w.p.exception(cqe, entry)["type"] == "invalidArgument"
    assert len(w.m.console) == before
    assert_healthy(w)


@pytest.mark.parametrize("method_id", [2, 3, 99, 0xFFFF])
def test_unknown_method_ordinal_is_unimplemented(w: World, method_id: int) -> None:
    entry = w.p.call_sqe("timer", "Timer", "now")._replace(method_id=method_id)
    cqe = run_one(w.p, entry)
    exc = w.p.exception(cqe, entry)
    assert exc["type"] == "unimplemented"
    assert w.m.kernel.faults == []
    assert_healthy(w)


# --- result buffers too small -----------------------------------------------------------------


@pytest.mark.parametrize("result_len", [0, 8, 16])
def test_result_buffer_too_small_for_kernel_answer(w: World, result_len: int) -> None:
    entry = w.p.call_sqe("timer", "Timer", "now", result_len=result_len)
    assert run_one(w.p, entry).result == Err.RESULT_TOO_SMALL
    assert w.p.proc.ledger.used[Resource.OUTSTANDING_CALLS] == 0
    assert_healthy(w)


@pytest.mark.parametrize("result_len", [0, 8, 32])
def test_result_buffer_too_small_for_exception_is_truncated(w: World, result_len: int) -> None:
    entry = w.p.call_sqe("console", "Console", "write", raw_params=b"\xff" * 24)
    entry = entry._replace(result_len=result_len)
    assert run_one(w.p, entry).result == Err.APPLICATION_EXCEPTION_TRUNCATED
    assert_healthy(w)


def test_return_too_large_for_callers_buffer_fails_both_sides(w: World) -> None:
    call = w.p.call_sqe("echo", "Echo", "echo", {"data": b"q"}, result_len=16)
    assert w.p.run(call) == []
    got = run_one(w.srv, w.srv.recv_sqe())
    ret = w.srv.return_sqe(got.call_id, echo_results(b"x" * 64))
    assert run_one(w.srv, ret).result == Err.RESULT_TOO_SMALL
    assert one(w.p.enter()) == Cqe(call.user_data, Err.RESULT_TOO_SMALL, 0, 0, 0, 0, 0)
    # the call is over: answering it again is a bad call id
    again = w.srv.return_sqe(got.call_id, echo_results(b""))
    assert run_one(w.srv, again).result == Err.BAD_CALL_ID
    assert_healthy(w)


def test_recv_buffer_too_small_fails_the_recv_and_the_call_waits(w: World) -> None:
    call = w.p.call_sqe("echo", "Echo", "echo", {"data": b"0123456789abcdef"})
    assert w.p.run(call) == []
    small = w.srv.recv_sqe(result_len=abi.RECV_HEADER_SIZE + 8)
    assert run_one(w.srv, small).result == Err.RESULT_TOO_SMALL
    big = w.srv.recv_sqe()
    got = run_one(w.srv, big)
    assert got.result == abi.RECV_HEADER_SIZE + call.params_len
    assert w.srv.recv_params(got, big) == echo_params(b"0123456789abcdef")
    assert_healthy(w)


# --- transfer descriptors ------------------------------------------------------------------------


def xfer_call(p: TestProc, target: str, descriptors: bytes, count: int) -> Sqe:
    if target == "echo":
        base = p.call_sqe("echo", "Echo", "echo", {"data": b"t"})
    else:
        base = p.call_sqe("console", "Console", "write", {"data": b"t"})
    return base._replace(xfer_addr=p.alloc(descriptors), xfer_cap_count=count)


def desc(cap_id: int, mode: int = TransferMode.COPY, reserved: bytes = b"\0\0\0") -> bytes:
    return abi.XFER.pack(cap_id, mode, reserved)


def _bad_descriptors(p: TestProc) -> dict[str, tuple[bytes, int, Err]]:
    console, timer = p.cap("console"), p.cap("timer")
    return {
        "count_over_max": (desc(console) * 17, 17, Err.BAD_TRANSFER),
        "count_0xffff": (desc(console), 0xFFFF, Err.BAD_TRANSFER),
        "reserved_byte_0": (desc(console, reserved=b"\x01\0\0"), 1, Err.BAD_TRANSFER),
        "reserved_byte_2": (desc(timer) + desc(console, 1, b"\0\0\x80"), 2, Err.BAD_TRANSFER),
        "mode_2": (desc(console, 2), 1, Err.BAD_TRANSFER),
        "mode_0xff": (desc(timer, 1) + desc(console, 0xFF), 2, Err.BAD_TRANSFER),
        "duplicate_copy": (desc(console) + desc(console), 2, Err.BAD_TRANSFER),
        "duplicate_move_after_copy": (desc(console) + desc(console, 1), 2, Err.BAD_TRANSFER),
        "empty_slot": (desc(timer, 1) + desc(abi.make_cap_id(9, 1)), 2, Err.INVALID_CAP),
        "cap_zero": (desc(0), 1, Err.STALE_CAP),
        "stale_generation": (
            desc(timer, 1) + desc(abi.make_cap_id(abi.cap_slot(console), 2)),
            2,
            Err.STALE_CAP,
        ),
    }


@pytest.mark.parametrize("target", ["echo", "console"])
@pytest.mark.parametrize(
    "case",
    [
        "count_over_max",
        "count_0xffff",
        "reserved_byte_0",
        "reserved_byte_2",
        "mode_2",
        "mode_0xff",
        "duplicate_copy",
        "duplicate_move_after_copy",
        "empty_slot",
        "cap_zero",
        "stale_generation",
    ],
)
def test_bad_transfer_descriptor_fails_and_leaves_sender_caps_intact(
    w: World, target: str, case: str
) -> None:
    descriptors, count, expected = _bad_descriptors(w.p)[case]
    before_table = table_snapshot(w.p)
    before_console = len(w.m.console)
    entry = xfer_call(w.p, target, descriptors, count)
    assert run_one(w.p, entry).result == expected
    assert table_snapshot(w.p) == before_table
    assert len(w.m.console) == before_console
    assert not w.srv.endpoints["ep"].calls
    assert w.p.proc.ledger.used[Resource.OUTSTANDING_CALLS] == 0
    # the caps named in the bad descriptors are still usable and still movable
    assert run_one(w.p, console_write(w.p)).result == WRITE_OK
    assert run_one(w.p, w.p.call_sqe("timer", "Timer", "now")).result > 0
    assert_healthy(w)


@pytest.mark.parametrize("xfer_addr", [BUFFER_SIZE, BUFFER_SIZE - 4, 0xFFFFFFF8])
def test_transfer_descriptors_outside_buffer_area_are_bad_buffer(w: World, xfer_addr: int) -> None:
    entry = xfer_call(w.p, "echo", desc(w.p.cap("console")), 1)._replace(xfer_addr=xfer_addr)
    before_table = table_snapshot(w.p)
    assert run_one(w.p, entry).result == Err.BAD_BUFFER
    assert table_snapshot(w.p) == before_table
    assert_healthy(w)


def test_raw_endpoint_cannot_be_sent_to_another_process(w: World) -> None:
    before = table_snapshot(w.srv)
    call = w.p.call_sqe("echo", "Echo", "echo", {"data": b"x"})
    assert w.p.run(call) == []
    got = run_one(w.srv, w.srv.recv_sqe())
    bad = w.srv.return_sqe(
        got.call_id, echo_results(b"x"), xfers=[(w.srv.cap("ep"), TransferMode.MOVE)]
    )
    assert run_one(w.srv, bad).result == Err.BAD_TRANSFER
    bad = w.srv.return_sqe(
        got.call_id, echo_results(b"x"), xfers=[(w.srv.cap("ep"), TransferMode.COPY)]
    )
    assert run_one(w.srv, bad).result == Err.BAD_TRANSFER
    assert table_snapshot(w.srv) == before
    # the call is still in flight and answerable
    assert run_one(w.srv, w.srv.return_sqe(got.call_id, echo_results(b"x"))).result == 0
    assert one(w.p.enter()).result == len(echo_results(b"x"))
    assert_healthy(w)


# --- RETURN and RELEASE ---------------------------------------------------------------------


@pytest.mark.parametrize("call_id", [0, 1, 2, 12345, 2**64 - 1])
def test_return_with_unknown_call_id_is_bad_call_id(w: World, call_id: int) -> None:
    before = table_snapshot(w.srv)
    entry = w.srv.return_sqe(
        call_id, echo_results(b""), xfers=[(w.srv.cap("console"), TransferMode.MOVE)]
    )
    assert run_one(w.srv, entry).result == Err.BAD_CALL_ID
    assert table_snapshot(w.srv) == before  # the moved console came back
    assert run_one(w.srv, console_write(w.srv)).result == WRITE_OK
    assert_healthy(w)


def test_return_twice_to_the_same_call_is_bad_call_id(w: World) -> None:
    answer, _ = roundtrip(w.p, w.srv)
    assert answer.result == len(echo_results(b"rt"))
    call_id = w.srv.endpoints["ep"]._next_call_id - 1
    again = w.srv.return_sqe(call_id, echo_results(b"rt"))
    assert run_one(w.srv, again).result == Err.BAD_CALL_ID
    assert w.p.enter() == []
    assert_healthy(w)


def test_release_twice_is_stale_cap(w: World) -> None:
    timer = w.p.cap("timer")
    assert run_one(w.p, sqe(Op.RELEASE, cap_id=timer, user_data=ud(w.p))).result == 0
    assert run_one(w.p, sqe(Op.RELEASE, cap_id=timer, user_data=ud(w.p))).result == Err.STALE_CAP
    assert run_one(w.p, w.p.call_sqe("timer", "Timer", "now")).result == Err.STALE_CAP
    assert len(w.p.proc.table) == 2
    assert_healthy(w)


def test_release_of_a_cap_reserved_by_a_queued_move_is_refused(w: World) -> None:
    call = w.p.call_sqe(
        "echo", "Echo", "echo", {"data": b"m"}, xfers=[(w.p.cap("timer"), TransferMode.MOVE)]
    )
    assert w.p.run(call) == []
    release = sqe(Op.RELEASE, cap_id=w.p.cap("timer"), user_data=ud(w.p))
    assert run_one(w.p, release).result == Err.INVALID_CAP
    assert run_one(w.p, w.p.call_sqe("timer", "Timer", "now")).result == Err.INVALID_CAP
    assert_healthy(w)


def test_release_of_own_endpoint_completes_pending_recv(w: World) -> None:
    """Every consumed SQE gets exactly one CQE: a RECV waiting on an endpoint its
    live owner releases must complete (CANCELLED), not vanish."""
    recv = w.srv.recv_sqe()
    assert w.srv.run(recv) == []
    release = sqe(Op.RELEASE, cap_id=w.srv.cap("ep"), user_data=ud(w.srv))
    cqes = w.srv.run(release)
    cqes += w.srv.enter()
    assert sorted(c.user_data for c in cqes) == sorted([recv.user_data, release.user_data])
    by_ud = {c.user_data: c.result for c in cqes}
    assert by_ud == {recv.user_data: Err.CANCELLED, release.user_data: 0}
    assert w.srv.proc.ledger.used[Resource.OUTSTANDING_CALLS] == 0
    assert_healthy(w)


# --- ring indices --------------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [abi.SQ_ENTRIES + 1, 1000, 2**31, 2**32 - 1])
def test_sq_tail_too_far_ahead_is_corrupt_sq(w: World, delta: int) -> None:
    ring = w.p.ring
    assert run_one(w.p, sqe(Op.NOP, user_data=7)).result == 0
    head = ring.get(Header.SQ_HEAD)
    tail = (head + delta) & 0xFFFFFFFF
    ring.set(Header.SQ_TAIL, tail)
    assert w.p.enter() == [Cqe(0, Err.CORRUPT_SQ, 0, 0, 0, 0, 0)]
    assert ring.get(Header.SQ_CORRUPTIONS) == 1
    assert ring.get(Header.SQ_HEAD) == tail
    assert w.p.enter() == []  # the discarded SQ is not reported twice
    assert ring.get(Header.SQ_CORRUPTIONS) == 1
    # the ring works again from the new head, also across the 16-entry wrap
    for _ in range(3):
        entries = [sqe(Op.NOP, user_data=ud(w.p)) for _ in range(abi.SQ_ENTRIES)]
        cqes = w.p.run(*entries)
        assert [c.user_data for c in cqes] == [e.user_data for e in entries]
        assert all(c.result == 0 for c in cqes)
    assert_healthy(w)


def test_sq_tail_exactly_sq_entries_ahead_is_honest(w: World) -> None:
    ring = w.p.ring
    entries = [sqe(Op.NOP, user_data=100 + i) for i in range(abi.SQ_ENTRIES)]
    w.p.submit(*entries)
    assert ring.get(Header.SQ_TAIL) - ring.get(Header.SQ_HEAD) == abi.SQ_ENTRIES
    assert [c.user_data for c in w.p.enter()] == list(range(100, 100 + abi.SQ_ENTRIES))
    assert ring.get(Header.SQ_CORRUPTIONS) == 0


def test_corrupt_cq_head_sends_completions_to_backlog_until_sane(w: World) -> None:
    ring = w.p.ring
    tail = ring.get(Header.CQ_TAIL)
    ring.set(Header.CQ_HEAD, tail + 1000)  # "reaped" CQEs that were never posted
    entries = [sqe(Op.NOP, user_data=200 + i) for i in range(5)]
    entries.append(console_write(w.p, user_data=205))
    w.p.submit(*entries)
    w.m.kernel.enter(w.p.pid)
    assert ring.get(Header.CQ_TAIL) == tail  # nothing was written into the CQ
    assert ring.get(Header.CQ_OVERFLOW) == 6
    assert [c[0] for c in w.p.proc.backlog] == list(range(200, 206))
    ring.set(Header.CQ_HEAD, tail)  # the process comes to its senses
    cqes = w.p.enter()
    assert [(c.user_data, c.result) for c in cqes] == [(200 + i, 0) for i in range(5)] + [
        (205, WRITE_OK)
    ]
    assert not w.p.proc.backlog
    assert ring.get(Header.CQ_OVERFLOW) == 6
    assert_healthy(w)


def test_cq_overflow_backlog_loses_nothing_and_applies_back_pressure(w: World) -> None:
    ring = w.p.ring
    submitted: list[int] = []

    def submit_round() -> None:
        entries = [sqe(Op.NOP, user_data=ud(w.p)) for _ in range(abi.SQ_ENTRIES)]
        submitted.extend(e.user_data for e in entries)
        w.p.submit(*entries)
        w.m.kernel.enter(w.p.pid)

    for _ in range(3):  # 48 completions, 32 CQ slots, nothing reaped
        submit_round()
    assert ring.available() == abi.CQ_ENTRIES
    assert ring.get(Header.CQ_OVERFLOW) == 16
    assert len(w.p.proc.backlog) == 16
    submit_round()  # backlog reaches 32
    assert ring.get(Header.CQ_OVERFLOW) == 32
    assert len(w.p.proc.backlog) == abi.CQ_ENTRIES
    # back-pressure: with 32 completions waiting the kernel consumes no more SQEs
    head = ring.get(Header.SQ_HEAD)
    extra = [sqe(Op.NOP, user_data=ud(w.p)) for _ in range(abi.SQ_ENTRIES)]
    submitted.extend(e.user_data for e in extra)
    w.p.submit(*extra)
    w.m.kernel.enter(w.p.pid)
    w.m.kernel.enter(w.p.pid)
    assert ring.get(Header.SQ_HEAD) == head
    assert ring.get(Header.CQ_OVERFLOW) == 32
    reaped: list[int] = []
    for _ in range(10):
        reaped.extend(c.user_data for c in w.p.ring.reap())
        w.m.kernel.enter(w.p.pid)
    assert reaped == submitted  # every completion exactly once, in order
    assert ring.get(Header.SQ_HEAD) == ring.get(Header.SQ_TAIL)
    assert ring.get(Header.CQ_OVERFLOW) == 48  # the last 16 also found the CQ full
    assert not w.p.proc.backlog
    assert_healthy(w)


def test_dispatched_completions_keep_order_behind_the_backlog(w: World) -> None:
    """A non-NOP completion posted while the backlog is non-empty queues behind it."""
    ring = w.p.ring
    nops = [sqe(Op.NOP, user_data=ud(w.p)) for _ in range(abi.SQ_ENTRIES)]
    w.p.submit(*nops)
    w.m.kernel.enter(w.p.pid)
    w.p.submit(*[sqe(Op.NOP, user_data=ud(w.p)) for _ in range(abi.SQ_ENTRIES)])
    w.m.kernel.enter(w.p.pid)
    last = [sqe(Op.NOP, user_data=ud(w.p)) for _ in range(3)] + [console_write(w.p)]
    w.p.submit(*last)
    w.m.kernel.enter(w.p.pid)
    assert ring.get(Header.CQ_OVERFLOW) == 4
    reaped = [c.user_data for c in ring.reap()]
    w.m.kernel.enter(w.p.pid)
    reaped += [c.user_data for c in ring.reap()]
    assert reaped == list(range(1, w.p._ud + 1))
    assert_healthy(w)


# --- other processes ------------------------------------------------------------------------------


def test_dead_process_ring_is_ignored_and_marked(w: World) -> None:
    w.m.kernel.kill(w.p.pid, "test")
    assert w.p.ring.dead
    assert w.p.run(sqe(Op.NOP, user_data=1)) == []
    assert w.p.proc.ledger.used[Resource.CAP_SLOTS] == 0
    assert w.p.proc.ledger.used[Resource.OUTSTANDING_CALLS] == 0
    for proc in (w.srv, w.q):
        assert run_one(proc, sqe(Op.NOP, user_data=5)).result == 0
    assert w.m.kernel.faults == []


# --- seeded fuzz --------------------------------------------------------------------------------

KNOWN_IFACES = [CONSOLE, TIMER, ECHO, ENDPOINT, CLIENT_ENDPOINT]


def _valid_params(rng: random.Random) -> bytes:
    choice = rng.randrange(5)
    if choice == 0:
        return encode(BUNDLE.interface("Console").method("write").params, {"data": b"f" * 3})
    if choice == 1:
        return encode(BUNDLE.interface("Timer").method("now").params, {})
    if choice == 2:
        ns = rng.choice([0, 1, 10**6, 3600 * 10**9 + 1])
        return encode(BUNDLE.interface("Timer").method("sleep").params, {"ns": ns})
    if choice == 3:
        return echo_params(rng.randbytes(rng.randrange(16)))
    return echo_results(b"r")


class Fuzzer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.m = Machine()
        self.p = self.m.process(
            "fuzz", {"console": "console", "timer": "timer"}, endpoints={"own": "Echo"}
        )
        self.srv = self.m.process(
            "srv", {"back": self.m.client_of(self.p, "own")}, endpoints={"ep": "Echo"}
        )
        self.echo = self.p.proc.table.insert(self.m.client_of(self.srv, "ep"))
        self.submitted: list[int] = []  # user_data, in submission order
        self.consumed: set[int] = set()
        self.completed: set[int] = set()
        self.call_ids: list[int] = []  # seen in the fuzzer's RECV completions
        self.srv_calls: list[int] = []  # calls the server received and owes
        self.next_ud = 1

    def held(self) -> list[int]:
        return [cap_id for cap_id, _ in self.p.proc.table]

    def u32(self, held: list[int]) -> int:
        rng = self.rng
        roll = rng.random()
        if roll < 0.6 and held:
            return rng.choice(held)
        if roll < 0.7 and held:
            return rng.choice(held) ^ (rng.randrange(1, 4) << abi.CAP_SLOT_BITS)
        return rng.choice([0, 0xFFFFFFFF, rng.getrandbits(32), rng.randrange(8)])

    def range_(self, length: int) -> tuple[int, int]:
        rng = self.rng
        if rng.random() < 0.85:
            return self.p.alloc(length), length
        return rng.choice([BUFFER_SIZE, rng.getrandbits(32)]), rng.choice(
            [length, rng.getrandbits(32)]
        )

    def random_sqe(self) -> tuple:
        rng = self.rng
        held = self.held()
        params = _valid_params(rng) if rng.random() < 0.6 else rng.randbytes(rng.randrange(40))
        params_addr, params_len = self.p.alloc(params), len(params)
        if rng.random() < 0.1:
            params_addr, params_len = self.range_(len(params))
        result_addr, result_len = self.range_(rng.choice([0, 8, 64, 512]))
        count = 0 if rng.random() < 0.7 else rng.choice([1, 2, 3, 17, rng.getrandbits(16)])
        descriptors = b"".join(
            abi.XFER.pack(
                self.u32(held),
                rng.choice([0, 0, 1, 1, 2, 255]),
                b"\0\0\0" if rng.random() < 0.9 else rng.randbytes(3),
            )
            for _ in range(min(count, 4))
        )
        xfer_addr = self.p.alloc(descriptors or 8) if rng.random() < 0.9 else rng.getrandbits(32)
        ud = self.next_ud
        self.next_ud += 1
        call_id = rng.choice(self.call_ids) if self.call_ids and rng.random() < 0.6 else 0
        if rng.random() < 0.7:  # plausible: clean fields, a held cap as its own interface
            entries = dict(self.p.proc.table)
            cap_id = rng.choice(list(entries)) if entries else 0
            claimed = entries[cap_id].interface_id if cap_id else CONSOLE
            if rng.random() < 0.2:
                claimed = rng.choice(KNOWN_IFACES)
            opcode = rng.choice([Op.CALL] * 8 + [Op.RECV, Op.RETURN] * 2 + [Op.RELEASE, Op.NOP])
            if opcode in (Op.RECV, Op.RETURN) and rng.random() < 0.7:
                cap_id, claimed = self.own_endpoint(entries)
            flags = SqeFlags.EXCEPTION if opcode == Op.RETURN and rng.random() < 0.2 else 0
            return (
                opcode, flags, count, cap_id, claimed, rng.randrange(3), 0, params_len,
                params_addr, result_addr, result_len, xfer_addr, call_id, ud, 0, 0, 0,
            )  # fmt: skip

        def maybe(bits: int, p_zero: float = 0.9) -> int:
            return 0 if rng.random() < p_zero else rng.getrandbits(bits)

        opcode = rng.randrange(8)
        # keep most RELEASEs off the held caps, or every episode ends up empty-handed
        cap_id = self.u32(held if opcode != Op.RELEASE or rng.random() < 0.2 else [])
        return (
            opcode,
            rng.choice([0, 0, 0, 0, 1, 2, 3, rng.getrandbits(8)]),
            count,
            cap_id,
            rng.choice(KNOWN_IFACES) if rng.random() < 0.85 else rng.getrandbits(64),
            rng.randrange(4) if rng.random() < 0.85 else rng.getrandbits(16),
            maybe(16, 0.95),
            params_len,
            params_addr,
            result_addr,
            result_len,
            xfer_addr,
            call_id or maybe(64, 0.3),
            ud,
            maybe(32),
            maybe(16),
            maybe(16, 0.95),
        )

    def own_endpoint(self, entries: dict) -> tuple[int, int]:
        for cap_id, entry in entries.items():
            if entry.interface_id == ENDPOINT:
                return cap_id, ENDPOINT
        return 0, ENDPOINT

    def reap(self) -> None:
        for cqe in self.p.ring.reap():
            assert cqe.user_data in self.consumed, cqe
            assert cqe.user_data not in self.completed, cqe
            self.completed.add(cqe.user_data)
            if cqe.call_id:
                self.call_ids.append(cqe.call_id)

    def server_turn(self) -> None:
        """The server keeps one RECV posted, answers what it got, and calls back."""
        srv, rng = self.srv, self.rng
        entries = []
        if not self.srv.endpoints["ep"].recvs:
            entries.append(srv.recv_sqe(result_len=1024))
        entries.extend(srv.return_sqe(call_id, echo_results(b"ok")) for call_id in self.srv_calls)
        self.srv_calls.clear()
        if rng.random() < 0.3:
            entries.append(srv.call_sqe("back", "Echo", "echo", {"data": b"cb"}, result_len=256))
        for cqe in srv.run(*entries):
            if cqe.call_id:
                self.srv_calls.append(cqe.call_id)

    def check_ledgers(self) -> None:
        for proc in (self.p.proc, self.srv.proc):
            for resource in Resource:
                assert 0 <= proc.ledger.used[resource] <= proc.ledger.limits[resource]
            if proc.alive:
                assert proc.ledger.used[Resource.CAP_SLOTS] == len(proc.table)
                assert proc.ledger.used[Resource.OUTSTANDING_CALLS] == len(proc.replies)

    def round(self) -> None:
        ring = self.p.ring
        batch = [self.random_sqe() for _ in range(self.rng.randrange(1, abi.SQ_ENTRIES + 1))]
        self.p.submit(*batch)
        self.submitted.extend(e[13] for e in batch)
        head = ring.get(Header.SQ_HEAD)
        self.m.kernel.enter(self.p.pid)
        advanced = (ring.get(Header.SQ_HEAD) - head) & 0xFFFFFFFF
        start = len(self.consumed)
        self.consumed.update(self.submitted[start : start + advanced])
        assert len(self.consumed) == start + advanced
        self.reap()
        self.server_turn()
        self.m.clock_ns += 10**7
        self.m.kernel.run_timers(self.m.clock_ns)
        self.check_ledgers()
        assert self.m.kernel.faults == []

    def settle(self) -> None:
        """Drain everything: the fuzzer's SQ and backlog, then kill the server."""
        for _ in range(8):
            head = self.p.ring.get(Header.SQ_HEAD)
            self.m.kernel.enter(self.p.pid)
            advanced = (self.p.ring.get(Header.SQ_HEAD) - head) & 0xFFFFFFFF
            start = len(self.consumed)
            self.consumed.update(self.submitted[start : start + advanced])
            self.reap()
        self.m.clock_ns += 3600 * 10**9
        self.m.kernel.run_timers(self.m.clock_ns)
        self.m.kernel.kill(self.srv.pid, "fuzz over")
        for _ in range(4):
            self.m.kernel.enter(self.p.pid)
            self.reap()
        assert not self.p.proc.backlog
        pending = self.consumed - self.completed
        # what is still owed is exactly the RECVs waiting on the fuzzer's own endpoint
        assert len(pending) == len(self.p.proc.replies)
        assert self.p.proc.ledger.used[Resource.OUTSTANDING_CALLS] == len(pending)
        self.check_ledgers()
        self.m.kernel.kill(self.p.pid, "fuzz over")
        for resource in (Resource.CAP_SLOTS, Resource.OUTSTANDING_CALLS):
            assert self.p.proc.ledger.used[resource] == 0
        assert self.m.kernel.faults == []


def test_fuzz_random_sqes_never_break_the_kernel() -> None:
    rng = random.Random(0xCA905)
    start = time.monotonic()
    total = 0
    for _ in range(300):
        fuzzer = Fuzzer(rng)
        for _ in range(16):
            fuzzer.round()
        fuzzer.settle()
        total += len(fuzzer.consumed)
        if time.monotonic() - start > 3:
            break
    assert total > 5000
