"""Sharing in real browsers: the owner's tab and its viewers in separate browser contexts.

One tab session serves every step (the owner's tab boots once): the owner
shares it from the page, a view link and a drive link open in other
contexts, the owner records, and the recording replays at /r/{id}.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from bench.liveserver import ONE_ADDRESS_RIG
from bench.tab import has_prompt, screen, serving, wait_screen
from server.settings import Settings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def base_url(tmp_path_factory) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), admission=ONE_ADDRESS_RIG)
    with serving(settings) as url:
        yield url


@pytest.fixture(scope="module")
def owner(browser, base_url):
    """The owner's tab, booted to the prompt, with its share panel open."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(base_url + "/play")
    wait_screen(page, has_prompt, 120)
    page.click("#share-toggle")
    page.wait_for_function("() => window.caposShare && window.caposShare.id")
    yield page
    context.close()


def new_link(owner, mode: str) -> str:
    before = owner.locator(f"#share-links li[data-mode={mode}]").count()
    owner.click(f"#share-{mode}")
    owner.wait_for_function(
        f"() => document.querySelectorAll('#share-links li[data-mode={mode}]').length > {before}"
    )
    return owner.locator(f"#share-links li[data-mode={mode}] a.link").last.get_attribute("href")


def viewer_page(browser, url: str):
    page = browser.new_context().new_page()
    page.goto(url)
    page.wait_for_function("() => document.body.dataset.state === 'live'")
    return page


def owner_types(owner, text: str) -> None:
    owner.click("#terminal")
    owner.keyboard.type(text)


def count(rows: list[str], prefix: str) -> int:
    return sum(row.startswith(prefix) for row in rows)


def test_owner_and_viewer_see_the_same_output_and_a_view_link_cannot_type(browser, owner):
    viewer = viewer_page(browser, new_link(owner, "view"))
    wait_screen(viewer, has_prompt, 20)  # the current screen first
    owner_types(owner, "timer.now()\n")
    wait_screen(owner, lambda rows: count(rows, "ns = ") == 1, 30)
    rows = wait_screen(viewer, lambda rows: count(rows, "ns = ") == 1, 10)
    shown = [r for r in screen(owner) if r.startswith("ns = ")]
    assert shown == [r for r in rows if r.startswith("ns = ")]
    assert viewer.evaluate("capos.mode") == "view"
    viewer.click("#terminal")
    viewer.keyboard.type("caps\n")  # neither sent by the page nor accepted by the server
    time.sleep(1)
    assert not any(r.startswith("timer ") for r in screen(owner))
    viewer.context.close()


def test_a_drive_link_types_into_the_owners_tab(browser, owner):
    driver = viewer_page(browser, new_link(owner, "drive"))
    wait_screen(driver, has_prompt, 20)
    before = count(screen(owner), "ns = ")
    driver.click("#terminal")
    driver.keyboard.type("timer.now()\n")
    wait_screen(owner, lambda rows: count(rows, "ns = ") == before + 1, 30)
    wait_screen(driver, lambda rows: count(rows, "ns = ") == before + 1, 10)
    driver.context.close()


def test_revoking_from_the_page_disconnects_the_viewer_and_its_link_answers_410(browser, owner):
    url = new_link(owner, "view")
    viewer = viewer_page(browser, url)
    owner.wait_for_function(
        "() => [...document.querySelectorAll('#share-links li[data-mode=view]')].pop()"
        ".textContent.includes('1 watching')",
        timeout=10_000,
    )
    owner.locator("#share-links li[data-mode=view] button.revoke").last.click()
    viewer.wait_for_function("() => document.body.dataset.state === 'ended'", timeout=5_000)
    assert "revoked" in viewer.text_content("#status")
    again = viewer.goto(url)
    assert again.status == 410 and "revoked" in viewer.text_content("#reason")
    viewer.context.close()


def test_an_expired_link_answers_410(browser, owner, base_url):
    session_id = owner.evaluate("window.caposShare.id")
    share = httpx.post(
        f"{base_url}/api/sessions/{session_id}/shares", json={"mode": "view", "expires_in": 1}
    ).json()
    time.sleep(1.2)
    page = browser.new_context().new_page()
    response = page.goto(share["url"])
    assert response.status == 410 and "expired" in page.text_content("#reason")
    page.context.close()


def test_a_recording_plays_back_at_its_replay_link_with_chapters(browser, owner, base_url):
    owner.click("#share-record")
    owner.wait_for_selector("#share-recordings a.replay:text('recording…')")
    owner_types(owner, "timer.now()\n")
    owner.click("#share-mark")
    # what web/static/tour.js announces at each tour step: a chapter too
    owner.evaluate(
        "document.dispatchEvent(new CustomEvent('capos:tour-step', {detail: 'Tour: step 2'}))"
    )
    owner_types(owner, "caps\n")
    wait_screen(owner, lambda rows: any(r.startswith("timer ") for r in rows), 30)
    time.sleep(0.5)
    owner.click("#share-stop")
    owner.wait_for_selector("#share-recordings a.replay:text('replay')")
    replay_url = owner.locator("#share-recordings a.replay").last.get_attribute("href")
    cast = httpx.get(f"{base_url}{replay_url}.cast").text
    lines = cast.splitlines()
    header, events = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert header["version"] == 2 and header["width"] > 0
    assert any(kind == "o" and "ns = " in data for _, kind, data in events)
    markers = [data for _, kind, data in events if kind == "m"]
    assert len(markers) == 2 and "Tour: step 2" in markers
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base_url + replay_url)
    page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=20_000)
    assert page.locator("#chapters button").count() == 2
    page.wait_for_selector(".ap-player", timeout=10_000)
    page.locator("#chapters button").first.click()
    page.wait_for_function("() => capos.player.getCurrentTime() > 0", timeout=10_000)
    page.select_option("#speed", "2")
    page.wait_for_function("() => capos.speed === 2")
    assert errors == []
    page.context.close()
