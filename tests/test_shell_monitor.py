"""The shell's monitoring commands (`top`, `log`, `trace`, `graph`), driven as a user would."""

from __future__ import annotations

import time

import pytest
from test_shell import after_guest, after_motd, guest_session, shell_session, wait_for

from kernel.hosts.inproc import InProcessHost
from kernel.manifest import default_manifest, encode_document, load_document

SLEEPER = 'spawn "sleeper" with { timer: @timer }\n'


def rows(lines: list[str]) -> dict[str, list[str]]:
    """top's process rows by name."""
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["PID", "PPID"])
    table = {}
    for line in lines[start + 1 :]:
        fields = line.split()
        if len(fields) < 12 or not fields[0].isdigit():
            break
        table[fields[2]] = fields
    return table


def test_top_lists_init_and_the_shell_with_their_ring_counters():
    lines = after_guest(guest_session("top\nexit\n"))
    assert lines[0].startswith("top - up ") and "whole system" in lines[0]
    table = rows(lines)
    assert table["init"][:4] == ["1", "-", "init", "running"]
    assert table["shell"][1] == "1" and table["shell"][3] == "running"
    assert int(table["shell"][4]) > 0 and int(table["shell"][9]) >= 10  # enters, caps held


def test_top_shows_a_spawned_child_then_its_exit_record_after_kill():
    screen = after_guest(guest_session(SLEEPER + "top\nkill %1\ntop\nexit\n"))
    assert screen[0] == "[1] sleeper (pid 9)"
    first = screen[: screen.index("[1] done  sleeper  (killed (killed by pid 8))")]
    assert rows(first)["sleeper"][:4] == ["9", "8", "sleeper", "running"]
    second = screen[screen.index("[1] done  sleeper  (killed (killed by pid 8))") :]
    assert "sleeper" not in rows(second)
    assert "  pid 9 sleeper: killed (killed by pid 8)" in second


def test_log_shows_records_the_logger_cap_wrote_filtered_by_level_and_process():
    lines = after_guest(
        guest_session(
            'logger.write(level=info, text="starting")\n'
            'logger.write(level=error, text="disk is lava")\n'
            "log\nlog error\nlog counter\nexit\n"
        )
    )
    entries = [line for line in lines if "shell[8]" in line]
    assert [e.split(None, 1)[1] for e in entries] == [
        "info  shell[8]: starting",
        "error shell[8]: disk is lava",
        "error shell[8]: disk is lava",  # log error: that level and above
    ]
    assert lines[-1].startswith("log: no records matching that")


def test_trace_shows_calls_with_caller_callee_and_result():
    lines = after_guest(guest_session("counter.increment(by=2)\ntrace 50 counter\nexit\n"))
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["TIME", "CALLER"])
    calls = [line.split() for line in lines[header + 1 :]]
    assert [
        calls[-1][1],
        calls[-1][2],
        calls[-1][3],
        calls[-1][5],
    ] == ["shell[8]", "counter[3]", "Counter.increment", "ok"]
    assert all("counter[3]" in call for call in calls)  # the filter


def test_graph_of_a_cap_names_its_server_and_every_holder():
    lines = after_guest(guest_session("graph echo\nexit\n"))
    assert lines[0] == "echo: Echo, ClientEndpoint of #1, served by pid 2 (echo)"
    holders = [line.split()[0] for line in lines[2:]]
    assert holders == ["init[1]", "echo[2]", "shell[8]"]
    assert "as echo" in lines[3] and "non_transferable" in lines[3]  # the server's own Endpoint


def test_graph_of_a_process_lists_what_it_holds_and_who_holds_what_it_serves():
    lines = after_guest(guest_session("graph counter-server\nexit\n"))
    assert lines[0] == "pid 3 counter (counter-server) holds:"
    assert lines[-1] == "  Counter (endpoint:2): init[1], shell[8]"


def test_graph_of_an_unknown_name_says_where_to_look():
    lines = after_guest(guest_session("graph nosuch\ngraph\nexit\n"))
    assert lines[0].startswith("graph: 'nosuch' is neither a cap this shell holds nor a process")
    assert lines[1].startswith("usage: graph NAME")


def test_a_subtree_monitor_kept_with_let_sees_only_that_subtree():
    lines = after_guest(
        guest_session(
            SLEEPER + "let mine = monitor.subtree(pid=9)\ntop mine\ntrace mine\n"
            "mine.subtree(pid=1)\nexit\n"
        )
    )
    assert lines[1] == "mine = <SystemMonitor cap>"
    assert "pid 9 and descendants" in lines[2]
    assert list(rows(lines[2:])) == ["sleeper"]
    assert "error: invalidArgument: pid 1 is not in this monitor's view" in lines


def test_monitoring_commands_without_a_monitor_cap_say_so():
    lines = after_motd(shell_session("top\nguest\nlet t = @timer\ntop t\nexit\n"))
    assert lines[0] == (
        "top: this session holds no monitor named 'monitor' (a SystemMonitor cap; see: caps)"
    )  # an anonymous session's bundle has none
    assert lines[3] == "top: t is a Timer, not a SystemMonitor"


def test_interactive_top_refreshes_until_a_key_then_restores_the_screen():
    host = InProcessHost(encode_document(load_document(default_manifest())), terminal=True)
    host.boot()
    try:
        wait_for(host, "terminal", "anonymous@capos> ")
        host.type(b"guest\r")
        wait_for(host, "terminal", "guest@capos> ")
        host.type(b"top\r")
        deadline = time.monotonic() + 10
        while host.screen.count(b"top - up") < 2:  # a second frame: it refreshes
            if time.monotonic() > deadline:
                pytest.fail(host.screen.decode())
            time.sleep(0.05)
        assert b"\x1b[?1049h" in host.screen and b"(any key quits)" in host.screen
        host.type(b"q")
        wait_for(host, "terminal", "\x1b[?1049l")
        host.type(b"caps\r")
        wait_for(host, "terminal", "SystemMonitor")  # the key was eaten, the prompt is back
        assert b"qcaps" not in host.screen
        assert host.crashes == {} and host.kernel.faults == []
    finally:
        host.shutdown()


def test_help_and_the_manual_cover_the_monitoring_commands():
    lines = after_motd(shell_session("help\nhelp graph\nman top\napropos monitor\nexit\n"))
    overview = [line.split()[0] for line in lines if line.startswith("  ")]
    assert {"top", "log", "trace", "graph"} <= set(overview)
    assert "graph: [ext] who holds caps to what" in lines
    assert (
        "top(commands) - [ext] a live process table, as the monitor cap you hold sees it" in lines
    )
    assert any(line.startswith("monitoring (concepts) - ") for line in lines)


def test_log_shows_another_processs_control_characters_as_spaces():
    lines = after_guest(guest_session('logger.write(level=info, text="a\\x1b[2Jb")\nlog\nexit\n'))
    assert lines[-1].endswith("shell[8]: a [2Jb")


def test_init_logs_the_services_it_started():
    lines = after_guest(guest_session("log init\nexit\n"))
    # each is logged as the next spawn goes out, so all but the shell precede the shell
    started = [line.split(None, 1)[1] for line in lines if ": started " in line]
    assert started[:2] == [
        "info  init[1]: started echo (echo-server)",
        "info  init[1]: started counter (counter-server)",
    ]


def test_graph_shows_a_childs_cap_revoked_once_the_session_that_granted_it_logged_out():
    lines = after_guest(
        guest_session(
            'spawn "greeter" with { stdio: client @stdio, timer: @timer }\n'
            "graph timer\nlogout\nguest\ngraph timer\nkill\nexit\n"
        )
    )
    held = [line for line in lines if line.lstrip().startswith("greeter[")]
    assert held[0].endswith("as timer        (copy, spawn_grant)")
    assert held[1].endswith("(copy, spawn_grant, revoked: the session that granted it logged out)")
    shell = [line for line in lines if line.lstrip().startswith("shell[")]
    assert not any("revoked" in line for line in shell)  # the fresh guest bundle works
