"""Rings under a model: an Echo server, two clients, and every interleaving hypothesis finds.

The model mirrors the kernel's observable contract: each consumed SQE gets
exactly one CQE (now, or once answered, or once its peer dies), with an exact
result; `outstanding_calls` counts the CALLs and RECVs still owed a CQE;
`cap_slots` counts the table; a dead server's callers see `disconnected`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from harness import BUNDLE, Machine, TestProc, echo_params, echo_results, iface
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kernel import abi
from kernel.abi import Err, Header, Op, SqeFlags
from kernel.codec import encode
from kernel.completion import encode_exception
from kernel.endpoint import MAX_QUEUED_CALLS
from kernel.errors import CapError
from kernel.ledger import Resource
from kernel.ring import Sqe, sqe

ENDPOINT = iface("Endpoint")
WRITE_OK = len(encode(BUNDLE.interface("Console").method("write").results, {}))
PENDING = ("pending",)
ROLL = st.integers(0, 3)  # a rule that draws roll != 0 does nothing: weights rare rules down


def disconnected(result_len: int, kind: str = "disconnected") -> tuple:
    """A CapException of `kind`, or the truncation marker if it cannot fit.

    Every kernel message is longer than 7 bytes, so its CapException needs more
    than 40 bytes; 256 holds any of them.
    """
    if result_len <= 40:
        return ("result", Err.APPLICATION_EXCEPTION_TRUNCATED)
    return ("exception", kind)


@dataclass(eq=False)
class PS:
    """One played process and what the model expects of its ring."""

    name: str
    tp: TestProc
    held: dict[str, int]
    alive: bool = True
    unconsumed: deque = field(default_factory=deque)  # (user_data, op) submitted, not consumed
    expect: dict = field(default_factory=dict)  # user_data -> expectation, consumed, no CQE yet
    sqes: dict = field(default_factory=dict)  # user_data -> the SQE (for its buffers)
    done: set = field(default_factory=set)


class RingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        m = self.m = Machine()
        srv = m.process("srv", {"console": "console"}, endpoints={"ep": "Echo"})
        c1 = m.process("c1", {"console": "console", "echo": m.client_of(srv, "ep")})
        c2 = m.process("c2", {"echo": m.client_of(srv, "ep")})
        self.srv = PS("srv", srv, {"console": srv.cap("console"), "ep": srv.cap("ep")})
        self.c1 = PS("c1", c1, {"console": c1.cap("console"), "echo": c1.cap("echo")})
        self.c2 = PS("c2", c2, {"echo": c2.cap("echo")})
        self.procs = [self.srv, self.c1, self.c2]
        self.clients = [self.c1, self.c2]
        self.ep_alive = True
        self.queued: deque = deque()  # (caller PS, user_data, params, result_len)
        self.recvs: deque = deque()  # (user_data, result_len) of the server's RECVs
        self.in_flight: dict[int, tuple] = {}  # call_id -> (caller PS, user_data, result_len)
        self.next_call_id = 1
        self.known_calls: list[int] = []  # call ids the server has reaped from RECVs
        self.original_ids = {ps.name: dict(ps.held) for ps in self.procs}

    # --- submitting -----------------------------------------------------------------

    def _submit(self, ps: PS, entry: Sqe, op: tuple) -> None:
        if not ps.alive or ps.tp.ring.sq_space() == 0:
            return
        ps.tp.submit(entry)
        ps.unconsumed.append((entry.user_data, op))
        ps.sqes[entry.user_data] = entry

    def _cap(self, ps: PS, name: str) -> int:
        return self.original_ids[ps.name][name]

    @rule(who=st.integers(0, 2))
    def submit_nop(self, who: int) -> None:
        ps = self.procs[who]
        self._submit(ps, sqe(Op.NOP, user_data=ps.tp.user_data()), ("nop",))

    @rule(who=st.sampled_from(["srv", "c1"]), data=st.binary(max_size=8))
    def submit_console_write(self, who: str, data: bytes) -> None:
        ps = self.srv if who == "srv" else self.c1
        entry = ps.tp.call_sqe(self._cap(ps, "console"), "Console", "write", {"data": data},
                               result_len=128)  # fmt: skip
        self._submit(ps, entry, ("console",))

    @rule()
    def client_round(self) -> None:
        """Both clients call and enter in one step."""
        for who in (0, 1):
            self.submit_echo_call(who, b"round%d" % who, 256)
            self._enter(self.clients[who])

    @rule(who=st.integers(0, 1), data=st.binary(max_size=40),
          result_len=st.sampled_from([16, 40, 256, 256]))  # fmt: skip
    def submit_echo_call(self, who: int, data: bytes, result_len: int) -> None:
        ps = self.clients[who]
        entry = ps.tp.call_sqe(self._cap(ps, "echo"), "Echo", "echo", {"data": data},
                               result_len=result_len)  # fmt: skip
        self._submit(ps, entry, ("call", echo_params(data), result_len))

    @rule(result_len=st.sampled_from([abi.RECV_HEADER_SIZE + 24, 512]))
    def submit_recv(self, result_len: int) -> None:
        entry = self.srv.tp.recv_sqe(result_len=result_len)._replace(
            cap_id=self._cap(self.srv, "ep")
        )
        self._submit(self.srv, entry, ("recv", result_len))

    @rule()
    def server_round(self) -> None:
        """RECV, enter and reap in one step, so calls reach the server often."""
        self.submit_recv(512)
        self._enter(self.srv)
        self._reap(self.srv)

    @precondition(lambda self: self.known_calls)
    @rule(data=st.data(), payload=st.binary(max_size=60), exception=st.booleans())
    def submit_return(self, data, payload: bytes, exception: bool) -> None:
        call_id = data.draw(st.sampled_from(self.known_calls))
        self._return(call_id, payload, exception)

    @rule(call_id=st.one_of(st.integers(0, 3), st.integers(1000, 2**64 - 1)))
    def submit_return_of_unknown_call(self, call_id: int) -> None:
        self._return(call_id, b"", False)

    def _return(self, call_id: int, payload: bytes, exception: bool) -> None:
        if exception:
            message = encode_exception(CapError.failed(payload.hex()))
        else:
            message = echo_results(payload)
        flags = SqeFlags.EXCEPTION if exception else 0
        entry = self.srv.tp.return_sqe(call_id, message, flags=flags)
        entry = entry._replace(cap_id=self._cap(self.srv, "ep"))
        self._submit(self.srv, entry, ("return", call_id, message, exception))

    @rule(who=st.integers(0, 2), name=st.sampled_from(["console", "echo", "ep"]), roll=ROLL)
    def submit_release(self, who: int, name: str, roll: int) -> None:
        ps = self.procs[who]
        if roll or name not in self.original_ids[ps.name]:  # rare: it ends most traffic
            return
        entry = sqe(Op.RELEASE, cap_id=self._cap(ps, name), user_data=ps.tp.user_data())
        self._submit(ps, entry, ("release", name))

    @rule(
        who=st.integers(0, 2),
        opcode=st.integers(0, 255),
        flags=st.sampled_from([0, 0, 1, 2, 3, 0x80]),
        slot=st.integers(0, 0xFFFF),
        generation=st.integers(2, 0xFFFF),  # never issued here: no slot is ever reused
        reserved=st.sampled_from([0, 0, 0, 1]),
        pipeline=st.sampled_from([0, 0, 0, 7]),
        junk=st.integers(0, 2**32 - 1),
    )
    def submit_garbage(self, who, opcode, flags, slot, generation, reserved, pipeline, junk):
        ps = self.procs[who]
        entry = Sqe(
            opcode, flags, junk & 0x3, abi.make_cap_id(slot, generation), junk, junk & 0xFFFF,
            reserved, junk & 0xFF, junk, junk, junk & 0xFFF, junk, junk, ps.tp.user_data(),
            pipeline, 0, 0,
        )  # fmt: skip
        allowed = SqeFlags.EXCEPTION if opcode == Op.RETURN else 0
        if reserved or pipeline or flags & (SqeFlags.PIPELINE | ~allowed):
            expected = {Err.INVALID_SQE}
        elif opcode == Op.NOP:
            expected = {0}
        elif opcode not in (Op.CALL, Op.RECV, Op.RETURN, Op.RELEASE):
            expected = {Err.UNSUPPORTED_OPCODE}
        else:
            expected = {Err.INVALID_CAP, Err.STALE_CAP}
        self._submit(ps, entry, ("garbage", expected))

    # --- the kernel side ----------------------------------------------------------------

    @rule(who=st.integers(0, 2))
    def enter(self, who: int) -> None:
        self._enter(self.procs[who])

    def _enter(self, ps: PS) -> None:
        ring = ps.tp.ring
        head = ring.get(Header.SQ_HEAD)
        self.m.kernel.enter(ps.tp.pid)
        consumed = (ring.get(Header.SQ_HEAD) - head) & 0xFFFFFFFF
        if not ps.alive:
            assert consumed == 0
            return
        assert consumed <= len(ps.unconsumed)
        for _ in range(consumed):
            ud, op = ps.unconsumed.popleft()
            self._apply(ps, ud, op)

    def _apply(self, ps: PS, ud: int, op: tuple) -> None:
        """What the kernel does with one consumed SQE, in the model."""
        kind = op[0]
        if kind == "nop":
            ps.expect[ud] = ("result", 0)
        elif kind == "garbage":
            ps.expect[ud] = ("one_of", op[1])
        elif kind == "console":
            ps.expect[ud] = ("result", WRITE_OK if "console" in ps.held else Err.STALE_CAP)
        elif kind == "release":
            self._release(ps, ud, op[1])
        elif kind == "call":
            _, params, result_len = op
            if "echo" not in ps.held:
                ps.expect[ud] = ("result", Err.STALE_CAP)
            elif not self.ep_alive:
                ps.expect[ud] = disconnected(result_len)
            elif len(self.queued) >= MAX_QUEUED_CALLS:  # dead callers' calls count too
                ps.expect[ud] = disconnected(result_len, "overloaded")
            else:
                ps.expect[ud] = PENDING
                self.queued.append((ps, ud, params, result_len))
                self._deliver()
        elif kind == "recv":
            if "ep" not in ps.held:
                ps.expect[ud] = ("result", Err.STALE_CAP)
            else:
                ps.expect[ud] = PENDING
                self.recvs.append((ud, op[1]))
                self._deliver()
        elif kind == "return":
            self._answer(ud, *op[1:])
        else:  # pragma: no cover
            raise AssertionError(op)

    def _release(self, ps: PS, ud: int, name: str) -> None:
        if name not in ps.held:
            ps.expect[ud] = ("result", Err.STALE_CAP)
            return
        del ps.held[name]
        if name == "ep":
            self._revoke(server_alive=True)
        ps.expect[ud] = ("result", 0)

    def _answer(self, ud: int, call_id: int, message: bytes, exception: bool) -> None:
        srv = self.srv
        if "ep" not in srv.held:
            srv.expect[ud] = ("result", Err.STALE_CAP)
            return
        flight = self.in_flight.pop(call_id, None)
        if flight is None:
            srv.expect[ud] = ("result", Err.BAD_CALL_ID)
            return
        if call_id in self.known_calls:  # a guessed id may hit a call not reaped yet
            self.known_calls.remove(call_id)
        caller, caller_ud, result_len = flight
        if not caller.alive:
            srv.expect[ud] = ("result", Err.CALLER_GONE)
        elif abi.align8(len(message)) > result_len:
            srv.expect[ud] = ("result", Err.RESULT_TOO_SMALL)
            caller.expect[caller_ud] = ("result", Err.RESULT_TOO_SMALL)
        else:
            srv.expect[ud] = ("result", 0)
            caller.expect[caller_ud] = ("raw_exception" if exception else "echo", message)

    def _deliver(self) -> None:
        while self.queued and self.recvs:
            caller, caller_ud, params, call_result_len = self.queued[0]
            if not caller.alive:
                self.queued.popleft()
                continue
            recv_ud, recv_len = self.recvs[0]
            needed = abi.RECV_HEADER_SIZE + len(params)
            if abi.align8(needed) > recv_len:
                self.recvs.popleft()
                self.srv.expect[recv_ud] = ("result", Err.RESULT_TOO_SMALL)
                continue
            self.queued.popleft()
            self.recvs.popleft()
            call_id = self.next_call_id
            self.next_call_id += 1
            self.in_flight[call_id] = (caller, caller_ud, call_result_len)
            self.srv.expect[recv_ud] = ("recv", call_id, params)

    def _revoke(self, *, server_alive: bool) -> None:
        self.ep_alive = False
        for caller, caller_ud, _, result_len in self.queued:
            if caller.alive:
                caller.expect[caller_ud] = disconnected(result_len)
        self.queued.clear()
        for caller, caller_ud, result_len in self.in_flight.values():
            if caller.alive:
                caller.expect[caller_ud] = disconnected(result_len)
        self.in_flight.clear()
        self.known_calls.clear()
        for recv_ud, _ in self.recvs:
            if server_alive:  # its owner lives on: every consumed SQE still completes
                self.srv.expect[recv_ud] = ("result", Err.CANCELLED)
        self.recvs.clear()

    @rule(who=st.integers(0, 2))
    def reap(self, who: int) -> None:
        self._reap(self.procs[who])

    def _reap(self, ps: PS) -> None:
        cqes = ps.tp.ring.reap()
        if not ps.alive:
            return
        for cqe in cqes:
            ud = cqe.user_data
            assert ud not in ps.done, f"{ps.name}: user_data {ud} completed twice"
            assert ud in ps.expect, f"{ps.name}: CQE for unconsumed or unknown SQE {cqe}"
            self._check(ps, cqe, ps.expect.pop(ud))
            ps.done.add(ud)

    def _check(self, ps: PS, cqe, expected: tuple) -> None:
        kind = expected[0]
        entry = ps.sqes[cqe.user_data]
        assert kind != "pending", f"{ps.name}: {cqe} completed while the model waits"
        if kind == "result":
            assert cqe.result == expected[1], (ps.name, cqe, expected)
        elif kind == "one_of":
            assert cqe.result in expected[1], (ps.name, cqe, expected)
        elif kind == "exception":
            assert ps.tp.exception(cqe, entry)["type"] == expected[1]
        elif kind == "raw_exception":
            assert cqe.result == Err.APPLICATION_EXCEPTION
            assert cqe.exception_len == len(expected[1])
            assert ps.tp.ring.read_buffer(entry.result_addr, cqe.exception_len) == expected[1]
        elif kind == "echo":
            assert cqe.result == len(expected[1]), (ps.name, cqe)
            assert ps.tp.ring.read_buffer(entry.result_addr, cqe.result) == expected[1]
        elif kind == "recv":
            _, call_id, params = expected
            assert cqe.result == abi.RECV_HEADER_SIZE + len(params)
            assert cqe.call_id == call_id
            header = ps.tp.recv_header(cqe, entry)
            assert header[0] == call_id
            assert header[2] == BUNDLE.interface("Echo").method("echo").ordinal
            assert ps.tp.recv_params(cqe, entry) == params
            self.known_calls.append(call_id)
        else:  # pragma: no cover
            raise AssertionError(expected)

    @rule(who=st.integers(0, 2), roll=ROLL)
    def kill_process(self, who: int, roll: int) -> None:
        if not roll:  # rare: it ends most traffic
            self.kill(who)

    def kill(self, who: int) -> None:
        ps = self.procs[who]
        if not ps.alive:
            return
        self.m.kernel.kill(ps.tp.pid, "test")
        ps.alive = False
        ps.expect.clear()
        ps.unconsumed.clear()
        ps.held.clear()
        if ps is self.srv:
            self._revoke(server_alive=False)
        # a dead client's queued calls stay queued until the endpoint drops them
        assert ps.tp.ring.dead

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def no_kernel_faults(self) -> None:
        assert self.m.kernel.faults == []

    @invariant()
    def ledgers_match_the_model(self) -> None:
        ep = self.srv.tp.endpoints["ep"]
        for ps in self.procs:
            proc = ps.tp.proc
            used = proc.ledger.used
            if not ps.alive:
                assert used[Resource.CAP_SLOTS] == 0
                assert used[Resource.OUTSTANDING_CALLS] == 0
                continue
            pending = sum(1 for e in ps.expect.values() if e is PENDING)
            assert used[Resource.OUTSTANDING_CALLS] == pending, ps.name
            assert len(proc.replies) == pending, ps.name
            assert used[Resource.CAP_SLOTS] == len(proc.table) == len(ps.held), ps.name
            assert {c for c, _ in proc.table} == {self._cap(ps, n) for n in ps.held}
            queued_bytes = sum(len(c.params) for c in ep.calls if c.reply.proc is proc)
            assert used[Resource.BUFFER_BYTES] == queued_bytes, ps.name

    @invariant()
    def endpoint_queues_match_the_model(self) -> None:
        ep = self.srv.tp.endpoints["ep"]
        assert [(c.reply.proc, c.reply.user_data) for c in ep.calls] == [
            (q[0].tp.proc, q[1]) for q in self.queued
        ]
        assert [r.user_data for r in ep.recvs] == [ud for ud, _ in self.recvs]
        assert set(ep.in_flight) == set(self.in_flight)

    def _drain(self) -> None:
        for _ in range(6):
            for ps in self.procs:
                self._enter(ps)
                self._reap(ps)

    def teardown(self) -> None:
        """Eventually every consumed SQE has its one CQE: at once for everything not
        waiting on a peer, and for calls once the server is gone."""
        self._drain()
        for ps in self.procs:
            if ps.alive:
                assert not ps.unconsumed, ps.name
                owed = {ud: e for ud, e in ps.expect.items() if e is not PENDING}
                assert owed == {}, f"{ps.name}: completions never posted: {owed}"
        if self.srv.alive:
            self.kill(0)
        self._drain()
        for ps in self.clients:
            if ps.alive:
                assert ps.expect == {}, (ps.name, ps.expect)
                assert ps.tp.proc.ledger.used[Resource.OUTSTANDING_CALLS] == 0
        self.no_kernel_faults()


RingMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
TestRingStateful = RingMachine.TestCase
