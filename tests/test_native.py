"""The native host: real OS processes, shared memory rings, eventfd doorbells."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from systems import CRASH, HELLO, SPAWN_CHECKS, kernel_caps, system

from kernel.hosts.native import SPIN_WINDOW_US, NativeHost
from kernel.manifest import encode_document

pytestmark = pytest.mark.native


class Console:
    def __init__(self) -> None:
        self.text = ""

    def __call__(self, proc: object, data: bytes) -> None:
        self.text += data.decode()


def run_until(host: NativeHost, console: Console, text: str, timeout: float = 20) -> str:
    host.run(until=lambda: text in console.text, timeout=timeout)
    assert text in console.text, f"{text!r} not seen; console:\n{console.text}"
    return console.text


def image(document: dict) -> bytes:
    return encode_document(document)


def os_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.parametrize("spin_us", [0, SPIN_WINDOW_US])
def test_isolated_processes_talk_over_an_endpoint(spin_us):
    console = Console()
    with NativeHost(image(HELLO), console=console, spin_us=spin_us) as host:
        host.boot()
        out = run_until(host, console, "echo answered")
        assert "hello: echo answered 'hello through an endpoint'" in out
        os_pids = set(host.os_pids().values())
        assert len(os_pids) == len(host.os_pids()) >= 2 and os.getpid() not in os_pids
        assert host.kernel.faults == []


def test_a_process_sees_only_its_own_region_and_doorbells():
    console = Console()
    probes = system(
        [
            {"name": f"probe{i}", "binary": "probe", "caps": kernel_caps("console")}
            for i in range(3)
        ],
        {"probe": "tests.programs.isolation_probe"},
    )
    with NativeHost(image(probes), console=console) as host:
        host.boot()
        host.run(until=lambda: console.text.count("PROBE ") == 3, timeout=20)
        reports = [
            json.loads(line[6:]) for line in console.text.splitlines() if line.startswith("PROBE ")
        ]
        assert len(reports) == 3
        assert len({r["os_pid"] for r in reports}) == 3  # three OS processes
        for report in reports:
            # exactly one shared region mapped: its own ring, CapSet and buffers
            assert report["memfd_maps"] == [f"/memfd:capos-pid{report['pid']} (deleted)"]
            targets = sorted(report["fds"].values())
            assert sum("eventfd" in t for t in targets) == 2  # submit + wake, nothing else
            assert not any("socket" in t for t in targets)  # no zygote or kernel channel
            own = f"/memfd:capos-pid{report['pid']} (deleted)"
            assert all(t == own for t in targets if "memfd" in t)  # mmap keeps a dup of its own


def test_crashed_process_is_reported_and_its_callers_see_disconnected():
    console = Console()
    with NativeHost(image(CRASH), console=console) as host:
        host.boot()
        out = run_until(host, console, "echo_once:")
        assert "echo_once: disconnected" in out
        assert host.kernel.faults == []


def test_killed_child_os_process_is_gone_and_shutdown_leaves_nothing_behind():
    console = Console()
    host = NativeHost(image(SPAWN_CHECKS), console=console)
    zygote_pid = host._zygote.pid
    try:
        host.boot()
        out = run_until(host, console, "quota after", timeout=60)
        assert "wait after kill: -9" in out
        assert "call to dead child: disconnected" in out
        assert "quota after 16: overloaded" in out
    finally:
        host.shutdown()
    deadline = time.monotonic() + 5
    while os_children(zygote_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os_children(zygote_pid) == []
    assert host._zygote.poll() is not None


def test_boot_command_reports_a_bad_manifest_clearly(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("schemaVersion = 1\nsurprise = true\n")
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "boot", "--manifest", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown field `surprise` at `$`" in result.stderr
    assert "schemaVersion, binaries, initConfig, kernelParams" in result.stderr


def test_waiting_for_more_completions_than_can_come_returns():
    console = Console()
    waiter = system(
        [{"name": "w", "binary": "w", "caps": kernel_caps("console")}],
        {"w": "tests.programs.overwait"},
    )
    with NativeHost(image(waiter), console=console) as host:
        host.boot()
        assert "overwait: returned with 0" in run_until(host, console, "overwait: returned")
