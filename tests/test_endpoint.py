"""Endpoint IPC and capability transfer, played SQE by SQE."""

from __future__ import annotations

from harness import BUNDLE, Machine, echo_params, echo_results, iface

from kernel import abi
from kernel.abi import Err, SqeFlags, TransferMode
from kernel.codec import encode
from kernel.ledger import Resource


def pair(machine: Machine, **client_grants):
    server = machine.process("server", endpoints={"ep": "Echo"})
    client = machine.process("client", {"echo": machine.client_of(server, "ep"), **client_grants})
    return server, client


def test_call_before_recv_is_queued_and_delivered_with_header():
    m = Machine()
    server, client = pair(m)
    call = client.call_sqe("echo", "Echo", "echo", {"data": b"ping"})
    assert client.run(call) == []  # pending: nobody is receiving yet
    recv = server.recv_sqe()
    [cqe] = server.run(recv)
    call_id, interface_id, method_id, _, params_len, *_ = server.recv_header(cqe, recv)
    assert interface_id == iface("Echo") and method_id == 0
    assert cqe.call_id == call_id and cqe.result == abi.RECV_HEADER_SIZE + params_len
    assert server.recv_params(cqe, recv) == echo_params(b"ping")


def test_recv_before_call_completes_when_the_call_arrives():
    m = Machine()
    server, client = pair(m)
    recv = server.recv_sqe()
    assert server.run(recv) == []
    client.run(client.call_sqe("echo", "Echo", "echo", {"data": b"x"}))
    [cqe] = server.enter()
    assert cqe.user_data == recv.user_data and cqe.result > 0


def test_return_answers_the_caller_by_call_id_out_of_order():
    m = Machine()
    server, client = pair(m)
    first = client.call_sqe("echo", "Echo", "echo", {"data": b"1"})
    second = client.call_sqe("echo", "Echo", "echo", {"data": b"2"})
    client.run(first, second)
    r1, r2 = server.recv_sqe(), server.recv_sqe()
    c1, c2 = server.run(r1, r2)
    assert server.run(server.return_sqe(c2.call_id, echo_results(b"two")))[0].result == 0
    assert server.run(server.return_sqe(c1.call_id, echo_results(b"one")))[0].result == 0
    done = {c.user_data: c for c in client.enter()}
    assert client.result(done[first.user_data], first, "Echo", "echo") == {"data": b"one"}
    assert client.result(done[second.user_data], second, "Echo", "echo") == {"data": b"two"}


def test_return_with_unknown_call_id_is_refused_and_the_call_still_waits():
    m = Machine()
    server, client = pair(m)
    call = client.call_sqe("echo", "Echo", "echo", {"data": b"x"})
    client.run(call)
    [recv_cqe] = server.run(server.recv_sqe())
    [bad] = server.run(server.return_sqe(recv_cqe.call_id + 99, echo_results(b"")))
    assert bad.result == Err.BAD_CALL_ID
    server.run(server.return_sqe(recv_cqe.call_id, echo_results(b"ok")))
    assert client.enter()[0].result > 0


def test_server_exception_reaches_the_caller_as_capexception():
    m = Machine()
    server, client = pair(m)
    call = client.call_sqe("echo", "Echo", "echo", {"data": b"x"})
    client.run(call)
    [recv_cqe] = server.run(server.recv_sqe())
    exc = encode(BUNDLE.struct("CapException"), {"type": "failed", "message": "no echo today"})
    server.run(server.return_sqe(recv_cqe.call_id, exc, flags=SqeFlags.EXCEPTION))
    [cqe] = client.enter()
    assert client.exception(cqe, call) == {"type": "failed", "message": "no echo today"}


def test_answer_larger_than_the_callers_result_buffer_is_refused_to_both():
    m = Machine()
    server, client = pair(m)
    call = client.call_sqe("echo", "Echo", "echo", {"data": b"x"}, result_len=16)
    client.run(call)
    [recv_cqe] = server.run(server.recv_sqe())
    [ret] = server.run(server.return_sqe(recv_cqe.call_id, echo_results(b"y" * 100)))
    assert ret.result == Err.RESULT_TOO_SMALL
    assert client.enter()[0].result == Err.RESULT_TOO_SMALL


def test_recv_buffer_too_small_fails_the_recv_and_keeps_the_call_queued():
    m = Machine()
    server, client = pair(m)
    client.run(client.call_sqe("echo", "Echo", "echo", {"data": b"z" * 200}))
    [small] = server.run(server.recv_sqe(result_len=64))
    assert small.result == Err.RESULT_TOO_SMALL
    [ok] = server.run(server.recv_sqe(result_len=1024))
    assert ok.result > 0


def test_copy_transfer_gives_the_server_a_working_cap_and_keeps_the_callers():
    m = Machine()
    server, client = pair(m, console="console")
    console = client.cap("console")
    call = client.call_sqe(
        "echo", "Echo", "echo", {"data": b""}, xfers=[(console, TransferMode.COPY)]
    )
    client.run(call)
    [cqe] = server.run(recv := server.recv_sqe())
    assert cqe.flags & abi.CqeFlags.CAPS and cqe.cap_count == 1
    [(new_cap, interface_id)] = server.records(cqe)
    assert interface_id == iface("Console")
    write = server.call_sqe(new_cap, "Console", "writeLine", {"text": "from the server"})
    assert server.run(write)[0].result >= 0
    assert b"from the server" in m.console
    assert client.proc.table.get(console)  # the caller kept its copy
    del recv


def test_move_transfer_commits_only_when_the_server_receives():
    m = Machine()
    server, client = pair(m, console="console")
    console = client.cap("console")
    client.run(
        client.call_sqe("echo", "Echo", "echo", {"data": b""}, xfers=[(console, TransferMode.MOVE)])
    )
    # In flight: reserved, so the caller cannot use it meanwhile.
    use = client.call_sqe("console", "Console", "writeLine", {"text": "x"})
    assert client.run(use)[0].result == Err.INVALID_CAP
    [cqe] = server.run(server.recv_sqe())
    assert cqe.cap_count == 1
    stale = client.call_sqe(console, "Console", "writeLine", {"text": "x"})
    assert client.run(stale)[0].result == Err.STALE_CAP
    assert client.proc.ledger.used[Resource.CAP_SLOTS] == 1  # only the echo facet is left


def test_move_rolls_back_when_receiver_cap_table_is_full():
    m = Machine()
    server, client = pair(m, console="console")
    server.proc.ledger.limits[Resource.CAP_SLOTS] = len(server.proc.table)  # full
    console = client.cap("console")
    call = client.call_sqe(
        "echo", "Echo", "echo", {"data": b""}, xfers=[(console, TransferMode.MOVE)]
    )
    client.run(call)
    server.run(server.recv_sqe())
    [cqe] = client.enter()
    assert client.exception(cqe, call)["type"] == "overloaded"
    # The move rolled back: the cap is usable again under the same id.
    write = client.call_sqe(console, "Console", "writeLine", {"text": "still mine"})
    assert client.run(write)[0].result >= 0
    assert b"still mine" in m.console


def test_return_moves_caps_to_the_caller_and_rolls_back_when_the_caller_is_full():
    m = Machine()
    server = m.process("server", {"console": "console"}, endpoints={"ep": "Echo"})
    client = m.process("client", {"echo": m.client_of(server, "ep")})
    client.proc.ledger.limits[Resource.CAP_SLOTS] = len(client.proc.table)
    call = client.call_sqe("echo", "Echo", "echo", {"data": b""})
    client.run(call)
    [recv_cqe] = server.run(server.recv_sqe())
    console = server.cap("console")
    [ret] = server.run(
        server.return_sqe(recv_cqe.call_id, echo_results(b""), xfers=[(console, TransferMode.MOVE)])
    )
    assert ret.result == Err.QUOTA
    assert server.proc.table.get(console)  # rolled back to the server
    assert client.exception(client.enter()[0], call)["type"] == "overloaded"


def test_return_with_caps_lands_in_the_callers_table():
    m = Machine()
    server = m.process("server", {"console": "console"}, endpoints={"ep": "Echo"})
    client = m.process("client", {"echo": m.client_of(server, "ep")})
    client.run(call := client.call_sqe("echo", "Echo", "echo", {"data": b""}))
    [recv_cqe] = server.run(server.recv_sqe())
    server.run(
        server.return_sqe(
            recv_cqe.call_id, echo_results(b""), xfers=[(server.cap("console"), TransferMode.COPY)]
        )
    )
    [cqe] = client.enter()
    [(cap_id, interface_id)] = client.records(cqe)
    assert interface_id == iface("Console") and cqe.caps_addr >= call.result_addr
    assert client.run(client.call_sqe(cap_id, "Console", "write", {"data": b"!"}))[0].result >= 0


def test_server_death_disconnects_queued_in_flight_and_later_calls():
    m = Machine()
    server, client = pair(m)
    in_flight = client.call_sqe("echo", "Echo", "echo", {"data": b"1"})
    queued = client.call_sqe("echo", "Echo", "echo", {"data": b"2"})
    client.run(in_flight, queued)
    server.run(server.recv_sqe())  # takes the first only
    m.kernel.exit(server.pid, 0)
    done = {c.user_data: c for c in client.enter()}
    for sent in (in_flight, queued):
        assert client.exception(done[sent.user_data], sent)["type"] == "disconnected"
    later = client.call_sqe("echo", "Echo", "echo", {"data": b"3"})
    assert client.exception(client.run(later)[0], later)["type"] == "disconnected"
    assert client.proc.ledger.used[Resource.OUTSTANDING_CALLS] == 0
    assert client.proc.ledger.used[Resource.BUFFER_BYTES] == 0


def test_client_death_mid_call_tells_the_returning_server_and_frees_everything():
    m = Machine()
    server, client = pair(m, console="console")
    client.run(
        client.call_sqe(
            "echo",
            "Echo",
            "echo",
            {"data": b"1"},
            xfers=[(client.cap("console"), TransferMode.MOVE)],
        )
    )
    [recv_cqe] = server.run(server.recv_sqe())
    m.kernel.kill(client.pid, "test")
    [ret] = server.run(server.return_sqe(recv_cqe.call_id, echo_results(b"")))
    assert ret.result == Err.CALLER_GONE  # a long-poll's server keeps what it answered
    assert server.proc.ledger.used[Resource.OUTSTANDING_CALLS] == 0


def test_client_death_while_queued_drops_the_call_before_delivery():
    m = Machine()
    server, client = pair(m)
    client.run(client.call_sqe("echo", "Echo", "echo", {"data": b"1"}))
    m.kernel.kill(client.pid, "test")
    assert server.run(server.recv_sqe()) == []  # nothing to deliver


def test_endpoint_queue_is_bounded_with_overloaded():
    from kernel.endpoint import MAX_QUEUED_CALLS

    m = Machine()
    _server, client = pair(m)
    client.proc.ledger.limits[Resource.OUTSTANDING_CALLS] = MAX_QUEUED_CALLS + 5
    sent = [
        client.call_sqe("echo", "Echo", "echo", {"data": b""}, result_len=256)
        for _ in range(MAX_QUEUED_CALLS + 1)
    ]
    cqes = []
    for start in range(0, len(sent), 16):
        cqes += client.run(*sent[start : start + 16])
    [refused] = cqes
    assert refused.user_data == sent[-1].user_data
    assert client.exception(refused, sent[-1])["type"] == "overloaded"


def test_release_of_own_endpoint_disconnects_its_clients():
    from kernel.abi import Op
    from kernel.ring import sqe

    m = Machine()
    server, client = pair(m)
    server.run(sqe(Op.RELEASE, cap_id=server.cap("ep"), user_data=1))
    call = client.call_sqe("echo", "Echo", "echo", {"data": b""})
    assert client.exception(client.run(call)[0], call)["type"] == "disconnected"


def test_callers_session_reaches_the_server_as_an_endpoint_scoped_reference():
    m = Machine()
    a = m.process("a", endpoints={"ep": "Echo", "other": "Echo"})
    client = m.process("client", {"one": m.client_of(a, "ep"), "two": m.client_of(a, "other")})
    refs = []
    for cap, endpoint in (("one", "ep"), ("two", "other"), ("one", "ep")):
        client.run(client.call_sqe(cap, "Echo", "echo", {"data": b""}))
        recv = a.recv_sqe(endpoint)
        [cqe] = a.run(recv)
        header = a.recv_header(cqe, recv)
        refs.append((header[5], header[6]))
        a.run(a.return_sqe(cqe.call_id, echo_results(b""), endpoint))
    assert refs[0] == refs[2]  # stable for one session at one endpoint
    assert refs[0] != refs[1]  # but not portable between endpoints
    assert client.proc.session.session_id not in b"".join(
        r.to_bytes(8, "little") for pair_ in refs for r in pair_
    )


def test_recv_too_small_says_how_big_the_waiting_call_needs():
    m = Machine()
    server, client = pair(m)
    client.run(client.call_sqe("echo", "Echo", "echo", {"data": b"z" * 300}))
    [small] = server.run(server.recv_sqe(result_len=64))
    assert small.result == Err.RESULT_TOO_SMALL
    [ok] = server.run(server.recv_sqe(result_len=small.call_id))
    assert ok.result > 0


def test_a_call_no_recv_could_ever_hold_fails_instead_of_blocking_the_queue():
    m = Machine()
    server, client = pair(m)
    server.proc.ring.buffer_size = 2048  # a server with a small buffer area
    huge = client.call_sqe("echo", "Echo", "echo", {"data": b"h" * 5000}, result_len=256)
    normal = client.call_sqe("echo", "Echo", "echo", {"data": b"n"})
    client.run(huge, normal)
    [cqe] = server.run(server.recv_sqe(result_len=1024))
    assert cqe.result > 0  # the normal call was delivered: nothing blocks the queue
    failed = {c.user_data: c for c in client.enter()}[huge.user_data]
    assert client.exception(failed, huge)["type"] == "invalidArgument"
