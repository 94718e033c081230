"""Server-hosted sessions on real QEMU (TCG): the guest, the pool, the API, the websocket.

One real server (`capos-playground serve`, a subprocess) with a small pool
serves the whole module; the tests run in file order, because they share
its VMs the way visitors would, and the last one stops it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from bench.poolserver import PROMPT, TerminalClient, pool_server
from server.control import ControlError
from server.image import ensure_image
from server.stream import OutputStream
from server.vm import Vm, VmConfig

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]

IDLE_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def image():
    return ensure_image()


# --- one VM, no server: the guest and its control channel ---------------------------


def test_guest_boots_to_the_prompt_and_answers_on_the_control_channel(image):
    """pycapnp on this side, the project's codec in the guest: both directions decode."""

    async def scenario() -> dict:
        vm = Vm(image, VmConfig(accel="tcg"), OutputStream(), name="capos-test-control")
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(vm.run())
            async with asyncio.timeout(120):
                await vm.ready.wait()
            found = {"prompt": vm.stream.snapshot().data}
            found["pong"] = await vm.control.call(ping=None)
            found["resize"] = await vm.control.call(resize={"cols": 132, "rows": 43})
            found["reseed"] = await vm.control.call(reseed=os.urandom(32))
            with pytest.raises(ControlError, match=r"16\.\.512 bytes"):
                await vm.control.call(reseed=b"short")
            vm.write(b"guest\rtimer.now()\r")  # the guest bundle holds the timer
            found["answer"] = (await _until(vm.stream, "ns = ")).split("timer.now()")[-1]
            # Garbage on the line: a frame that does not decode, then one claiming 2 GiB.
            # The guest answers each with an error (id 0) and keeps serving.
            vm.control._writer.write(bytes.fromhex("0000000001000000") + b"\xff" * 8)
            found["after_garbage"] = await vm.control.call(ping=None)
            vm.control._writer.write(bytes.fromhex("00000000ffffff0f"))
            await asyncio.sleep(0.5)
            found["after_giant"] = await vm.control.call(ping=None)
            await vm.shutdown("test over")
        found["exit"] = vm.exit_reason
        return found

    found = asyncio.run(scenario())
    assert "capability" in found["prompt"] and found["prompt"].endswith(PROMPT)
    assert found["pong"]["pong"]["processes"] >= 3 and found["pong"]["pong"]["uptimeNs"] > 0
    assert found["resize"] == found["reseed"] == {"done": None}
    assert "ns = " in found["answer"]
    assert "pong" in found["after_garbage"] and "pong" in found["after_giant"]
    assert found["exit"] == "test over"


async def _until(stream: OutputStream, text: str, timeout: float = 30) -> str:
    async with asyncio.timeout(timeout):
        while text not in (seen := stream.snapshot().data):
            await stream.next(stream.end, 1)
    return seen


# --- the server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(image):
    options = ["--accel", "tcg", "--warm", "2", "--max-vms", "3"]
    options += ["--client-sessions", "8"]  # these tests fill the pool from one address
    with pool_server(*options, "--idle-timeout", str(IDLE_TIMEOUT_S)) as served:
        yield served


SHARED: dict[str, dict] = {}  # sessions the tests below hand on to each other


def test_post_hands_out_a_warm_vm_and_a_command_runs_over_the_websocket(server):
    session = server.new_session()
    assert session["terminal"] == f"/api/sessions/{session['id']}/terminal"
    assert session["state"] == "running"
    assert server.pool()["refill"] == "snapshot restore"
    client = TerminalClient(server, session)
    client.read_prompt()
    # The template's screen, one prompt: the pool's unseen warm-up Enter left no trace.
    assert client.text.count("@capos> ") == 1 and client.text.endswith("@capos> ")
    assert "guest: now guest (guest)" in client.command("guest")
    assert "ns = " in client.command("timer.now()")
    assert "value = 5" in client.command("counter.increment(by=5)")
    scraped = server.http.get("/metrics").text
    assert 'capos_sessions{backend="qemu"} 1.0' in scraped
    assert 'capos_websocket_clients{role="owner"} 1.0' in scraped
    assert _metric(scraped, "capos_vm_boots_total") >= 2  # the template and a restore
    assert _metric(scraped, "capos_bytes_streamed_total") >= len(client.text.encode())
    client.close()
    SHARED["a"] = session


def test_the_pools_vms_run_sandboxed_and_the_pool_says_how(server):
    """The pool's VMs are restores of its template: confined like a booted one."""
    status = Path(f"/proc/{_qemu_pid(SHARED['a']['vm'])}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Seccomp"] == "2"
    if os.geteuid() == 0:
        assert "0" not in fields["Uid"].split(), f"QEMU runs as root: {fields['Uid']}"
    confined = server.pool()["sandbox"]
    assert confined["seccomp"].startswith("on,") and "spawn=deny" in confined["seccomp"]
    assert confined["rlimits"]["core"] == 0 and "cgroup" in confined


def test_resume_after_a_dropped_connection_loses_and_repeats_nothing(server):
    session = SHARED["a"]
    dropped = TerminalClient(server, session)
    dropped.read_prompt()
    at = dropped.offset
    dropped.close()
    other = TerminalClient(server, session)
    other.read_prompt()
    other.command("caps")
    other.command("timer.now()")
    back = TerminalClient(server, session, offset=at)
    back.read_until(lambda: back.offset >= other.offset, "the missed output")
    assert back.offset == other.offset
    assert back.text.encode() == other.text.encode()[at:]
    other.close()
    back.close()


def test_a_resume_beyond_the_stream_is_reset_to_the_oldest_byte(server):
    client = TerminalClient(server, SHARED["a"], offset=10**9)
    assert client.next_frame() == {"type": "reset", "offset": 0}
    assert client.next_frame()["offset"] == 0
    client.close()


def test_hostile_frames_get_clear_errors_and_the_session_carries_on(server):
    client = TerminalClient(server, SHARED["a"])
    client.read_prompt()
    bad = [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"type": "teleport"}),
        json.dumps({"type": "input", "data": 5}),
        json.dumps({"type": "input", "data": "x" * 20000}),
        json.dumps({"type": "resize", "cols": 0, "rows": 10**6}),
        json.dumps({"type": "resume", "offset": 0}),
        "x" * 70000,
    ]
    for frame in bad:
        client.ws.send(frame)
    client.ws.send(b"\x00binary")
    errors = [client.next_frame() for _ in range(len(bad) + 1)]
    assert all(e["type"] == "error" and e["message"] for e in errors), errors
    assert "at most" in errors[4]["message"] and "first frame" in errors[6]["message"]
    assert "ns = " in client.command("timer.now()")
    client.close()


def test_api_refuses_bad_bodies_and_unknown_sessions(server):
    http = server.http
    typed = {"content-type": "application/json"}
    assert http.post("/api/sessions", content=b"{", headers=typed).status_code == 400
    assert http.post("/api/sessions", json={"backend": "vmware"}).status_code == 400
    assert http.post("/api/sessions", json={"backend": "qemu", "x": 1}).status_code == 400
    assert http.post("/api/sessions", content=b"x" * 10000, headers=typed).status_code == 413
    assert http.post("/api/sessions", content=b"[" * 2000, headers=typed).status_code == 400
    assert http.get("/api/sessions/nope").status_code == 404
    assert http.delete("/api/sessions/nope").status_code == 404
    with server.ws({"terminal": "/api/sessions/nope/terminal"}) as ws:
        assert "no session" in json.loads(ws.recv(timeout=10))["message"]


def test_idle_session_is_suspended_and_resumes_with_screen_and_shell_intact(server):
    session = SHARED["a"]
    before = TerminalClient(server, session)
    before.read_prompt()
    screen = before.text
    before.close()
    server.wait_for(
        lambda: server.state(session) == "suspended",
        "the idle session to be suspended",
        timeout=60,
    )
    after = TerminalClient(server, session)
    after.send(type="resize", cols=140, rows=40)  # a wider window, while the VM is restored
    after.read_until(lambda: after.offset >= before.offset, "the screen")
    assert after.text == screen  # the same screen, from the same scrollback
    assert "value = 10" in after.command("counter.increment(by=5)")  # the same system
    line = "counter" + "0123456789" * 9 + "end"  # past the 80 columns the VM was suspended with
    after.send(type="input", data=line)

    def row() -> str:  # the prompt's row, as shown
        return after.text.rsplit("\r", 1)[-1].replace("\x1b[K", "")

    after.read_until(lambda: row().endswith("end"), "the echo")
    assert row().endswith(f"@{PROMPT}{line}")  # whole: the shell has the window's width
    after.send(type="input", data="\x15")  # Ctrl-U: the next test starts at an empty prompt
    assert server.http.get(f"/api/sessions/{session['id']}").json()["state"] == "running"
    SHARED["a_client"] = after


def test_a_full_pool_answers_503_with_retry_after(server):
    taken = [server.new_session() for _ in range(2)]
    server.wait_for(lambda: server.pool()["vms"] == 3, "the pool to fill")
    response = server.http.post("/api/sessions", json={"backend": "qemu"})
    if response.status_code == 201:  # a third VM was still warm: take it too
        taken.append(response.json())
        response = server.http.post("/api/sessions", json={"backend": "qemu"})
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1 and "try again" in response.json()["error"]
    SHARED["b"], SHARED["c"] = taken[0], taken[1]
    for extra in taken[2:]:
        assert server.http.delete(f"/api/sessions/{extra['id']}").status_code == 204


def test_a_killed_vm_ends_its_session_with_the_reason_and_the_pool_refills(server):
    session = SHARED["b"]
    client = TerminalClient(server, session)
    client.read_prompt()
    os.kill(_qemu_pid(session["vm"]), signal.SIGKILL)
    assert "SIGKILL" in client.read_exit()
    info = server.http.get(f"/api/sessions/{session['id']}").json()
    assert info["state"] == "ended" and "SIGKILL" in info["reason"]
    server.wait_for(lambda: server.pool()["warm"] >= 1, "a refill")
    SHARED["d"] = server.new_session(timeout=10)


def test_delete_shuts_the_vm_down_and_says_so_to_attached_clients(server):
    session = SHARED["c"]
    client = TerminalClient(server, session)
    client.read_prompt()
    assert server.http.delete(f"/api/sessions/{session['id']}").status_code == 204
    assert client.read_exit() == "ended by its owner"
    assert server.http.get(f"/api/sessions/{session['id']}").json()["state"] == "ended"


def test_exiting_the_shell_powers_the_vm_off_and_ends_the_session(server):
    client = TerminalClient(server, SHARED["d"])
    client.read_prompt()
    client.send(type="input", data="exit\r")
    assert client.read_exit() == "the system powered off (the shell exited)"
    client.close()


@pytest.mark.browser
def test_run_on_the_server_attaches_xterm_in_the_browser_and_forks_it(server):
    from playwright.sync_api import sync_playwright

    from bench.tab import (
        CHROMIUM,
        CHROMIUM_FLAGS,
        become_guest,
        has_prompt,
        history_urls,
        wait_global,
        wait_screen,
    )

    server.wait_for(lambda: server.pool()["warm"] >= 1, "a warm VM")
    base = server.base
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(base + "/")
        page.click("#run-on-server")
        page.wait_for_url(f"{base}/play")  # the session's id, its owner's credential, is not
        wait_screen(page, has_prompt, 60)
        session = page.evaluate("capos.session")
        assert page.locator("#owner-notice").count() == 0  # this tab made it: no warning
        become_guest(page)
        page.keyboard.type("timer.now()\n")
        wait_screen(page, lambda rows: any(r.startswith("ns = ") for r in rows), 30)
        page.reload()  # a new connection shows the same screen, from the scrollback
        rows = wait_screen(page, lambda rows: any(r.startswith("ns = ") for r in rows), 30)
        assert sum(r.startswith("ns = ") for r in rows) == 1
        with page.context.expect_page() as opened:  # fork: a copy, in a new tab, its owner's
            page.click("#fork")
        fork = opened.value
        wait_screen(fork, lambda rows: any(r.startswith("ns = ") for r in rows), 60)
        forked = fork.evaluate("capos.session")
        assert forked not in (None, session) and fork.locator("#owner-notice").count() == 0
        assert server.http.delete(f"/api/sessions/{forked}").status_code == 204
        fork.close()
        page.go_back()  # the landing page, then forward: the same session, still no id
        page.go_forward()
        wait_screen(page, lambda rows: any(r.startswith("ns = ") for r in rows), 30)
        assert page.evaluate("capos.session") == session and page.url == f"{base}/play"
        assert session not in " ".join(history_urls(page))
        page.goto(base + "/")  # then the playground's plain link, in the same tab: the tab's
        page.click('a[href="/play"]')  # own kernel (the session was the other entry's)
        wait_global(page, "window.capos && window.capos.processes ? true : null", 60)
        assert page.evaluate("window.capos.session") is None
        browser.close()
    assert errors == []


def test_stopping_the_server_leaves_no_qemu_behind(server):
    marker = f"capos-{server.process.pid}-"
    assert _qemu_pids(marker), "the server should be running VMs now"
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=60) == 0
    deadline = time.monotonic() + 10
    while _qemu_pids(marker):
        assert time.monotonic() < deadline, f"QEMU left behind: {_qemu_pids(marker)}"
        time.sleep(0.2)


def _metric(scraped: str, name: str) -> float:
    line = next(line for line in scraped.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


def _qemu_pids(marker: str) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"qemu-system-x86_64"):
                names = [a.decode() for a in args if a.decode(errors="replace").startswith(marker)]
                if names:
                    found[int(entry.name)] = names[0]
    return found


def _qemu_pid(name: str) -> int:
    pids = [pid for pid, found in _qemu_pids(name).items() if found == name]
    assert len(pids) == 1, f"expected one QEMU named {name}, found {pids}"
    return pids[0]
