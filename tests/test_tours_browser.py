"""Tours in Chromium: every tour passes end to end; the panel keeps its place."""

from __future__ import annotations

import time

import pytest

from bench.tab import has_prompt, wait_screen
from server.tours import load_tours
from server.tourverify import StepFailed, verify_tour

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("tour", load_tours(), ids=lambda tour: tour.name)
def test_every_tour_passes_in_the_tab(browser, base_url, tour):
    verify_tour(browser, base_url, tour)


def panel_title(page) -> str:
    return page.evaluate("() => document.querySelector('#tour h3')?.textContent || ''")


def wait_title(page, title: str) -> None:
    deadline = time.monotonic() + 30
    while panel_title(page) != title:
        assert time.monotonic() < deadline, f"the panel shows {panel_title(page)!r}"
        time.sleep(0.05)


def test_a_link_opens_a_step_and_a_reload_keeps_the_place(browser, base_url):
    steps = next(t for t in load_tours() if t.name == "first-steps").steps
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(f"{base_url}/play?tour=first-steps&step=5")
    wait_screen(page, has_prompt, 120)
    wait_title(page, steps[4]["title"])
    assert "Waiting for the terminal shows" in page.text_content("#tour-expect")
    assert page.text_content("#tour .tour-extension") == (  # timer.now() is the playground's
        "Playground extension: typed calls (not in the capOS book; "
        "man differences lists every departure)."
    )
    page.click("#tour-back")
    wait_title(page, steps[3]["title"])
    page.goto(f"{base_url}/play?tour=first-steps")  # no step: local storage remembers
    wait_title(page, steps[3]["title"])
    page.goto(f"{base_url}/play?tour=nosuch")
    deadline = time.monotonic() + 30
    while "No tour named nosuch" not in (page.text_content("#tour") or ""):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    page.close()


def test_a_step_that_does_not_pass_is_named_with_what_it_waited_for(browser, base_url, monkeypatch):
    tour = next(t for t in load_tours() if t.name == "first-steps")
    untyped = {key: value for key, value in tour.steps[0].items() if key != "command"}
    monkeypatch.setattr("server.tourverify.STEP_TIMEOUT_S", 3.0)
    lazy = type(tour)(tour.name, tour.title, tour.summary, tour.order, (untyped,))
    with pytest.raises(StepFailed) as failed:
        verify_tour(browser, base_url, lazy)  # nobody types `caps`: the check cannot hold
    assert str(failed.value) == (
        f"tour first-steps, step 1 ({untyped['title']}): "
        'Waiting for the terminal shows "session     UserSession  bundle (anonymous)".'
    )
