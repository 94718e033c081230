"""The playground in real browsers: Debian's Chromium (Playwright) and Firefox ESR
(puppeteer-core over WebDriver BiDi, from web/tests/firefox-play.mjs)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from bench.tab import become_guest, has_prompt, residents, wait_screen

pytestmark = pytest.mark.browser

GUEST_PROMPT = "guest@capos>"  # the shell's, once `guest` is typed


def test_landing_page_leads_into_the_playground(browser, base_url):
    page = browser.new_page()
    page.goto(base_url + "/")
    assert page.title() == "capOS Playground"
    page.wait_for_selector("#tours li")  # the guided tours, first steps first
    first = page.locator("#tours li a").first
    assert first.get_attribute("href") == "/play?tour=first-steps&step=1"
    page.click("text=Open the playground")
    page.wait_for_url(base_url + "/play")
    page.close()


def test_the_shell_runs_in_the_tab_with_every_process_in_its_own_worker(browser, base_url):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(base_url + "/play")
    assert page.evaluate("crossOriginIsolated") is True
    assert page.evaluate("typeof SharedArrayBuffer") == "function"
    wait_screen(page, has_prompt, 120)
    selfcheck = page.evaluate("capos.selfcheck")
    assert "on emscripten" in selfcheck and "refused bad opcode: ok" in selfcheck
    # init, the resident services and the shell: one worker each (the services'
    # workers finish loading after the prompt; calls to them queue meanwhile)
    resident = residents(page)
    wait_screen(page, lambda rows: page.evaluate("capos.processes.size") == resident, 120)
    restored = page.evaluate("capos.restoredBy")
    assert 1 + len(restored["processes"]) >= 1 + resident  # the kernel's worker, one a process
    assert_fast_restores(restored)
    # what the status line said while loading: each part, and where it came from
    loaded = [what for what, _ in page.evaluate("capos.marks")]
    for part in ("Python runtime", "memory snapshot", "kernel package"):
        assert any(re.fullmatch(part + r" \((network|cache|revalidated)\)", m) for m in loaded)

    # no click first: the terminal took the keyboard focus when the prompt appeared
    assert page.evaluate("document.activeElement.classList.contains('xterm-helper-textarea')")
    page.keyboard.type("caps\n")  # anonymous, as in capOS: no launcher yet
    rows = wait_screen(page, lambda rows: any(r.startswith("systemInfo ") for r in rows), 30)
    assert not any(r.startswith("launcher ") for r in rows)
    become_guest(page)
    page.keyboard.type("caps\n")
    rows = wait_screen(page, lambda rows: any(r.startswith("timer ") for r in rows), 30)
    assert any(r.split()[:2] == ["launcher", "ProcessSpawner"] for r in rows)

    page.keyboard.type('run "counter" with { stdio: client @stdio, counter: client @counter }\n')
    wait_screen(page, lambda rows: any("[counter] inc [n], get, exit" in r for r in rows), 60)
    assert page.evaluate("capos.processes.size") == resident + 1  # the child's own worker
    page.keyboard.type("inc 4\n")
    wait_screen(page, lambda rows: "[counter] 4" in rows, 30)
    page.keyboard.type("exit\n")
    wait_screen(page, lambda rows: page.evaluate("capos.processes.size") == resident, 30)

    page.keyboard.type('spawn "counter" with { stdio: client @stdio, counter: client @counter }\n')
    wait_screen(page, lambda rows: page.evaluate("capos.processes.size") == resident + 1, 60)
    page.keyboard.type("kill\n")  # the most recent job, through its ProcessHandle
    rows = wait_screen(page, lambda rows: any("done  counter  (killed" in r for r in rows), 30)
    assert page.evaluate("capos.processes.size") == resident  # its worker is gone
    page.keyboard.type("timer.now()\n")  # and the system carries on
    wait_screen(page, lambda rows: any(r.startswith("ns = ") for r in rows), 30)

    # init started with no caps at all fails at once: an exception in its worker
    page.keyboard.type('launcher.spawn(name="crashy", binaryName="init", grants=[])\n')
    wait_screen(page, lambda rows: any("(crashy) crashed in its worker" in r for r in rows), 60)
    page.keyboard.type("timer.now()\n")
    wait_screen(page, lambda rows: sum(r.startswith("ns = ") for r in rows) == 2, 30)
    assert errors == []  # the crash is reported to the kernel (and as a warning), not thrown

    # The window resized while a line is typed: the shell refits it at once, before Enter.
    line = "timer.now() " * 7 + "caps"
    page.keyboard.type(line)
    wait_screen(page, lambda rows: f"{GUEST_PROMPT} {line}" in rows, 30)
    page.set_viewport_size({"width": 640, "height": 720})
    page.wait_for_function("capos.term.cols < 100")  # the terminal fitted the new width
    cols = page.evaluate("capos.term.cols")
    rows = wait_screen(
        page, lambda rows: len(_typed_row(rows)) < cols and _typed_row(rows).endswith(" caps"), 30
    )
    assert f"{GUEST_PROMPT} timer" not in _typed_row(rows)  # its start scrolled off
    page.set_viewport_size({"width": 1280, "height": 720})
    wait_screen(page, lambda rows: _typed_row(rows) == f"{GUEST_PROMPT} {line}", 30)
    page.close()


def _typed_row(rows: list[str]) -> str:
    return [row for row in rows if row][-1]


def assert_fast_restores(restored: dict) -> None:
    """Every worker took the fast path (web/static/pyodide-boot.js): Pyodide's module
    compiled once by the page and shared, the snapshot's heap written page run by page
    run, the package imported from its zip. A fallback (a worker compiling its own
    module) boots and works, only slower, so nothing but this check would notice it."""
    for path in [restored["kernel"]["path"], *(w["path"] for w in restored["processes"])]:
        assert path[0] == "shared module", path
        assert path[1].startswith("snapshot: ") and path[2] == "package zip", path


FIREFOX = "/usr/bin/firefox-esr"
FIREFOX_SCRIPT = Path(__file__).resolve().parents[1] / "web" / "tests" / "firefox-play.mjs"


@pytest.mark.timeout(420)
def test_firefox_over_webdriver_bidi_boots_the_playground_and_answers(base_url):
    # Its own process group, so that on a timeout Firefox goes down with node.
    node = subprocess.Popen(
        ["node", str(FIREFOX_SCRIPT), base_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = node.communicate(timeout=400)
    finally:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
    assert node.returncode == 0, stderr
    seen = json.loads(stdout.strip().splitlines()[-1])
    assert seen["error"] is None, seen["error"]
    assert seen["isolated"] is True and seen["sharedArrayBuffer"] == "function"
    assert any(row.split()[:2] == ["timer", "Timer"] for row in seen["rows"])
    assert_fast_restores(seen["restoredBy"])


def test_a_worker_past_its_memory_budget_is_ended_with_a_crash_record_not_the_tab(
    browser, base_url
):
    page = browser.new_page()
    page.goto(base_url + "/play?memory=8")  # far below what Pyodide itself needs
    rows = wait_screen(page, lambda rows: any("memory budget" in r for r in rows), 120)
    assert "capOS: pid 1 (init) ran past its memory budget (8 MiB)" in rows
    wait_screen(page, lambda rows: page.inner_text("#status") == "the system halted", 30)
    assert page.evaluate("() => 6 * 7") == 42  # the tab itself is fine
    page.close()
