"""Share links, viewers and recordings against the real server, on a relayed tab session.

A tab session is the cheapest real live session: the test plays the owner's
tab over the relay socket (what web/static/share-relay.js does), so none of
this needs a VM. The QEMU and browser paths are in test_share_browser.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from bench.liveserver import ONE_ADDRESS_RIG
from bench.tab import serving
from server.agents import Agents, Caller
from server.metrics import Metrics
from server.sessions.directory import SessionDirectory
from server.settings import RecordingLimits, Settings, ShareLimits
from server.shares import ShareRegistry
from server.sharing import Sharing
from tests.asciicast import read_v2, read_v3
from tests.monitortimeline import read_timeline, story

# The tests hold connections open across steps rather than in `with` blocks.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def base(data_dir) -> Iterator[str]:
    settings = Settings(
        data_dir=data_dir,
        share_limits=ShareLimits(links_per_session=4),
        recording_limits=RecordingLimits(max_bytes=64 * 1024, max_timeline_bytes=12 * 1024),
        admission=ONE_ADDRESS_RIG,
    )
    with serving(settings) as url:
        yield url


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


class Tab:
    """The owner's tab, played by the test: it relays output and receives drive input."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.info = httpx.post(base + "/api/tabs").json()
        self.id = self.info["id"]
        self.relay = connect(ws_url(base, self.info["relay"]))
        assert json.loads(self.relay.recv(5))["type"] == "resume"
        self.offset = 0

    def write(self, text: str) -> None:
        frame = {"type": "output", "offset": self.offset, "data": text}
        self.relay.send(json.dumps(frame))
        self.offset += len(text.encode())

    def next_frame(self, timeout: float = 5) -> dict:
        """The server's next frame to the tab, past its asks for monitor snapshots
        (every recording asks: the monitor timeline's test covers them)."""
        while (frame := json.loads(self.relay.recv(timeout)))["type"] == "monitor":
            pass
        return frame

    def share(self, mode: str, **extra) -> dict:
        response = httpx.post(
            f"{self.base}/api/sessions/{self.id}/shares", json={"mode": mode, **extra}
        )
        assert response.status_code == 201, response.text
        return response.json()


def watch(base: str, share: dict) -> ClientConnection:
    viewer = connect(ws_url(base, share["url"].split(base, 1)[1] + "/terminal"))
    with contextlib.suppress(ConnectionClosed):  # a refused link closes at once
        viewer.send(json.dumps({"type": "resume", "offset": 0}))
    return viewer


def read_until(conn: ClientConnection, text: str, timeout: float = 5) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        frame = json.loads(conn.recv(max(0.01, deadline - time.monotonic())))
        if frame["type"] == "output":
            seen += frame["data"]
        elif frame["type"] in ("exit", "error"):
            raise AssertionError(f"{frame} before {text!r} (saw {seen!r})")
    return seen


def closing_frames(conn: ClientConnection, timeout: float = 5) -> list[dict]:
    """The frames up to the close, and then the close code as {"code": ...}."""
    frames = []
    try:
        while True:
            frames.append(json.loads(conn.recv(timeout)))
    except ConnectionClosed as closed:
        frames.append({"code": closed.rcvd.code if closed.rcvd else None})
    return frames


def test_creating_a_link_answers_201_with_an_unguessable_token(base):
    tab = Tab(base)
    share = tab.share("view", expires_in=60)
    assert set(share) == {"id", "url", "mode", "expires_at"} and share["mode"] == "view"
    token = share["url"].rsplit("/s/", 1)[1]
    assert len(token) == 43  # 32 bytes from secrets, url-safe: 256 bits
    assert abs(share["expires_at"] - (time.time() + 60)) < 5
    page = httpx.get(share["url"])
    assert page.status_code == 200 and "/static/share.js" in page.text


def test_owner_and_viewer_see_the_same_output_and_a_late_viewer_gets_the_screen_first(base):
    tab = Tab(base)
    share = tab.share("view")
    early = watch(base, share)
    tab.write("hello from the tab\r\n")
    assert "hello from the tab" in read_until(early, "hello from the tab")
    late = watch(base, share)
    tab.write("and more\r\n")
    assert read_until(late, "and more").startswith("hello from the tab")


def output_frame(conn: ClientConnection, timeout: float = 5) -> dict:
    while (frame := json.loads(conn.recv(timeout)))["type"] != "output":
        pass
    return frame


def test_output_frames_say_when_the_server_appended_them_only_when_asked(base, tmp_path):
    tab = Tab(base)
    viewer = watch(base, tab.share("view"))
    tab.write("no clock here\r\n")
    assert "appended_at" not in output_frame(viewer)  # off: it would tell the host's uptime
    settings = Settings(data_dir=tmp_path, output_times=True, admission=ONE_ADDRESS_RIG)
    with serving(settings) as stamped:
        tab = Tab(stamped)
        viewer = watch(stamped, tab.share("view"))
        before = time.monotonic()
        forged = {"type": "output", "offset": 0, "data": "hi\r\n", "appended_at": 1.0}
        tab.relay.send(json.dumps(forged))  # the tab cannot say when: the server does
        frame = output_frame(viewer)
        assert frame["data"] == "hi\r\n" and before <= frame["appended_at"] <= time.monotonic()


def test_a_view_link_cannot_type_but_a_drive_link_can(base):
    tab = Tab(base)
    viewer, driver = watch(base, tab.share("view")), watch(base, tab.share("drive"))
    viewer.send(json.dumps({"type": "input", "data": "rm -rf /\r"}))
    error = json.loads(viewer.recv(5))
    assert error["type"] == "error" and "view link" in error["message"]
    driver.send(json.dumps({"type": "input", "data": "ls\r"}))
    assert json.loads(tab.relay.recv(5)) == {"type": "input", "data": "ls\r"}
    with pytest.raises(TimeoutError):  # the view link's keystrokes never reached the tab
        tab.relay.recv(0.3)


def test_revoking_a_link_cuts_its_viewers_off_at_once_and_the_page_answers_410(base):
    tab = Tab(base)
    share = tab.share("view")
    viewer = watch(base, share)
    tab.write("before\r\n")
    read_until(viewer, "before")
    listing = httpx.get(f"{base}/api/sessions/{tab.id}/shares").json()["shares"]
    assert [len(s["viewers"]) for s in listing if s["id"] == share["id"]] == [1]
    started = time.monotonic()
    assert httpx.delete(f"{base}/api/sessions/{tab.id}/shares/{share['id']}").status_code == 204
    frames = closing_frames(viewer)
    assert time.monotonic() - started < 2
    assert frames[-2] == {"type": "exit", "reason": "the session's owner revoked this share link"}
    assert frames[-1] == {"code": 4410}
    page = httpx.get(share["url"])
    assert page.status_code == 410 and "revoked" in page.text and "Traceback" not in page.text
    refused = closing_frames(watch(base, share))
    assert "revoked" in refused[0]["message"] and refused[-1] == {"code": 4410}


def test_an_expired_link_answers_410_and_its_viewer_is_cut_off(base):
    tab = Tab(base)
    share = tab.share("view", expires_in=1)
    viewer = watch(base, share)
    frames = closing_frames(viewer, timeout=5)
    assert frames[-2] == {"type": "exit", "reason": "this share link has expired"}
    page = httpx.get(share["url"])
    assert page.status_code == 410 and "expired" in page.text


def test_the_owner_sees_who_is_attached_and_can_end_one(base):
    tab = Tab(base)
    share = tab.share("drive")
    stays, goes = watch(base, share), watch(base, share)
    tab.write("x")
    read_until(stays, "x")
    read_until(goes, "x")
    [listed] = httpx.get(f"{base}/api/sessions/{tab.id}/shares").json()["shares"]
    viewers = listed["viewers"]
    assert len(viewers) == 2 and {v["ip"] for v in viewers} == {"127.0.0.1"}
    assert all(v["mode"] == "drive" and v["since"] <= time.time() for v in viewers)
    ended = viewers[0]["id"]
    assert httpx.delete(f"{base}/api/sessions/{tab.id}/viewers/{ended}").status_code == 204
    [listed] = httpx.get(f"{base}/api/sessions/{tab.id}/shares").json()["shares"]
    assert [v["id"] for v in listed["viewers"]] == [viewers[1]["id"]]
    tab.write("y")
    outcomes = []
    for conn in (stays, goes):
        try:
            outcomes.append(read_until(conn, "y", timeout=2))
        except ConnectionClosed as closed:
            outcomes.append(closed.rcvd.code)
        except AssertionError as exc:  # the exit frame came first
            assert "the session's owner ended your connection" in str(exc)
            outcomes.append(closing_frames(conn)[-1]["code"])
    assert sorted(outcomes, key=str) == [4410, "y"]
    assert httpx.delete(f"{base}/api/sessions/{tab.id}/viewers/nobody").status_code == 404


def test_when_the_owner_closes_the_tab_viewers_see_the_session_end_with_the_reason(base):
    tab = Tab(base)
    viewer = watch(base, tab.share("view"))
    tab.write("bye soon\r\n")
    read_until(viewer, "bye soon")
    tab.relay.close(code=1001)  # what a browser sends when the tab closes
    frames = closing_frames(viewer)
    assert {"type": "exit", "reason": "the owner closed the tab"} in frames
    assert httpx.get(f"{base}/api/tabs/{tab.id}").json()["state"] == "ended"


def test_a_relay_that_reconnects_resumes_where_the_server_left_off(base):
    tab = Tab(base)
    viewer = watch(base, tab.share("view"))
    tab.write("one ")
    read_until(viewer, "one")
    tab.relay.close(code=4000)  # a dropped connection, not a closed tab
    again = connect(ws_url(base, tab.info["relay"]))
    assert json.loads(again.recv(5)) == {"type": "resume", "offset": 4}
    # the tab resends from an older offset: what the server has is skipped
    again.send(json.dumps({"type": "output", "offset": 0, "data": "one two"}))
    assert read_until(viewer, "two") == "two"
    assert httpx.get(f"{base}/api/tabs/{tab.id}").json()["state"] == "running"


def test_bad_requests_get_clear_errors(base):
    tab = Tab(base)
    url = f"{base}/api/sessions/{tab.id}/shares"
    for body, needle in [
        ({"mode": "admin"}, '"mode" must be'),
        ({"mode": "view", "expires_in": -1}, '"expires_in" must be'),
        ({"mode": "view", "expires_in": True}, '"expires_in" must be'),
        ({"mode": "view", "extra": 1}, "unknown fields"),
    ]:
        response = httpx.post(url, json=body)
        assert response.status_code == 400 and needle in response.json()["error"], body
    typed = {"content-type": "application/json"}
    assert httpx.post(url, content=b"{nope", headers=typed).status_code == 400
    assert httpx.post(url, content=b"x" * 10000, headers=typed).status_code == 413
    assert httpx.post(url, content=b'{"mode": "view"}').status_code == 415  # untyped: not JSON
    missing = httpx.post(f"{base}/api/sessions/nope/shares", json={"mode": "view"})
    assert missing.status_code == 404


def test_guessed_and_malformed_tokens_get_a_plain_404(base):
    tab = Tab(base)
    real = tab.share("view")["url"].rsplit("/s/", 1)[1]
    guesses = [
        real[:-1] + ("A" if real[-1] != "A" else "B"),
        "A" * 43,
        "short",
        "%00" * 20,
        "../../etc/passwd",
        "x" * 5000,
        "' OR 1=1 --",
    ]
    for guess in guesses:
        page = httpx.get(f"{base}/s/{guess}")
        assert page.status_code == 404, guess
        assert "Traceback" not in page.text
    with connect(ws_url(base, f"/s/{'A' * 43}/terminal")) as conn:
        frames = closing_frames(conn)
        assert frames[0] == {"type": "error", "message": "no such share link"}
        assert frames[-1] == {"code": 4404}


def test_limits_on_links_and_viewers_say_what_was_hit(base, tmp_path):
    tab = Tab(base)
    for _ in range(4):
        tab.share("view")
    fifth = httpx.post(f"{base}/api/sessions/{tab.id}/shares", json={"mode": "view"})
    assert fifth.status_code == 429 and "live share links" in fifth.json()["error"]
    settings = Settings(data_dir=tmp_path, share_limits=ShareLimits(viewers_per_ip=2))
    with serving(settings) as small:
        share = Tab(small).share("view")
        kept = [watch(small, share), watch(small, share)]
        frames = closing_frames(watch(small, share))
        assert "already has 2 viewers open" in frames[0]["message"]
        assert frames[-1] == {"code": 4429}
        kept[0].close()
        time.sleep(0.2)
        again = watch(small, share)  # one left: there is room again
        with pytest.raises(TimeoutError):
            again.recv(0.3)
        for conn in (kept[1], again):
            conn.close()


def test_a_cross_origin_page_cannot_open_a_viewer_socket(base):
    tab = Tab(base)
    share = tab.share("view")
    path = share["url"].split(base, 1)[1] + "/terminal"
    with pytest.raises(Exception, match="403"):
        connect(ws_url(base, path), origin="http://evil.example")
    with connect(ws_url(base, path), origin=base) as conn:  # the page's own origin is fine
        conn.send(json.dumps({"type": "resume", "offset": 0}))


def test_oversized_and_malformed_frames_are_refused_and_the_viewer_stays(base):
    tab = Tab(base)
    viewer = watch(base, tab.share("drive"))
    viewer.send("x" * 70_000)
    assert "at most" in json.loads(viewer.recv(5))["message"]
    viewer.send(b"\x00\x01")
    assert "binary" in json.loads(viewer.recv(5))["message"]
    viewer.send("{]")
    assert "JSON" in json.loads(viewer.recv(5))["message"]
    tab.write("still here\r\n")
    read_until(viewer, "still here")
    huge = watch(base, tab.share("view"))
    huge.send("y" * (2 << 20))  # past the server's frame limit: that connection alone closes
    assert closing_frames(huge)[-1]["code"] == 1009
    tab.write("and the others too\r\n")
    read_until(viewer, "and the others too")


def test_a_viewer_that_never_reads_slows_neither_the_owner_nor_other_viewers(base):
    tab = Tab(base)
    share = tab.share("view")
    token_path = share["url"].split(base, 1)[1] + "/terminal"
    stuck = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(
        (
            f"GET {token_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )  # and never reads another byte
    reader = watch(base, share)
    line = "0123456789" * 100 + "\r\n"
    started = time.monotonic()
    for n in range(4000):  # 4 MB, far past what the stuck socket's buffers hold
        tab.write(line if n < 3999 else "the end\r\n")
    read_until(reader, "the end", timeout=30)
    assert time.monotonic() - started < 30
    stuck.close()


def test_a_recording_is_an_asciicast_v3_with_output_resizes_and_markers(base):
    tab = Tab(base)
    started = httpx.post(f"{base}/api/sessions/{tab.id}/recordings", json={"cols": 100, "rows": 30})
    assert started.status_code == 201, started.text
    recording = started.json()
    assert len(recording["url"].rsplit("/r/", 1)[1]) == 43 and recording["recording"] is True
    tab.write("first\r\n")
    tab.relay.send(json.dumps({"type": "size", "cols": 120, "rows": 40}))
    marker = httpx.post(f"{base}/api/sessions/{tab.id}/markers", json={"label": "Step 2"})
    assert marker.json() == {"marked": 1}
    driver = watch(base, tab.share("drive"))
    driver.send(json.dumps({"type": "input", "data": "secret\r"}))
    tab.write("second\r\n")
    read_until(driver, "second")
    stop = httpx.post(f"{base}/api/sessions/{tab.id}/recordings/{recording['id']}/stop")
    assert stop.status_code == 200
    cast = httpx.get(base + recording["cast"])
    assert cast.status_code == 200
    assert cast.headers["content-type"] == "application/x-asciicast"
    header, events = read_v3(cast.text)
    assert header["term"] == {"cols": 100, "rows": 30, "type": "xterm-256color"}
    kinds = [(kind, data) for _, kind, data in events]
    assert ("r", "120x40") in kinds and ("m", "Step 2") in kinds
    output = "".join(data for kind, data in kinds if kind == "o")
    assert output == "first\r\nsecond\r\n"
    assert not any(kind in "ix" for kind, _ in kinds)  # input only when the owner opts in
    download = httpx.get(base + recording["cast"] + "?download")
    assert "attachment" in download.headers["content-disposition"]
    assert download.text == cast.text
    # asciicast v2 for older tools: each time the running sum of the intervals
    v2 = httpx.get(base + recording["cast"] + "?download&format=v2")
    assert v2.status_code == 200 and "-v2.cast" in v2.headers["content-disposition"]
    v2_header, v2_events = read_v2(v2.text)
    assert (v2_header["width"], v2_header["height"]) == (100, 30)
    assert v2_header["env"] == {"TERM": "xterm-256color"}
    assert v2_events == events
    assert httpx.get(base + recording["cast"] + "?format=v3").text == cast.text
    assert httpx.get(base + recording["url"]).status_code == 200


def test_a_recording_keeps_input_only_when_the_owner_opts_in(base):
    tab = Tab(base)
    plain = httpx.post(f"{base}/api/sessions/{tab.id}/recordings", json={}).json()
    recording = httpx.post(f"{base}/api/sessions/{tab.id}/recordings", json={"input": True}).json()
    assert recording["input"] is True and plain["input"] is False
    # the owner's tab is asked for the owner's keystrokes, which it types itself
    assert tab.next_frame() == {"type": "keys", "record": True}
    tab.relay.send(json.dumps({"type": "keys", "data": "ls\r\ud800"}))  # a lone surrogate
    for bad in (5, "k" * 20_000):
        tab.relay.send(json.dumps({"type": "keys", "data": bad}))
        error = tab.next_frame()
        assert error["type"] == "error" and 'keys needs "data"' in error["message"]
    driver = watch(base, tab.share("drive"))
    driver.send(json.dumps({"type": "input", "data": "typed\r"}))
    assert tab.next_frame()["type"] == "input"
    for started in (recording, plain):
        httpx.post(f"{base}/api/sessions/{tab.id}/recordings/{started['id']}/stop")
    assert tab.next_frame() == {"type": "keys", "record": False}
    _, events = read_v3(httpx.get(base + recording["cast"]).text)
    assert [e[1:] for e in events if e[1] == "i"] == [("i", "ls\r?"), ("i", "typed\r")]
    _, v2_events = read_v2(httpx.get(base + recording["cast"] + "?format=v2").text)
    assert v2_events == events  # v2 has input events too
    _, plain_events = read_v3(httpx.get(base + plain["cast"]).text)
    assert not any(kind == "i" for _, kind, _ in plain_events)


def test_a_recording_ends_with_the_sessions_exit_status_which_v2_leaves_out(base):
    tab = Tab(base)
    recording = httpx.post(f"{base}/api/sessions/{tab.id}/recordings", json={}).json()
    tab.write("bye\r\n")
    deadline = time.monotonic() + 10
    while "bye" not in httpx.get(base + recording["cast"]).text and time.monotonic() < deadline:
        time.sleep(0.05)  # recorded before the session ends
    assert httpx.delete(f"{base}/api/tabs/{tab.id}").status_code == 204

    def listed() -> dict:
        url = f"{base}/api/sessions/{tab.id}/recordings"
        return httpx.get(url).json()["recordings"][0]

    while (info := listed())["recording"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert info["reason"] == "the session ended: ended by its owner"
    _, events = read_v3(httpx.get(base + recording["cast"]).text)
    # ended from outside: a hangup's status (128 + SIGHUP), as a shell would say
    assert [e[1:] for e in events] == [("o", "bye\r\n"), ("x", "129")]
    _, v2_events = read_v2(httpx.get(base + recording["cast"] + "?format=v2").text)
    assert v2_events == events[:-1]


def test_a_tabs_monitor_timeline_is_recorded_beside_its_cast_on_the_same_clock(base, data_dir):
    tab = Tab(base)
    assert httpx.get(f"{base}/r/{'x' * 43}.monitor").status_code == 404
    recording = httpx.post(f"{base}/api/sessions/{tab.id}/recordings", json={}).json()
    assert json.loads(tab.relay.recv(5)) == {"type": "monitor", "record": True}
    for bad, why in (
        ({"type": "monitor"}, "expected a MonitorSnapshot (an object)"),
        ({"type": "monitor", "snapshot": {"processes": [{"pid": "one"}]}}, "pid: expected"),
        ({"type": "monitor", "snapshot": {"bogus": 1}}, "bogus: MonitorSnapshot has no such"),
        ({"type": "monitor", "snapshot": {"x": "y" * 600_000}}, "at most 524288 characters"),
    ):
        tab.relay.send(json.dumps(bad))
        error = json.loads(tab.relay.recv(5))
        assert error["type"] == "error" and why in error["message"], error
    shots = story()
    monitor = base + recording["monitor"]
    deadline = time.monotonic() + 30

    def send(snapshot: dict) -> None:
        tab.relay.send(json.dumps({"type": "monitor", "snapshot": snapshot}))

    def lines_become(count: int) -> None:
        while httpx.get(monitor).text.count("\n") < count:
            assert time.monotonic() < deadline
            time.sleep(0.05)

    send(shots[0])  # the watcher
    lines_become(2)
    httpx.post(f"{base}/api/sessions/{tab.id}/markers", json={"label": "the client starts"})
    send(shots[1])  # and a client
    lines_become(3)
    for count, shot in enumerate(shots[3:], start=4):  # past 12 KiB: the timeline stops
        send(shot)
        lines_become(count)
        if '"n"' in httpx.get(monitor).text:
            break
    tab.write("still recorded\r\n")  # the cast goes on
    while "still recorded" not in httpx.get(base + recording["cast"]).text:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    httpx.post(f"{base}/api/sessions/{tab.id}/recordings/{recording['id']}/stop")
    assert json.loads(tab.relay.recv(5)) == {"type": "monitor", "record": False}

    answer = httpx.get(monitor)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/jsonl"
    _, lines = read_timeline(answer.text)
    _, events = read_v3(httpx.get(base + recording["cast"]).text)
    [marked] = [at for at, kind, data in events if data == "the client starts"]
    assert lines[0][0] < marked < lines[1][0]  # one clock: the snapshots sent around it
    assert "client" not in json.dumps(lines[0][2]) and "client" in json.dumps(lines[1][2])
    assert lines[-1][1:] == ("n", "stopped: the monitor timeline reached its limit of 12 KiB")
    stopped = [data for _, kind, data in events if data.startswith("monitor timeline stopped")]
    assert stopped == [
        "monitor timeline stopped: the monitor timeline reached its limit of 12 KiB; "
        "the terminal is still recorded"
    ]
    info = httpx.get(f"{base}/api/sessions/{tab.id}/recordings").json()["recordings"][0]
    assert info["size"] == len(answer.content) + len(httpx.get(base + recording["cast"]).content)
    refused = httpx.get(monitor + "?format=v2")
    assert refused.status_code == 400 and "takes no options" in refused.text
    (data_dir / "recordings" / f"{recording['id']}.monitor").unlink()  # as recorded before
    missing = httpx.get(monitor)
    assert missing.status_code == 404 and "had no system monitor" in missing.text
    assert (
        httpx.delete(f"{base}/api/sessions/{tab.id}/recordings/{recording['id']}").status_code
        == 204
    )
    assert httpx.get(monitor).status_code == 404


def test_a_malformed_format_is_a_clear_400(base):
    tab = Tab(base)
    recording = httpx.post(f"{base}/api/sessions/{tab.id}/recordings", json={}).json()
    for query in ("format=v1", "format=V2", "format=", "format=v2&format=v3", "format=v2%00"):
        answer = httpx.get(f"{base}{recording['cast']}?{query}")
        assert answer.status_code == 400, query
        assert "must be v2" in answer.text and "v3" in answer.text


def test_a_recording_stops_at_its_size_limit_with_a_clear_reason(base):
    tab = Tab(base)
    recording = httpx.post(f"{base}/api/sessions/{tab.id}/recordings", json={}).json()
    for _ in range(100):
        tab.write("z" * 1000 + "\r\n")
    deadline = time.monotonic() + 10
    while True:
        [info] = httpx.get(f"{base}/api/sessions/{tab.id}/recordings").json()["recordings"]
        if not info["recording"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert "size limit of 0.0625 MiB" in info["reason"] and info["size"] <= 64 * 1024
    read_v3(httpx.get(base + recording["cast"]).text)


def test_recordings_can_be_deleted_and_bad_ids_are_404(base):
    tab = Tab(base)
    recording = httpx.post(f"{base}/api/sessions/{tab.id}/recordings", json={}).json()
    url = f"{base}/api/sessions/{tab.id}/recordings/{recording['id']}"
    assert httpx.delete(url).status_code == 204
    assert httpx.get(base + recording["url"]).status_code == 404
    assert httpx.get(base + recording["cast"]).status_code == 404
    for bad in ("nope", "A" * 43, "../capos.sqlite3", "A" * 43 + ".cast"):
        assert httpx.get(f"{base}/r/{bad}").status_code == 404
    assert (
        httpx.post(f"{base}/api/sessions/{tab.id}/recordings", json={"input": "yes"}).status_code
        == 400
    )
    no_rec = httpx.post(f"{base}/api/sessions/{tab.id}/markers", json={"label": "x"})
    assert no_rec.status_code == 409


def test_an_agents_new_session_gets_a_view_link_to_watch_or_the_reason_it_has_none():
    """create_session's `watch` (server/agents.py): a view link, never the owner's id; when
    the hub refuses one (here: its per-creator limit), the session comes with the reason."""
    metrics = Metrics()
    directory = SessionDirectory(metrics)
    shares = ShareRegistry(ShareLimits(links_per_ip=1))
    hub = Sharing(store=None, shares=shares, recordings=None, directory=directory)
    agents = Agents(None, directory, hub, metrics)
    caller = Caller("mcp:one", owns_sessions=True, client="127.0.0.1")
    session = SimpleNamespace(id="secret-id")
    first = asyncio.run(agents._watch_link(caller, session))
    second = asyncio.run(agents._watch_link(caller, session))
    [share] = shares.of_session("secret-id")
    token = first["watch"].removeprefix("/s/")
    assert shares.find(token) is share and share.mode == "view" and "secret-id" not in token
    assert "watch" not in second and "live share links" in second["watch_error"]
