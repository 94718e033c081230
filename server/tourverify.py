"""`capos-playground tours verify [NAME...]`: every tour, end to end, in headless Chromium.

For each step the runner does what a visitor would: presses the panel's
"type it for me" button and waits for the panel to say the step passed,
which it only does when the step's checks hold in the live system. The first
step that does not pass is named with what the panel was still waiting for.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from bench.tab import CHROMIUM, CHROMIUM_FLAGS, has_prompt, serving, wait_screen
from server.tours import Tour, load_tours

STEP_TIMEOUT_S = 30.0
BOOT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class StepFailed(Exception):
    tour: str
    step: int
    title: str
    waiting: str

    def __str__(self) -> str:
        return f"tour {self.tour}, step {self.step} ({self.title}): {self.waiting}"


def _panel(page) -> dict:
    return page.evaluate(
        """() => { const root = document.getElementById("tour");
          return { state: root.dataset.state || "", title: root.querySelector("h3")?.textContent,
                   expect: document.getElementById("tour-expect")?.textContent || "" }; }"""
    )


def verify_tour(browser, base_url: str, tour: Tour) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(f"{base_url}/play?tour={tour.name}&step=1")
        wait_screen(page, has_prompt, BOOT_TIMEOUT_S)
        for number, step in enumerate(tour.steps, start=1):
            deadline = time.monotonic() + STEP_TIMEOUT_S
            while _panel(page)["title"] != step["title"]:
                if time.monotonic() > deadline:
                    raise StepFailed(tour.name, number, step["title"], "the panel never showed it")
                time.sleep(0.05)
            if "command" in step:
                page.click("#tour-type")
            while (panel := _panel(page))["state"] != "passed":
                if time.monotonic() > deadline:
                    raise StepFailed(tour.name, number, step["title"], panel["expect"])
                time.sleep(0.1)
            if number < len(tour.steps):
                page.click("#tour-next")
    finally:
        page.close()


def verify(names: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    tours = load_tours()
    known = {tour.name: tour for tour in tours}
    unknown = [name for name in names if name not in known]
    if unknown:
        print(f"tours verify: no tour {unknown}; tours: {', '.join(known)}", file=sys.stderr)
        return 2
    chosen = [known[name] for name in names] if names else tours
    with serving() as base_url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            for tour in chosen:
                print(f"tours verify: {tour.name} ...", file=sys.stderr, flush=True)
                try:
                    verify_tour(browser, base_url, tour)
                except (StepFailed, TimeoutError) as exc:
                    print(f"tours verify: FAILED: {exc}", file=sys.stderr)
                    return 1
                print(f"tours verify: {tour.name}: {len(tour.steps)} steps passed", flush=True)
        finally:
            browser.close()
    return 0
