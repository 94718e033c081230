"""Sharing in real browsers: the owner's tab and its viewers in separate browser contexts.

One tab session serves every step (the owner's tab boots once): the owner
shares it from the page, a view link and a drive link open in other
contexts, the owner records, and the recording replays at /r/{id}: as the
asciicast v3 it is recorded in, and as the v2 that casts recorded before were,
with the system's monitor views beside it, as the system was at the player's time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.liveserver import ONE_ADDRESS_RIG
from bench.tab import become_guest, has_prompt, screen, serving, wait_screen
from server.settings import Settings
from tests.asciicast import read_v2, read_v3
from tests.monitortimeline import read_timeline

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def base_url(data_dir) -> Iterator[str]:
    settings = Settings(data_dir=data_dir, admission=ONE_ADDRESS_RIG)
    with serving(settings) as url:
        yield url


@pytest.fixture(scope="module")
def owner(browser, base_url):
    """The owner's tab, booted to the prompt, with its share panel open."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(base_url + "/play")
    wait_screen(page, has_prompt, 120)
    become_guest(page)  # the demo bundle: its timer is what the owner calls
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
    assert viewer.locator("#predict-mode").count() == 0  # no predictive echo: it types nothing
    viewer.click("#terminal")
    viewer.keyboard.type("caps\n")  # neither sent by the page nor accepted by the server
    time.sleep(1)
    assert not any(r.startswith("timer ") for r in screen(owner))
    viewer.context.close()


def test_a_drive_link_types_into_the_owners_tab(browser, owner):
    driver = viewer_page(browser, new_link(owner, "drive"))
    wait_screen(driver, has_prompt, 20)
    before = count(screen(owner), "ns = ")
    assert driver.locator("#predict-mode").input_value() == "auto"  # predictive echo's toggle
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


def replay(browser, url: str):
    """The replay page at `url`, its player ready, and the errors the page raised."""
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_function("() => document.body.dataset.state === 'ready'", timeout=20_000)
    page.wait_for_selector(".ap-player", timeout=10_000)
    return page, errors


def test_a_recording_plays_back_at_its_replay_link_with_chapters_and_keystrokes(
    browser, owner, base_url, data_dir
):
    owner.check("#share-record-input")  # the owner opts in to recording keystrokes
    assert "passwords" in owner.text_content("label:has(#share-record-input)")
    owner.click("#share-record")
    owner.wait_for_selector("#share-recordings a.replay:text('recording…')")
    assert "with keystrokes" in owner.text_content("#share-recordings li:last-child")
    owner_types(owner, "timer.now()\n")
    owner.click("#share-mark")
    # what web/static/tour.js announces at each tour step: a chapter too
    owner.evaluate(
        "document.dispatchEvent(new CustomEvent('capos:tour-step', {detail: 'Tour: step 2'}))"
    )
    owner_types(owner, "caps\n")  # the tab sends the owner's keystrokes: they are recorded
    wait_screen(owner, lambda rows: any(r.startswith("timer ") for r in rows), 30)
    time.sleep(0.5)
    owner.click("#share-stop")
    owner.wait_for_selector("#share-recordings a.replay:text('replay')")
    replay_url = owner.locator("#share-recordings a.replay").last.get_attribute("href")
    recording_id = owner.locator("#share-recordings li").last.get_attribute("data-recording-id")
    cast = httpx.get(f"{base_url}{replay_url}.cast").text
    header, events = read_v3(cast)
    assert header["term"]["cols"] > 0
    assert any(kind == "o" and "ns = " in data for _, kind, data in events)
    assert "timer.now()\rcaps\r" in "".join(data for _, kind, data in events if kind == "i")
    markers = [(at, data) for at, kind, data in events if kind == "m"]
    assert len(markers) == 2 and "Tour: step 2" in [label for _, label in markers]

    page, errors = replay(browser, base_url + replay_url)
    assert page.evaluate("[capos.version, capos.keystrokes]") == [3, True]
    assert page.locator("#chapters button").count() == 2
    chapters = page.evaluate("capos.chapters.map((c) => [Math.round(c.time * 1e6), c.label])")
    assert [tuple(c) for c in chapters] == markers  # the intervals summed, as the reader does
    page.locator("#chapters button").first.click()
    page.wait_for_function("() => capos.player.getCurrentTime() > 0", timeout=10_000)
    page.wait_for_selector(".ap-keystroke-pill", timeout=15_000)  # "caps", after the marker
    page.select_option("#speed", "2")
    page.wait_for_function("() => capos.speed === 2")
    assert errors == []
    page.context.close()

    # A cast recorded before v3, stored as v2: the page plays it just the same.
    v2 = httpx.get(f"{base_url}{replay_url}.cast?format=v2").text
    assert read_v2(v2)[1] == [e for e in events if e[1] != "x"]
    (data_dir / "recordings" / f"{recording_id}.cast").write_text(v2)
    page, errors = replay(browser, base_url + replay_url)
    assert page.evaluate("capos.version") == 2
    chapters = page.evaluate("capos.chapters.map((c) => [Math.round(c.time * 1e6), c.label])")
    assert [tuple(c) for c in chapters] == markers
    page.locator("#chapters button").last.click()
    page.wait_for_function("() => capos.player.getCurrentTime() > 0", timeout=10_000)
    assert errors == []
    page.context.close()


def test_a_replay_shows_the_system_as_it_was_at_the_players_time(browser, owner, base_url):
    """A tour step's chapter, and the process the step started: from the chapter the
    graph shows it once it starts, with the caps it held; before it, it is not there."""
    owner.click("#share-record")
    running = owner.locator("#share-recordings a.replay:text('recording…')")
    replay_url = running.get_attribute("href")
    monitor = f"{base_url}{replay_url}.monitor"
    deadline = time.monotonic() + 60

    def recorded(wanted: str) -> None:
        while wanted not in httpx.get(monitor).text:
            assert time.monotonic() < deadline, f"{wanted!r} never reached the timeline"
            time.sleep(0.2)

    recorded('"k",')  # the tab's first snapshot
    owner.evaluate(
        "document.dispatchEvent(new CustomEvent('capos:tour-step', {detail: 'Tour: count'}))"
    )
    owner_types(owner, 'run "counter" with { stdio: client @stdio, counter: client @counter }\n')
    wait_screen(owner, lambda rows: any("[counter] inc [n], get, exit" in r for r in rows), 60)
    recorded('"binary":"counter"')
    owner_types(owner, "exit\n")
    owner.click("#share-stop")
    owner.wait_for_selector(f"#share-recordings a.replay[href='{replay_url}']:text('replay')")
    _, lines = read_timeline(httpx.get(monitor).text)
    [pid] = {
        p["pid"]
        for _, code, data in lines
        if code in "kd"
        for p in data.get("processes", [])
        if p.get("binary") == "counter"  # whole when it started
    }
    node = f"#mon-graph [data-node='pid:{pid}']"

    page, errors = replay(browser, base_url + replay_url)
    [chapter] = page.evaluate("capos.chapters")
    assert chapter["label"] == "Tour: count"
    page.evaluate("capos.player.seek({ marker: 0 })")
    page.wait_for_function(
        f"() => Math.abs(capos.monitor.playerTime - {chapter['at']}) < 0.01", timeout=10_000
    )
    assert page.locator("#mon-graph [data-node^='pid:']").count() > 0  # the system so far
    assert page.locator(node).count() == 0  # the step has only begun
    page.evaluate("capos.player.play()")
    page.wait_for_selector(node, timeout=30_000)  # the counter the step started
    page.evaluate("capos.player.pause()")
    assert "counter" in page.text_content(node)
    assert page.locator(f"#mon-graph [data-edge^='{pid}->']").count() == 2  # stdio, counter
    page.click("#monitor [data-tab=processes]")
    assert "counter" in page.text_content(f"#mon-processes tr[data-pid='{pid}']")
    page.click("#monitor [data-tab=calls]")  # the calls the tab's kernel traced by then
    assert page.locator("#mon-calls tbody tr").count() > 0
    page.click("#monitor [data-tab=graph]")
    page.evaluate("capos.player.seek(0)")
    page.wait_for_selector(node, state="detached", timeout=10_000)
    assert errors == []
    page.context.close()
