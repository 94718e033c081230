"""The owner's credential (a session's id) never stays in an address, in real Chromium.

A server with a small QEMU pool; each test opens an owner link the way a person
who was pasted one would: in a fresh browser context that did not create the
session. Run on the server from this tab (no warning, reload and history) is
tests/test_qemu.py's browser test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.poolserver import PoolServer, pool_server
from bench.tab import CHROMIUM, CHROMIUM_FLAGS, has_prompt, history_urls, wait_global, wait_screen

pytestmark = [pytest.mark.qemu, pytest.mark.browser, pytest.mark.timeout(300)]

NOTICE = (
    "This is the owner's link of a live session: whoever opens it controls the session. "
    "Ask the owner for a view link instead."
)


@pytest.fixture(scope="module")
def server() -> Iterator[PoolServer]:
    with pool_server("--accel", "tcg", "--warm", "1", "--max-vms", "2") as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def session(server: PoolServer) -> Iterator[str]:
    made = server.new_session()["id"]
    yield made
    server.http.delete(f"/api/sessions/{made}")


def open_fresh(browser, address: str):
    """`address` in a new context: a browser that never made the session."""
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(address)
    return page, errors


def test_a_pasted_owner_link_warns_then_offers_a_view_link(server, browser, session):
    page, errors = open_fresh(browser, f"{server.base}/play#session={session}")
    notice = page.locator("#owner-notice")
    notice.wait_for()
    assert notice.get_attribute("role") == "alertdialog"
    assert page.locator("#owner-notice-text").text_content() == NOTICE
    assert page.url == f"{server.base}/play"  # gone from the address before anything else
    assert page.evaluate("window.capos") is None  # not attached: it has not taken control
    page.reload()  # the warning holds until the person answers it
    notice.wait_for()
    page.click("#owner-continue")
    assert notice.count() == 0
    wait_screen(page, has_prompt, 60)
    assert page.evaluate("capos.session") == session
    page.click("#view-offer-create")
    link = page.locator("#view-offer-url").input_value()
    assert link.startswith(f"{server.base}/s/") and session not in link
    page.reload()  # continued once: the owner's page now, without the warning
    wait_screen(page, has_prompt, 60)
    assert page.locator("#owner-notice").count() == 0 and page.url == f"{server.base}/play"
    assert not any(session in url for url in history_urls(page))
    viewer, viewer_errors = open_fresh(browser, link)
    assert wait_global(viewer, "window.capos && window.capos.mode", 30) == "view"
    wait_screen(viewer, has_prompt, 60)
    assert errors == [] and viewer_errors == []


def test_an_old_query_link_still_opens_and_loses_the_id(server, browser, session):
    address = f"{server.base}/play?session={session}&tour=first-steps&step=1"
    page, errors = open_fresh(browser, address)
    page.locator("#owner-notice").wait_for()
    assert page.url == f"{server.base}/play?tour=first-steps&step=1"
    page.click("#owner-continue")
    wait_screen(page, has_prompt, 60)
    assert page.evaluate("capos.session") == session
    wait_global(page, "window.capos.tour ? true : null", 30)  # the tour rewrites the address
    page.reload()  # ... keeping the credential in the history entry's state
    wait_screen(page, has_prompt, 60)
    assert page.evaluate("capos.session") == session
    assert not any(session in url for url in history_urls(page))
    assert errors == []
