"""The userspace runtime: buffers, the CapSet, typed calls and owned caps."""

from __future__ import annotations

import gc

import pytest
from harness import Machine

from kernel.ledger import Resource
from kernel.runtime import RemoteError, Runtime, TransportFailure
from kernel.runtime.buffers import LARGE, BufferArena, BufferExhausted
from kernel.runtime.service import LATER, Call, ServiceLoop


class Direct:
    """Syscalls for a runtime driven in the test's thread: enter, never block."""

    def __init__(self, machine: Machine, pid: int) -> None:
        self.machine, self.pid = machine, pid

    def cap_enter(self, min_complete: int, timeout_ns: int | None) -> int:
        self.machine.kernel.enter(self.pid)
        return self.machine.kernel.processes[self.pid].ring.available()

    def exit(self, code: int):
        self.machine.kernel.exit(self.pid, code)
        raise SystemExit


def runtime_for(
    machine: Machine, endpoints: dict[str, str] | None = None, **grants: str
) -> tuple[Runtime, object]:
    proc = machine.process("rt", grants, endpoints=endpoints)
    return Runtime(proc.proc.ring.region, Direct(machine, proc.pid)), proc


def test_arena_reuses_and_coalesces_freed_space():
    arena = BufferArena(256)
    a, b, c = arena.alloc(64), arena.alloc(64), arena.alloc(128)
    with pytest.raises(BufferExhausted):
        arena.alloc(8)
    arena.free(b)
    arena.free(a)
    assert arena.alloc(128) == 0  # a and b merged back into one block
    arena.free(c)
    assert arena.in_use == 128


def test_a_large_brief_buffer_leaves_no_hole_for_small_ones_to_split():
    """The shell's case: a pending 8 KiB request and a 4 KiB terminal read around a 16 KiB
    call's result must leave room for a 24 KiB snapshot once the call is done."""
    arena = BufferArena(56 * 1024)
    arena.alloc(8 * 1024)
    call = arena.alloc(16 * 1024)
    assert call == 40 * 1024  # from the top
    arena.free(call)
    arena.alloc(4376)  # the next terminal read: from the bottom
    snapshot = arena.alloc(24 * 1024 + 24)
    assert snapshot + 24 * 1024 + 24 == 56 * 1024
    arena.free(snapshot)
    assert arena.alloc(LARGE + 8) + LARGE + 8 == 56 * 1024


def test_capset_lists_grants_in_order_and_checks_interfaces():
    m = Machine()
    rt, _ = runtime_for(m, console="console", timer="timer")
    assert list(rt.caps) == ["console", "timer"]
    with pytest.raises(LookupError, match="'timer' is a Timer, not a Console"):
        rt.cap("timer", "Console")
    with pytest.raises(LookupError, match=r"no cap named 'disk'.*it has: console, timer"):
        rt.cap("disk")


def test_typed_calls_return_results_and_raise_each_error_layer():
    m = Machine()
    rt, _ = runtime_for(m, console="console", entropy="entropy")
    assert len(rt.cap("entropy").getRandom(len=32)["data"]) == 32
    with pytest.raises(RemoteError) as caught:
        rt.cap("entropy").getRandom(len=100_000)
    assert caught.value.type == "invalidArgument" and "at most 4096" in caught.value.message
    with pytest.raises(AttributeError, match="Console has no method 'read'"):
        rt.cap("console").read()
    console = rt.cap("console")
    console.cap_id ^= 1 << 16  # forge a wrong generation
    with pytest.raises(TransportFailure, match="STALE_CAP"):
        console.writeLine(text="x")


def test_result_caps_are_owned_and_released_when_dropped():
    m = Machine()
    rt, proc = runtime_for(m, processSpawner="processSpawner")
    held = proc.proc.ledger.used[Resource.CAP_SLOTS]
    result = rt.cap("processSpawner").spawn(
        name="child",
        binaryName="echo-server",
        grants=[{"name": "ep", "source": {"newEndpoint": 0}}],
    )
    assert proc.proc.ledger.used[Resource.CAP_SLOTS] == held + 2  # handle + client facet
    assert result["handle"].owned and len(result["clients"]) == 1
    del result
    gc.collect()
    rt.enter(0)  # the release queue flushes on the next ring use
    assert proc.proc.ledger.used[Resource.CAP_SLOTS] == held


class ParkedEcho:
    """Echo that parks every call (a long-poll), for the test to answer later."""

    def __init__(self) -> None:
        self.parked: list[Call] = []

    def echo(self, call: Call, data: bytes) -> object:
        self.parked.append(call)
        return LATER


def test_service_loop_runs_on_refused_for_an_answer_whose_caller_has_ended():
    m = Machine()
    rt, server = runtime_for(m, endpoints={"ep": "Echo"})
    stays, leaves = (m.process(n, {"echo": m.client_of(server, "ep")}) for n in ("stays", "leaves"))
    calls = [c.call_sqe("echo", "Echo", "echo", {"data": b"?"}) for c in (stays, leaves)]
    stays.run(calls[0])
    leaves.run(calls[1])
    echo = ParkedEcho()
    idle: list[bool] = []
    loop = ServiceLoop(
        rt, rt.cap("ep", "Endpoint"), "Echo", echo, on_idle=lambda: idle.append(True)
    )
    loop.run(until=lambda: len(echo.parked) == 2)
    m.kernel.kill(leaves.pid, "test")
    refused: list[str] = []
    for call, name in zip(echo.parked, ("stays", "leaves"), strict=True):
        loop.answer(call, {"data": b"!"}, on_refused=lambda name=name: refused.append(name))
    loop.idle_ns = 1  # one round: the RETURNs go in with the next RECV and are collected
    loop.run(until=lambda: bool(idle))
    assert refused == ["leaves"] and loop.refused_answers == 1
    [answered] = stays.enter()
    assert stays.result(answered, calls[0], "Echo", "echo") == {"data": b"!"}
