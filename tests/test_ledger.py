"""Resource accounting: reserve before side effects, release on every path."""

from __future__ import annotations

import pytest
from harness import Machine

from kernel.abi import Err
from kernel.ledger import QuotaExceeded, Resource, ResourceLedger


def test_reservation_gives_units_back_unless_committed():
    ledger = ResourceLedger()
    with pytest.raises(RuntimeError), ledger.reservation(Resource.PROCESSES, 3):
        raise RuntimeError("side effect failed")
    assert ledger.used[Resource.PROCESSES] == 0
    with ledger.reservation(Resource.PROCESSES, 2) as held:
        held.commit()
    assert ledger.used[Resource.PROCESSES] == 2


def test_exhausted_quota_is_an_overloaded_error_that_names_the_resource():
    ledger = ResourceLedger()
    ledger.limits[Resource.CAP_SLOTS] = 1
    ledger.reserve(Resource.CAP_SLOTS)
    with pytest.raises(QuotaExceeded, match=r"cap_slots quota exhausted \(1 allowed, 1 more"):
        ledger.reserve(Resource.CAP_SLOTS)
    assert ledger.used[Resource.CAP_SLOTS] == 1


def test_outstanding_call_quota_refuses_at_the_transport_layer_without_side_effects():
    m = Machine()
    p = m.process("p", {"timer": "timer"})
    p.proc.ledger.limits[Resource.OUTSTANDING_CALLS] = 2
    sleeps = [p.call_sqe("timer", "Timer", "sleep", {"ns": 10**9}) for _ in range(3)]
    [refused] = p.run(*sleeps)
    assert refused.user_data == sleeps[2].user_data and refused.result == Err.QUOTA
    m.clock_ns += 2 * 10**9
    m.kernel.run_timers(m.clock_ns)
    assert sorted(c.user_data for c in p.ring.reap()) == [s.user_data for s in sleeps[:2]]
    assert p.proc.ledger.used[Resource.OUTSTANDING_CALLS] == 0


def test_queued_params_are_charged_to_the_caller_until_delivered():
    m = Machine()
    server = m.process("server", endpoints={"ep": "Echo"})
    client = m.process("client", {"echo": m.client_of(server, "ep")})
    client.proc.ledger.limits[Resource.BUFFER_BYTES] = 100
    first = client.call_sqe("echo", "Echo", "echo", {"data": b"a" * 40})
    second = client.call_sqe("echo", "Echo", "echo", {"data": b"b" * 40})
    [refused] = client.run(first, second)
    assert client.exception(refused, second)["type"] == "overloaded"
    assert "buffer_bytes" in client.exception(refused, second)["message"]
    server.run(server.recv_sqe())
    assert client.proc.ledger.used[Resource.BUFFER_BYTES] == 0


def test_spawn_with_no_room_for_its_result_caps_creates_no_process():
    m = Machine()
    parent = m.process("parent", {"spawner": "processSpawner"})
    parent.proc.ledger.limits[Resource.CAP_SLOTS] = len(parent.proc.table)  # no free slot
    before = set(m.kernel.processes)
    started = len(m.started)
    spawn = parent.call_sqe(
        "spawner",
        "ProcessSpawner",
        "spawn",
        {"name": "c", "binaryName": "echo-server", "grants": []},
    )
    [cqe] = parent.run(spawn)
    assert parent.exception(cqe, spawn)["type"] == "overloaded"
    assert set(m.kernel.processes) == before and len(m.started) == started
    assert parent.proc.ledger.used[Resource.PROCESSES] == 0


def test_exit_releases_every_resource_the_process_held():
    m = Machine()
    server = m.process("server", endpoints={"ep": "Echo"})
    client = m.process("client", {"echo": m.client_of(server, "ep"), "timer": "timer"})
    client.run(
        client.call_sqe("echo", "Echo", "echo", {"data": b"q" * 64}),
        client.call_sqe("timer", "Timer", "sleep", {"ns": 10**9}),
    )
    server.run(server.recv_sqe(), server.recv_sqe())
    for proc in (client, server):
        m.kernel.exit(proc.pid, 0)
        assert all(used == 0 for used, _ in proc.proc.ledger.snapshot().values())
    assert m.kernel.halted


def test_children_count_against_the_parent_until_they_end():
    m = Machine()
    parent = m.process("parent", {"spawner": "processSpawner"})
    spawn = parent.call_sqe(
        "spawner",
        "ProcessSpawner",
        "spawn",
        {"name": "c", "binaryName": "echo-server", "grants": []},
    )
    [cqe] = parent.run(spawn)
    assert cqe.result > 0 and parent.proc.ledger.used[Resource.PROCESSES] == 1
    child_pid = m.started[-1][0]
    m.kernel.exit(child_pid, 0)
    assert parent.proc.ledger.used[Resource.PROCESSES] == 0


def test_spawn_with_no_room_for_its_answer_is_refused_before_the_child_exists():
    m = Machine()
    parent = m.process("parent", {"spawner": "processSpawner"})
    started = len(m.started)
    spawn = parent.call_sqe(
        "spawner",
        "ProcessSpawner",
        "spawn",
        {"name": "c", "binaryName": "echo-server", "grants": []},
        result_len=8,
    )
    [cqe] = parent.run(spawn)
    assert cqe.result == Err.RESULT_TOO_SMALL
    assert len(m.started) == started
    assert all(
        used == 0 for r, (used, _) in parent.proc.ledger.snapshot().items() if r != "cap_slots"
    )


def test_the_memory_budget_reaches_the_ring_for_the_host_to_enforce():
    from kernel.abi import Header
    from kernel.kernel import KernelConfig

    m = Machine(config=KernelConfig(limits=(("memory_mib", 48),)))
    p = m.process("p")
    assert p.ring.get(Header.MEMORY_LIMIT_MIB) == 48
    assert Machine().process("q").ring.get(Header.MEMORY_LIMIT_MIB) == 256  # the default
