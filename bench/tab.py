"""Driving the playground tab with Playwright: the browser tests and benchmark share it.

The page's CSP forbids eval, which Playwright's in-page waiting needs, so
everything here polls from Python with page.evaluate.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bench.liveserver import live_server
from server.settings import Settings

CHROMIUM = "/usr/bin/chromium"
FIREFOX = "/usr/bin/firefox-esr"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROMPT = "anonymous@capos>"  # a fresh shell's
SHELL_PROMPT = re.compile(r"[a-z0-9_-]+@capos>")
# The processes a tab's default system keeps: init, six services and the shell.
RESIDENTS = 8
SCREEN = """() => window.capos ? [...Array(capos.term.buffer.active.length).keys()]
    .map(i => capos.term.buffer.active.getLine(i).translateToString().trim()) : []"""


@contextmanager
def serving(settings: Settings | None = None) -> Iterator[str]:
    """The real server on a free loopback port, for as long as the block runs."""
    with live_server(settings, start_timeout=20) as server:
        yield server.base


def screen(page) -> list[str]:
    return page.evaluate(SCREEN)


def wait_screen(page, ready: Callable[[list[str]], bool], timeout: float) -> list[str]:
    """The terminal's rows once `ready(rows)` holds; fails with the rows it saw."""
    deadline = time.monotonic() + timeout
    while True:
        rows = screen(page) + [""] * 3
        if ready(rows):
            return rows
        if time.monotonic() > deadline:
            raise TimeoutError(f"the terminal never got there; it showed: {rows}")
        time.sleep(0.02)


def has_prompt(rows: list[str]) -> bool:
    """The shell's prompt, whichever profile it is in (an agent may have made it a guest)."""
    return any(SHELL_PROMPT.match(row) for row in rows)


def become_guest(page) -> None:
    """Type `guest`, as the MOTD and the first tour teach: the shell starts anonymous, and
    the guest bundle holds the launcher, the demo services and the monitor."""
    page.click("#terminal")
    page.keyboard.type("guest\n")
    wait_screen(page, lambda rows: any(row.startswith("guest@capos>") for row in rows), 30)


def residents(page) -> int:
    """RESIDENTS, and the model service where the server runs a model (known once the
    prompt shows)."""
    return RESIDENTS + (page.evaluate("capos.model") is not None)


def wait_global(page, expression: str, timeout: float):
    """A page global once it is set (polled: no eval in the page)."""
    deadline = time.monotonic() + timeout
    while (value := page.evaluate(f"() => {expression}")) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expression} was never set")
        time.sleep(0.02)
    return value


def history_urls(page) -> list[str]:
    """The address of every entry in the tab's history (back and forward), as Chromium keeps
    them: the page itself can only read its own (the DevTools protocol reads them all)."""
    devtools = page.context.new_cdp_session(page)
    try:
        return [entry["url"] for entry in devtools.send("Page.getNavigationHistory")["entries"]]
    finally:
        devtools.detach()
