"""The playground in a real browser: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from server.app import create_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


SCREEN = """() => window.capos ? [...Array(capos.term.buffer.active.length).keys()]
    .map(i => capos.term.buffer.active.getLine(i).translateToString().trim()) : []"""


def screen_when(page, ready, timeout: float) -> list[str]:
    """The terminal's rows once `ready(rows)` holds. Polled from here: the page's
    CSP forbids eval, which Playwright's in-page waiting would need."""
    deadline = time.monotonic() + timeout
    while True:
        rows = page.evaluate(SCREEN) + [""] * 3
        if ready(rows):
            return rows
        assert time.monotonic() < deadline, f"the terminal never got there: {rows}"
        time.sleep(0.1)


def test_landing_page_leads_into_the_playground(browser, base_url):
    page = browser.new_page()
    page.goto(base_url + "/")
    assert page.title() == "capOS Playground"
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
    screen_when(page, lambda rows: any(r.startswith("anonymous@capos>") for r in rows), 120)
    selfcheck = page.evaluate("capos.selfcheck")
    assert "on emscripten" in selfcheck and "refused bad opcode: ok" in selfcheck
    residents = page.evaluate("capos.processes.size")
    assert residents >= 8  # init, the services and the shell: one worker each

    page.click("#terminal")
    page.keyboard.type("caps\n")
    rows = screen_when(page, lambda rows: any(r.startswith("timer ") for r in rows), 30)
    assert any(r.split()[:2] == ["launcher", "ProcessSpawner"] for r in rows)

    page.keyboard.type('run "counter" with { stdio: client @stdio, counter: client @counter }\n')
    screen_when(page, lambda rows: any("[counter] inc [n], get, exit" in r for r in rows), 60)
    assert page.evaluate("capos.processes.size") == residents + 1  # the child's own worker
    page.keyboard.type("inc 4\n")
    screen_when(page, lambda rows: "[counter] 4" in rows, 30)
    page.keyboard.type("exit\n")
    screen_when(page, lambda rows: page.evaluate("capos.processes.size") == residents, 30)
    assert errors == []
    page.close()
