"""Sharing and recording a native (QEMU) session: the real server with a one-VM pool."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from bench.poolserver import PROMPT, PoolServer, TerminalClient, pool_server
from tests.asciicast import read_v3
from tests.monitortimeline import read_timeline

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[PoolServer]:
    data = tmp_path_factory.mktemp("data")
    with pool_server(
        "--accel", "tcg", "--warm", "1", "--max-vms", "1", "--data-dir", str(data)
    ) as s:
        yield s


def link(server: PoolServer, session: dict, mode: str) -> str:
    response = server.http.post(f"/api/sessions/{session['id']}/shares", json={"mode": mode})
    assert response.status_code == 201, response.text
    token = response.json()["url"].rsplit("/s/", 1)[1]
    return f"ws://127.0.0.1:{server.port}/s/{token}/terminal"


def read_text(conn, until: str, timeout: float = 60) -> str:
    text = ""
    while until not in text:
        frame = json.loads(conn.recv(timeout))
        assert frame["type"] in ("output", "reset"), frame
        text += frame.get("data", "")
    return text


def test_a_native_session_is_shared_recorded_and_driven_through_links(server):
    session = server.new_session()
    owner = TerminalClient(server, session)
    owner.read_prompt()
    owner.command("guest")  # the demo bundle: the timer the driver calls
    recording = server.http.post(f"/api/sessions/{session['id']}/recordings", json={}).json()
    owner.send(type="resize", cols=100, rows=30)
    with (
        connect(link(server, session, "view")) as viewer,
        connect(link(server, session, "drive")) as driver,
    ):
        for conn in (viewer, driver):
            conn.send(json.dumps({"type": "resume", "offset": 0}))
            assert read_text(conn, PROMPT).endswith(PROMPT)  # the screen so far, first
        viewer.send(json.dumps({"type": "input", "data": "caps\r"}))
        assert "view link" in json.loads(viewer.recv(10))["message"]
        marked = server.http.post(
            f"/api/sessions/{session['id']}/markers", json={"label": "the driver types"}
        )
        assert marked.json() == {"marked": 1}
        driver.send(json.dumps({"type": "input", "data": "timer.now()\r"}))
        assert "ns = " in read_text(viewer, "ns = ")
        owner.read_until(lambda: "ns = " in owner.text, "the driver's command")
        # the view link's `caps` was dropped: nothing was typed at the prompt before
        assert owner.text.split("timer.now()")[0].endswith("guest@capos> ")
    stop = f"/api/sessions/{session['id']}/recordings/{recording['id']}/stop"
    assert server.http.post(stop).status_code == 200
    _, events = read_v3(server.http.get(recording["cast"]).text)
    assert ("r", "100x30") in [e[1:] for e in events]
    assert ("m", "the driver types") in [e[1:] for e in events]
    assert "ns = " in "".join(data for _, kind, data in events if kind == "o")
    # beside the cast, the guest's monitor timeline, polled like a monitor socket's
    timeline = server.http.get(recording["cast"].removesuffix(".cast") + ".monitor")
    _, states = read_timeline(timeline.text)
    assert "shell" in [p["binary"] for p in states[0][2]["processes"]]  # a first keyframe
    # A recording with keystrokes, running when the shell exits: the guest powers off,
    # and the recording ends with QEMU's exit status, 0.
    path = f"/api/sessions/{session['id']}/recordings"
    last = server.http.post(path, json={"input": True}).json()
    owner.send(type="input", data="exit\r")
    assert owner.read_exit() == "the system powered off (the shell exited)"
    owner.close()

    def running() -> bool:
        listed = server.http.get(path).json()["recordings"]
        return next(r for r in listed if r["id"] == last["id"])["recording"]

    deadline = time.monotonic() + 10
    while running():
        assert time.monotonic() < deadline, "the recording never stopped"
        time.sleep(0.05)
    _, events = read_v3(server.http.get(last["cast"]).text)
    assert ("i", "exit\r") in [e[1:] for e in events] and events[-1][1:] == ("x", "0")


def test_the_native_session_page_makes_a_link_that_shows_the_session(server):
    from playwright.sync_api import sync_playwright

    from bench.tab import CHROMIUM, CHROMIUM_FLAGS, wait_screen

    session = server.new_session()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        owner = browser.new_page()
        owner.goto(f"{server.base}/play#session={session['id']}")
        owner.click("#owner-continue")  # the API made the session, not this browser
        owner.click("#share-toggle")
        owner.click("#share-view")
        url = owner.locator("#share-links li[data-mode=view] a.link").get_attribute("href")
        viewer = browser.new_context().new_page()
        viewer.goto(url)
        wait_screen(viewer, lambda rows: any(r.endswith(PROMPT.strip()) for r in rows), 30)
        assert viewer.evaluate("capos.mode") == "view"
        browser.close()
    server.http.delete(f"/api/sessions/{session['id']}")
