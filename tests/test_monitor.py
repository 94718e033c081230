"""Monitoring: the bounded buffers, the records the kernel keeps, and scoped views."""

from __future__ import annotations

from harness import BUNDLE, Machine, echo_results

from kernel.codec import encode
from kernel.monitor import Bounded, Monitor

GRANTS = {"monitor": "systemMonitor", "log": "log", "console": "console"}
BUNDLE_LOG_WRITE_INFO = encode(
    BUNDLE.interface("Log").method("write").params, {"level": "info", "text": "x"}
)


def snapshot(proc, cap="monitor", max_calls=64, max_logs=64) -> dict:
    call = proc.call_sqe(
        cap,
        "SystemMonitor",
        "snapshot",
        {"maxCalls": max_calls, "maxLogs": max_logs},
        result_len=32 * 1024,
    )
    [cqe] = proc.run(call)
    return proc.result(cqe, call, "SystemMonitor", "snapshot")["snapshot"]


def subtree(proc, pid: int, cap="monitor") -> tuple[int, dict | None]:
    """The CapId of a subtree view of `pid`, or the CapException refusing it."""
    call = proc.call_sqe(cap, "SystemMonitor", "subtree", {"pid": pid})
    [cqe] = proc.run(call)
    if cqe.result < 0:
        return 0, proc.exception(cqe, call)
    [(cap_id, _)] = proc.records(cqe)
    return cap_id, None


def write_line(proc, text: str) -> None:
    call = proc.call_sqe("console", "Console", "writeLine", {"text": text})
    assert proc.run(call)[0].result >= 0


# --- the bounded buffer ----------------------------------------------------------------


def test_bounded_buffer_drops_the_oldest_and_counts_what_it_dropped():
    buf = Bounded(3)
    for seq in range(1, 6):
        buf.append(seq, f"r{seq}")
    assert [r for _, r in buf] == ["r3", "r4", "r5"]
    assert buf.dropped == 2 and len(buf) == 3


def test_bounded_buffer_since_returns_only_newer_records_oldest_first():
    buf = Bounded(4)
    for seq in (2, 4, 6, 8):
        buf.append(seq, seq)
    assert [s for s, _ in buf.since(4)] == [6, 8]
    assert buf.since(8) == [] and [s for s, _ in buf.since(0)] == [2, 4, 6, 8]


def test_bounded_buffer_says_when_a_reader_missed_records():
    buf = Bounded(2)
    for seq in (1, 2, 3):
        buf.append(seq, seq)
    assert buf.missed(0)  # record 1 is gone
    assert not buf.missed(1) and not buf.missed(3)


def test_bounded_buffer_refuses_zero_capacity():
    try:
        Bounded(0)
    except ValueError:
        return
    raise AssertionError("a zero-capacity buffer was accepted")


def test_monitor_log_stays_bounded_under_a_flood():
    m = Machine()
    p = m.process("noisy", GRANTS)
    for i in range(600):
        call = p.call_sqe("log", "Log", "write", {"level": "info", "text": f"line {i}"})
        assert p.run(call)[0].result >= 0
    monitor = m.kernel.monitor
    assert len(monitor.logs) == monitor.logs.capacity
    assert monitor.logs.dropped == 600 - monitor.logs.capacity
    assert len(monitor.calls) == monitor.calls.capacity  # the trace too


# --- what the kernel records -------------------------------------------------------------


def test_a_kernel_call_enters_the_trace_with_names_latency_and_result():
    m = Machine()
    p = m.process("p", GRANTS)
    write_line(p, "hello")
    [call] = [c for c in snapshot(p)["calls"] if c["interface"] == "Console"]
    assert call["callerPid"] == p.pid and call["calleePid"] == 0
    assert call["method"] == "writeLine" and call["result"] == "ok"


def test_an_endpoint_call_is_traced_from_call_to_return_with_its_latency():
    m = Machine()
    server = m.process("server", endpoints={"ep": "Echo"})
    client = m.process("client", {"echo": m.client_of(server, "ep"), **GRANTS})
    call = client.call_sqe("echo", "Echo", "echo", {"data": b"x"})
    client.run(call)
    recv = server.recv_sqe()
    [delivered] = server.run(recv)
    m.clock_ns += 5000
    server.run(server.return_sqe(delivered.call_id, echo_results(b"x")))
    client.enter()
    [echo] = [c for c in snapshot(client)["calls"] if c["interface"] == "Echo"]
    assert (echo["callerPid"], echo["calleePid"]) == (client.pid, server.pid)
    assert echo["latencyNs"] == 5000 and echo["result"] == "ok"


def test_monitor_calls_are_not_traced():
    m = Machine()
    p = m.process("p", GRANTS)
    snapshot(p)
    assert all(c["interface"] != "SystemMonitor" for c in snapshot(p)["calls"])


def test_errors_are_counted_by_code_in_the_ring_counters():
    m = Machine()
    p = m.process("p", GRANTS)
    bogus = p.call_sqe("console", "Console", "writeLine", {"text": "x"})
    p.run(bogus._replace(cap_id=0x7777))
    p.run(bogus._replace(cap_id=0x7777, user_data=99))
    [me] = [row for row in snapshot(p)["processes"] if row["pid"] == p.pid]
    errors = {e["name"]: e["count"] for e in me["counters"]["errors"]}
    assert errors == {"invalid_cap": 2}
    assert me["counters"]["enters"] >= 3 and me["counters"]["sqes"] >= 3


def test_cap_tables_ledger_and_endpoint_queues_appear_in_a_snapshot():
    m = Machine()
    server = m.process("server", endpoints={"ep": "Echo"})
    client = m.process("client", {"echo": m.client_of(server, "ep"), **GRANTS})
    client.run(client.call_sqe("echo", "Echo", "echo", {"data": b"x"}))  # queued, no RECV yet
    snap = snapshot(client)
    rows = {row["pid"]: row for row in snap["processes"]}
    echo = next(c for c in rows[client.pid]["caps"] if c["name"] == "echo")
    mine = next(c for c in rows[server.pid]["caps"] if c["name"] == "ep")
    assert echo["objectId"] == mine["objectId"]  # one node, two hold edges
    assert echo["servedBy"] == server.pid and echo["interface"] == "Echo"
    assert mine["transfer"] == "non_transferable" and echo["origin"] == "spawn_grant"
    [ep] = snap["endpoints"]
    assert (ep["ownerPid"], ep["queuedCalls"], ep["interface"]) == (server.pid, 1, "Echo")
    ledger = {u["resource"]: (u["used"], u["limit"]) for u in rows[client.pid]["ledger"]}
    assert ledger["outstanding_calls"][0] == 2  # the queued echo and this snapshot


def test_exit_records_say_how_a_process_ended_with_its_last_calls():
    m = Machine()
    watcher = m.process("watcher", GRANTS)
    doomed = m.process("doomed", GRANTS)
    write_line(doomed, "last words")
    m.kernel.lost(doomed.pid, "worker crashed")
    quitter = m.process("quitter", GRANTS)
    m.kernel.exit(quitter.pid, 3)
    exits = {e["name"]: e for e in snapshot(watcher)["exits"]}
    assert exits["doomed"]["kind"] == "crashed" and exits["doomed"]["reason"] == "worker crashed"
    assert [c["method"] for c in exits["doomed"]["lastCalls"]] == ["writeLine"]
    assert (exits["quitter"]["kind"], exits["quitter"]["code"]) == ("exited", 3)
    assert all(
        row["pid"] not in (doomed.pid, quitter.pid) for row in snapshot(watcher)["processes"]
    )


def test_log_records_are_stamped_with_the_writer_and_bounded_in_size():
    m = Machine()
    p = m.process("writer", GRANTS)
    ok = p.call_sqe("log", "Log", "write", {"level": "warn", "text": "disk is lava"})
    assert p.run(ok)[0].result >= 0
    big = p.call_sqe("log", "Log", "write", {"level": "info", "text": "x" * 2000})
    [cqe] = p.run(big)
    assert p.exception(cqe, big)["type"] == "invalidArgument"
    [log] = snapshot(p)["logs"]
    assert (log["pid"], log["process"], log["level"], log["text"]) == (
        p.pid,
        "writer",
        "warn",
        "disk is lava",
    )


def test_a_log_level_the_schema_does_not_define_is_refused():
    m = Machine()
    p = m.process("writer", GRANTS)
    raw = bytearray(BUNDLE_LOG_WRITE_INFO)
    raw[16] = 99  # the level's ordinal, in the params' data section
    bad = p.call_sqe("log", "Log", "write", raw_params=bytes(raw))
    [cqe] = p.run(bad)
    assert p.exception(cqe, bad)["type"] == "invalidArgument"
    assert snapshot(p)["logs"] == []


def test_tracing_off_keeps_no_calls():
    m = Machine()
    m.kernel.monitor.tracing = False
    p = m.process("p", GRANTS)
    write_line(p, "quiet")
    snap = snapshot(p)
    assert snap["calls"] == [] and snap["tracing"] is False


# --- the attenuated facet ----------------------------------------------------------------


def family(m: Machine):
    """outsider; parent -> child -> grandchild; the child serves an Echo endpoint."""
    outsider = m.process("outsider", GRANTS)
    parent = m.process("parent", GRANTS)
    child = m.process("child", GRANTS, endpoints={"ep": "Echo"}, parent=parent)
    grandchild = m.process("grandchild", GRANTS, parent=child)
    return outsider, parent, child, grandchild


def test_a_subtree_view_sees_only_its_process_and_descendants():
    m = Machine()
    _outsider, parent, child, grandchild = family(m)
    view, refused = subtree(parent, child.pid)
    assert refused is None
    snap = snapshot(parent, view)
    assert snap["scopePid"] == child.pid
    assert sorted(r["pid"] for r in snap["processes"]) == [child.pid, grandchild.pid]
    assert [e["ownerPid"] for e in snap["endpoints"]] == [child.pid]


def test_a_subtree_view_cannot_be_widened():
    m = Machine()
    outsider, parent, child, grandchild = family(m)
    view, _ = subtree(parent, child.pid)
    narrower, refused = subtree(parent, grandchild.pid, view)
    assert refused is None and narrower
    for pid in (parent.pid, outsider.pid, 0, 999):
        cap, refused = subtree(parent, pid, view)
        assert cap == 0 and refused["type"] == "invalidArgument", pid


def test_a_subtree_view_hides_outside_logs_calls_and_exits_and_masks_outside_callers():
    m = Machine()
    outsider, parent, child, grandchild = family(m)
    caller = m.process("caller", {"echo": m.client_of(child, "ep")})
    caller.run(caller.call_sqe("echo", "Echo", "echo", {"data": b"x"}))
    [delivered] = child.run(child.recv_sqe())
    child.run(child.return_sqe(delivered.call_id, echo_results(b"x")))
    for proc in (outsider, grandchild):
        write_line(proc, "hi")
        proc.run(proc.call_sqe("log", "Log", "write", {"level": "info", "text": proc.proc.name}))
    m.kernel.exit(outsider.pid, 0)
    m.kernel.exit(grandchild.pid, 0)
    view, _ = subtree(parent, child.pid)
    snap = snapshot(parent, view)
    assert [log["process"] for log in snap["logs"]] == ["grandchild"]
    assert [e["name"] for e in snap["exits"]] == ["grandchild"]
    callers = {(c["interface"], c["callerPid"], c["calleePid"]) for c in snap["calls"]}
    assert callers == {
        ("Echo", 0, child.pid),  # the caller is outside: shown as pid 0
        ("Console", grandchild.pid, 0),
        ("Log", grandchild.pid, 0),
    }
    whole = {c["callerPid"] for c in snapshot(parent)["calls"]}
    assert {outsider.pid, caller.pid} <= whole  # the whole-system view names them


# --- the change stream ---------------------------------------------------------------------


def changes_sqe(proc, since: int, wait_ns: int = 0, cap="monitor"):
    return proc.call_sqe(
        cap, "SystemMonitor", "changes", {"since": since, "waitNs": wait_ns}, result_len=48 * 1024
    )


def test_changes_wait_for_a_record_in_scope_then_answer():
    m = Machine()
    outsider, parent, child, grandchild = family(m)
    view, _ = subtree(parent, child.pid)
    since = snapshot(parent)["seq"]
    call = changes_sqe(parent, since, wait_ns=10**9, cap=view)
    assert parent.run(call) == []  # nothing new yet: it waits
    write_line(outsider, "not yours")
    assert parent.enter() == []  # outside the view: still waiting
    write_line(grandchild, "yours")
    [cqe] = parent.enter()
    changes = parent.result(cqe, call, "SystemMonitor", "changes")["changes"]
    assert [(c["callerPid"], c["method"]) for c in changes["calls"]] == [
        (grandchild.pid, "writeLine")
    ]
    assert changes["seq"] > since and not changes["missed"]


def test_changes_answer_empty_when_the_wait_runs_out():
    m = Machine()
    p = m.process("p", GRANTS)
    since = snapshot(p)["seq"]
    call = changes_sqe(p, since, wait_ns=1000)
    assert p.run(call) == []
    m.kernel.run_timers(m.kernel.uptime_ns() + 2000)
    [cqe] = p.enter()
    changes = p.result(cqe, call, "SystemMonitor", "changes")["changes"]
    assert changes["calls"] == [] and changes["seq"] == since


def test_changes_report_started_processes_and_page_through_a_burst():
    m = Machine()
    p = m.process("p", GRANTS)
    since = snapshot(p)["seq"]
    newcomer = m.process("newcomer", GRANTS)
    for i in range(40):
        write_line(newcomer, str(i))
    call = changes_sqe(p, since)
    [cqe] = p.run(call)
    first = p.result(cqe, call, "SystemMonitor", "changes")["changes"]
    assert [s["name"] for s in first["started"]] == ["newcomer"]
    assert len(first["calls"]) == 31  # 32 records a page: the start and 31 calls
    call = changes_sqe(p, first["seq"])
    [cqe] = p.run(call)
    rest = p.result(cqe, call, "SystemMonitor", "changes")["changes"]
    assert len(rest["calls"]) == 9 and rest["seq"] == m.kernel.monitor.seq


def test_changes_from_a_hostile_since_answer_nothing_and_do_not_fail():
    m = Machine()
    p = m.process("p", GRANTS)
    call = changes_sqe(p, 2**63)
    [cqe] = p.run(call)
    changes = p.result(cqe, call, "SystemMonitor", "changes")["changes"]
    assert changes["calls"] == [] and changes["seq"] == 2**63


def test_monitor_seq_is_shared_by_every_kind_of_record():
    monitor = Monitor(lambda: 0)
    monitor.record(monitor.calls, (0, 1, 0, 0, 0, 0, 0))
    monitor.record(monitor.logs, (0, 1, "p", "info", "x"))
    assert [s for s, _ in monitor.calls] == [1] and [s for s, _ in monitor.logs] == [2]


def test_malformed_monitor_params_are_refused_and_the_kernel_carries_on():
    m = Machine()
    p = m.process("p", GRANTS)
    bad = p.call_sqe("monitor", "SystemMonitor", "changes", raw_params=b"\xff" * 24)
    [cqe] = p.run(bad)
    assert p.exception(cqe, bad)["type"] == "invalidArgument"
    assert m.kernel.faults == [] and snapshot(p)["processes"]


def test_a_waiting_watcher_costs_nothing_once_the_caller_is_gone():
    m = Machine()
    p = m.process("p", GRANTS)
    other = m.process("other", GRANTS)
    p.run(changes_sqe(p, snapshot(p)["seq"] + 10**6, wait_ns=10**9))  # waits: far future
    m.kernel.exit(p.pid, 0)
    write_line(other, "after")  # the watcher sees its caller is gone and drops out
    assert m.kernel.monitor.watchers == []


# --- the feed a host ships to its page -------------------------------------------------------


def test_the_feed_sends_at_once_on_a_start_throttles_calls_and_refreshes_when_idle():
    import json

    from kernel.hosts.monitorfeed import BUSY_NS, IDLE_NS, MonitorFeed

    m = Machine()
    sent: list[dict] = []
    feed = MonitorFeed(m.kernel, lambda text: sent.append(json.loads(text)))
    now = 10 * IDLE_NS
    feed.tick(now)
    assert len(sent) == 1
    p = m.process("newcomer", GRANTS)
    feed.tick(now + 1)  # a start goes out at once
    assert [r["name"] for r in sent[-1]["processes"]] == ["newcomer"]
    write_line(p, "busy")
    feed.tick(now + 2)  # only calls: wait for the busy interval
    assert len(sent) == 2
    feed.tick(now + 1 + BUSY_NS)
    assert len(sent) == 3 and sent[-1]["calls"][-1]["method"] == "writeLine"
    feed.tick(now + 2 + BUSY_NS)  # nothing new: quiet until the idle refresh
    assert len(sent) == 3
    feed.tick(now + 1 + BUSY_NS + IDLE_NS)
    assert len(sent) == 4
    m.kernel.exit(p.pid, 0)
    feed.tick(now + 2 + BUSY_NS + IDLE_NS)  # an exit goes out at once
    assert [e["name"] for e in sent[-1]["exits"]] == ["newcomer"]


def test_a_due_snapshot_waits_for_a_quiet_pass_but_not_past_late():
    import json

    from kernel.hosts.monitorfeed import IDLE_NS, LATE_NS, MonitorFeed

    m = Machine()
    sent: list[dict] = []
    feed = MonitorFeed(m.kernel, lambda text: sent.append(json.loads(text)))
    now = 10 * IDLE_NS
    feed.tick(now)
    m.process("newcomer", GRANTS)
    feed.tick(now + 1, quiet=False)  # due, but the spawn's calls go first
    assert len(sent) == 1 and feed.waiting
    feed.tick(now + 2)  # the first quiet pass sends it
    assert len(sent) == 2 and not feed.waiting
    m.process("another", GRANTS)
    feed.tick(now + 3, quiet=False)
    feed.tick(now + 3 + LATE_NS, quiet=False)  # a load that never pauses still gets it
    assert [r["name"] for r in sent[-1]["processes"]] == ["newcomer", "another"]


def test_the_lineage_stays_bounded_and_keeps_every_live_processs_ancestry(monkeypatch):
    import kernel.monitor

    monkeypatch.setattr(kernel.monitor, "PARENTS_KEPT", 8)
    m = Machine()
    parent = m.process("parent", GRANTS)
    child = m.process("child", GRANTS, parent=parent)
    m.kernel.exit(parent.pid, 0)  # an orphan: its ended parent is still its ancestry
    for i in range(40):
        m.kernel.exit(m.process(f"brief{i}").pid, 0)
    assert len(m.kernel.monitor.parents) <= 9
    view, refused = subtree(child, parent.pid)
    assert refused is None
    assert [r["pid"] for r in snapshot(child, view)["processes"]] == [child.pid]
