"""`capos-playground tours verify [NAME...]`: every tour, end to end, in headless Chromium.

For each step the runner does what a visitor would: presses the panel's
"type it for me" button and waits for the panel to say the step passed,
which it only does when the step's checks hold in the live system. The first
step that does not pass is named with what the panel was still waiting for.
Both backends: the kernel in the tab, and a native session in a QEMU VM from
the server's pool (a fresh one for each tour), whose checks read the guest
kernel's monitor over the control channel.
"""

from __future__ import annotations

import sys
import time

from bench.tab import CHROMIUM, CHROMIUM_FLAGS, has_prompt, screen, serving, wait_screen
from server.tours import Tour, load_tours

STEP_TIMEOUT_S = 60.0  # a native session's VM shares two cores with the browser
SETTLE_S = 0.3  # the terminal this long unchanged before typing, as a reader would wait
BOOT_TIMEOUT_S = 120.0
BACKENDS = ("tab", "qemu")
POOL_OPTIONS = ("--accel", "tcg", "--warm", "1", "--max-vms", "2")


class StepFailed(Exception):
    """A step whose checks did not hold in time: which, and what the panel still waited for."""

    def __init__(self, tour: str, step: int, title: str, waiting: str) -> None:
        super().__init__(f"tour {tour}, step {step} ({title}): {waiting}")
        self.tour, self.step, self.title, self.waiting = tour, step, title, waiting


def _panel(page) -> dict:
    return page.evaluate(
        """() => { const root = document.getElementById("tour");
          return { state: root.dataset.state || "", title: root.querySelector("h3")?.textContent,
                   expect: document.getElementById("tour-expect")?.textContent || "" }; }"""
    )


def verify_tour(browser, base_url: str, tour: Tour, session: str | None = None) -> None:
    """Drive `tour` in the tab, or in the server-hosted `session` when one is given."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    owner = f"#session={session}" if session else ""
    try:
        page.goto(f"{base_url}/play?tour={tour.name}&step=1{owner}")
        if session:  # the server made it, not this browser: the page asks first
            page.click("#owner-continue")
        wait_screen(page, has_prompt, BOOT_TIMEOUT_S)
        for number, step in enumerate(tour.steps, start=1):
            deadline = time.monotonic() + STEP_TIMEOUT_S
            while _panel(page)["title"] != step["title"]:
                if time.monotonic() > deadline:
                    raise StepFailed(tour.name, number, step["title"], "the panel never showed it")
                time.sleep(0.05)
            if "command" in step:
                _settle(page)
                page.click("#tour-type")
            while (panel := _panel(page))["state"] != "passed":
                if time.monotonic() > deadline:
                    raise StepFailed(tour.name, number, step["title"], panel["expect"])
                time.sleep(0.1)
            if number < len(tour.steps):
                page.click("#tour-next")
    finally:
        page.close()


def verify(names: list[str], backends: tuple[str, ...] = BACKENDS) -> int:
    from playwright.sync_api import sync_playwright

    from bench.poolserver import pool_server

    tours = load_tours()
    known = {tour.name: tour for tour in tours}
    unknown = [name for name in names if name not in known]
    if unknown:
        print(f"tours verify: no tour {unknown}; tours: {', '.join(known)}", file=sys.stderr)
        return 2
    chosen = [known[name] for name in names] if names else tours
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for backend in backends:
                if backend == "tab":
                    with serving() as base_url:
                        failed = _run(chosen, backend, lambda t: verify_tour(browser, base_url, t))
                else:
                    with pool_server(*POOL_OPTIONS) as server:
                        failed = _run(chosen, backend, lambda t: verify_native(browser, server, t))
                if failed:
                    return 1
        finally:
            browser.close()
    return 0


def _settle(page, longest: float = 5.0) -> None:
    """Wait until the terminal has stopped changing (the last step's output is all in)."""
    deadline = time.monotonic() + longest
    rows, still_since = screen(page), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = screen(page)
        if now != rows:
            rows, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= SETTLE_S:
            return


def verify_native(browser, server, tour: Tour) -> None:
    """One tour on a fresh session from the pool, ended afterwards to free its VM."""
    session = server.new_session()["id"]
    try:
        verify_tour(browser, server.base, tour, session)
    finally:
        server.http.delete(f"/api/sessions/{session}")


def _run(tours: list[Tour], backend: str, drive) -> bool:
    """Each tour through `drive`; True when one failed (it is named on stderr)."""
    for tour in tours:
        print(f"tours verify: {tour.name} ({backend}) ...", file=sys.stderr, flush=True)
        try:
            drive(tour)
        except (StepFailed, TimeoutError) as exc:
            print(f"tours verify: FAILED ({backend}): {exc}", file=sys.stderr)
            return True
        print(f"tours verify: {tour.name} ({backend}): {len(tour.steps)} steps passed", flush=True)
    return False
