"""Whole systems booted from manifests on the in-process host (threads, fast)."""

from __future__ import annotations

import time

import pytest
from systems import CRASH, HELLO, SPAWN_CHECKS, kernel_caps, system

from kernel.hosts.inproc import InProcessHost
from kernel.manifest import build, encode_document


def boot(document: dict | None = None) -> InProcessHost:
    host = InProcessHost(encode_document(document) if document else build())
    host.boot()
    return host


def wait_for(host: InProcessHost, text: bytes, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in host.console:
        if time.monotonic() > deadline:
            pytest.fail(
                f"{text!r} not seen; console was:\n{host.console.decode()}\ncrashes: {host.crashes}"
            )
        time.sleep(0.01)
    return host.console.decode()


def test_init_starts_services_that_talk_over_an_endpoint():
    host = boot(HELLO)
    try:
        out = wait_for(host, b"echo answered")
        assert "test system" in out  # the MOTD, through SystemInfo
        assert "hello: echo answered 'hello through an endpoint'" in out
        names = sorted(p.name for p in host.kernel.processes.values())
        assert names == ["echo", "init"]  # hello exited; echo serves on
        assert host.kernel.faults == [] and host.crashes == {}
    finally:
        host.shutdown()


def test_spawner_refuses_bad_requests_and_handles_report_and_kill():
    host = boot(SPAWN_CHECKS)
    try:
        out = wait_for(host, b"quota after")
        lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        assert lines["bad-binary"].startswith("invalidArgument: no binary 'no-such'")
        assert "sleeper" in lines["bad-binary"]  # says what the package does have
        assert lines["bad-name"].startswith("invalidArgument: process name 'has space'")
        assert lines["duplicate"] == "invalidArgument: grant 't' is named twice"
        assert lines["client-of-non-endpoint"].startswith(
            "invalidArgument: grant 't': clientOf needs an Endpoint"
        )
        assert lines["sleeper"] == "ok"
        assert lines["handle-not-transferable"].startswith("invalidArgument: grant 'h'")
        assert lines["status"] == "sleeper ['running']"
        assert lines["wait after kill"] == "-9"
        assert "killed by pid" in lines["status after kill"]
        assert lines["call to dead child"] == "disconnected"
        assert lines["quick exit code"] == "7"
        assert lines["quota after 16"].startswith("overloaded: cannot spawn 's': processes quota")
        assert host.kernel.faults == [] and host.crashes == {}
    finally:
        host.shutdown()


def test_system_halts_when_init_and_every_service_have_exited():
    host = boot(
        system(
            [
                {"name": "q1", "binary": "quick", "caps": []},
                {"name": "q2", "binary": "quick", "caps": []},
            ],
            {"quick": "tests.programs.quick"},
        )
    )
    try:
        assert host.wait_halted(10)
        assert "q1 ended with status 7" in host.console.decode()
    finally:
        host.shutdown()


def test_crashed_server_disconnects_its_callers_and_the_system_keeps_running():
    host = boot(CRASH)
    try:
        out = wait_for(host, b"echo_once:")
        assert "echo_once: disconnected" in out
        assert "deliberate crash" in "".join(host.crashes.values())
        assert host.kernel.faults == []
    finally:
        host.shutdown()


def test_waiting_for_more_completions_than_can_come_returns_in_process():
    host = boot(
        system(
            [{"name": "w", "binary": "w", "caps": kernel_caps("console")}],
            {"w": "tests.programs.overwait"},
        )
    )
    try:
        assert "overwait: returned with 0" in wait_for(host, b"overwait: returned")
    finally:
        host.shutdown()


def test_a_service_whose_required_host_cap_is_missing_is_skipped_in_one_line():
    host = boot()  # the default system, on a host that attaches no language model
    try:
        wait_for(host, b"init: model: not started (this host provides no languageModel)\n")
        wait_for(host, b"init: shell: not started (this host provides no terminal)\n")
        time.sleep(0.2)  # init would report lapsed bundle offers now
        assert host.console.decode().count("\n") == 2
    finally:
        host.shutdown()


def test_the_self_check_passes_natively():
    """The same check that gates the browser's snapshot (kernel/hosts/browser.py warm_up)."""
    from kernel import selfcheck

    lines = selfcheck.run()
    assert any("refused bad opcode: ok" in line for line in lines)
