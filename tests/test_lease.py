"""Session leases: logging out revokes a bundle cap in every process a copy reached."""

from __future__ import annotations

from harness import Machine

from kernel.abi import TransferMode
from kernel.captable import CapEntry, Origin, TransferPolicy
from kernel.lease import Lease
from kernel.services.sessions import UserSession


def leased(m: Machine, name: str, lease: Lease) -> CapEntry:
    obj = m.kernel.kernel_caps[name]
    return CapEntry(obj, obj.interface_id, TransferPolicy.COPY, Origin.RESULT_CAP, lease=lease)


def test_an_ended_lease_fails_the_cap_in_the_holder_and_wherever_it_was_sent():
    m = Machine()
    lease = Lease()
    server = m.process("server", endpoints={"ep": "Echo"})
    client = m.process(
        "client", {"echo": m.client_of(server, "ep"), "console": leased(m, "console", lease)}
    )
    child = m.process("child", {"console": client.proc.table.get(client.cap("console"))})
    client.run(
        client.call_sqe(
            "echo",
            "Echo",
            "echo",
            {"data": b""},
            xfers=[(client.cap("console"), TransferMode.COPY)],
        )
    )
    [cqe] = server.run(server.recv_sqe())
    [(sent, _)] = server.records(cqe)
    write = server.call_sqe(sent, "Console", "writeLine", {"text": "before"})
    assert server.run(write)[0].result >= 0  # a live lease: the copy works

    lease.end("logged out")
    for holder, cap in ((client, client.cap("console")), (child, "console"), (server, sent)):
        call = holder.call_sqe(cap, "Console", "writeLine", {"text": "after"})
        [done] = holder.run(call)
        failure = holder.exception(done, call)
        assert failure["type"] == "disconnected"
        assert "revoked, the session that granted it logged out" in failure["message"]
    assert b"after" not in m.console
    # the echo client, granted outside any session's bundle, still works
    echo = client.call_sqe("echo", "Echo", "echo", {"data": b"x"})
    assert client.run(echo) == []  # queued for the server: not refused


def test_the_broker_issues_no_bundle_for_an_ended_session():
    m = Machine()
    session = UserSession("guest", "", b"\0" * 16, ["guest"])
    entry = CapEntry(session, session.interface_id, TransferPolicy.COPY, Origin.RESULT_CAP)
    shell = m.process("shell", {"broker": "authorityBroker", "session": entry})
    logout = shell.call_sqe("session", "UserSession", "logout")
    assert shell.run(logout)[0].result >= 0
    ask = shell.call_sqe(
        "broker",
        "AuthorityBroker",
        "shellBundle",
        {"session": 0},
        xfers=[(shell.cap("session"), TransferMode.COPY)],
    )
    [done] = shell.run(ask)
    failure = shell.exception(done, ask)
    assert failure["type"] == "disconnected"
    assert failure["message"] == "that session has ended: it logged out"
