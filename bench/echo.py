"""`capos-playground bench echo`: what typing into a server-hosted session looks like.

The real server with a QEMU pool (a subprocess) and its owner's page in headless
Chromium, one session, keystrokes one at a time (the next once the last is painted),
in blocks that alternate predictive echo's mode on the page's toggle (web/static/
predict.js), so both modes see the same machine load:

  perceived_echo_ms     prediction on: a key's keydown dispatched to its glyph in the
                        terminal's render (xterm's DOM renderer: its rows, or the prediction
                        drawn over them; the DOM holds it, so that frame paints it), median.
                        Target: one frame, 16 ms.
  unpredicted_echo_ms   the same with prediction off: the glyph comes from the guest's echo
  page_echo_p50_ms      prediction off: a key sent over the websocket to its echo in the
                        terminal's buffer (the round trip auto mode judges by), median;
                        `bench pool`'s echo_p50_ms is the same trip from a websocket
                        client with no page
  wrong_glyphs_left     after a scripted session with prediction on (a password prompt,
                        `passphrase`, a program that turns echo off, `top` on the
                        alternate screen, a clear, a line the shell scrolls
                        sideways instead of echoing the key): cells painted differently from
                        what the guest sent once it went quiet, plus password glyphs ever
                        drawn. Target: 0.

Each block of keys starts on a fresh line (Ctrl-U), whose first key is unpredicted
(a new epoch waits for the guest's echo): it counts in the medians too.
"""

from __future__ import annotations

import statistics
import sys
import time

from bench.echopage import (
    buffer_rows,
    forget_shown,
    open_owner_page,
    painted,
    quiet,
    set_mode,
    settle,
    shown,
)
from bench.figures import report
from bench.poolserver import pool_server
from bench.tab import CHROMIUM, CHROMIUM_FLAGS, wait_screen

TARGETS = {"perceived_echo_ms": ("<=", 16), "wrong_glyphs_left": ("<=", 0)}
LABELS = {
    "perceived_echo_ms": "prediction on: keydown to its glyph in the rendered terminal",
    "unpredicted_echo_ms": "prediction off: the same, the glyph from the guest's echo",
    "page_echo_p50_ms": "prediction off: key sent to its echo in the terminal's buffer",
    "wrong_glyphs_left": "scripted session, prediction on: cells wrong or missing, password glyphs",
}
BLOCK = 25  # keys a block
PASSWORD = "hunter2x"
KEYS = "abcdefghij"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def type_block(page, count: int) -> list[float]:
    """`count` keys, each once the previous one is painted: keydown to painted (ms)."""
    page.keyboard.press("Control+U")
    settle(page)
    quiet(page, 0.1)
    page.evaluate("() => { caposWatch.keys = []; }")
    for i in range(count):
        page.keyboard.press(KEYS[i % len(KEYS)])
        deadline = time.monotonic() + 30
        while page.evaluate("() => caposWatch.keys.at(-1).painted") is None:
            if time.monotonic() > deadline:
                key = page.evaluate("() => caposWatch.keys.at(-1)")
                raise TimeoutError(f"a key was never painted: {key}; screen: {painted(page)}")
            time.sleep(0.002)
    return page.evaluate("() => caposWatch.keys.map((key) => key.painted - key.at)")


def wrong_cells(page) -> int:
    settle(page)
    quiet(page)
    return sum(
        a != b
        for drawn, sent in zip(painted(page), buffer_rows(page), strict=True)
        for a, b in zip(drawn.ljust(len(sent)), sent.ljust(len(drawn)), strict=True)
    )


def scripted_session(page) -> int:
    """Wrong glyphs left on screen over a scripted session, prediction on (see above)."""
    page.keyboard.press("Control+U")
    wrong = wrong_cells(page)
    page.keyboard.type("login\r", delay=15)
    wait_screen(page, lambda rows: any(r.startswith("username>") for r in rows), 30)
    page.keyboard.type("alice\r", delay=15)
    wait_screen(page, lambda rows: any(r.startswith("password>") for r in rows), 30)
    forget_shown(page)
    page.keyboard.type(PASSWORD + "\r", delay=15)
    wait_screen(page, lambda rows: any("login incorrect" in r for r in rows), 30)
    wrong += wrong_cells(page) + sum(map(len, shown(page)))
    page.keyboard.type('run "passphrase" with { stdio: client @stdio }\r', delay=15)
    wait_screen(page, lambda rows: any(r.startswith("passphrase>") for r in rows), 30)
    forget_shown(page)
    page.keyboard.type(f"{PASSWORD}\r{PASSWORD}\r", delay=15)
    wait_screen(page, lambda rows: any("they match" in r for r in rows), 30)
    wrong += wrong_cells(page) + sum(map(len, shown(page)))
    page.keyboard.type("top\r", delay=15)
    wait_screen(page, lambda rows: any(r.startswith("top - up") for r in rows), 30)
    page.keyboard.type("q")
    wait_screen(page, lambda rows: not any(r.startswith("top - up") for r in rows), 30)
    wrong += wrong_cells(page)
    page.keyboard.type("timer", delay=15)
    page.keyboard.press("Control+L")
    page.keyboard.type(".now", delay=15)
    wrong += wrong_cells(page)
    page.keyboard.press("Control+U")
    cols = page.evaluate("() => capos.term.cols")
    page.keyboard.type("counter.increment(by=1) " * (cols // 24 + 1), delay=15)
    wrong += wrong_cells(page)
    page.keyboard.press("Control+U")
    return wrong


def run_benchmark(json_path: str | None, quick: bool = False, accel: str = "tcg") -> int:
    from playwright.sync_api import sync_playwright

    blocks = 2 if quick else 4
    samples: dict[str, list[float]] = {"on": [], "off": []}
    with (
        pool_server("--accel", accel, "--warm", "1", "--max-vms", "2") as server,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = open_owner_page(browser, server)
            version = browser.version
            server.wait_for(lambda: server.pool()["booting"] == 0, "the pool to settle")
            _say(f"typing {blocks} blocks of {BLOCK} keys in each mode, alternating ...")
            round_trips: list[float] = []
            for _ in range(blocks):
                for mode in ("off", "on"):
                    set_mode(page, mode)
                    before = page.evaluate("() => capos.prediction.samples.length")
                    samples[mode] += type_block(page, BLOCK)
                    if mode == "off":
                        round_trips += page.evaluate(
                            f"() => capos.prediction.samples.slice({before})"
                        )
            _say("a scripted session with prediction on ...")
            set_mode(page, "on")
            wrong = scripted_session(page)
        finally:
            browser.close()
    figures = {
        "perceived_echo_ms": statistics.median(samples["on"]),
        "unpredicted_echo_ms": statistics.median(samples["off"]),
        "page_echo_p50_ms": statistics.median(round_trips),
        "wrong_glyphs_left": wrong,
    }
    return report(
        figures,
        TARGETS,
        json_path,
        LABELS,
        browser=f"Chromium {version}, headless",
        accel=accel,
        quick=quick,
        keys_per_mode=len(samples["on"]),
        samples_ms={"on": samples["on"], "off": samples["off"], "round_trips": round_trips},
    )
