"""Agent links to tab sessions, against the real server, with the test playing the tab.

An agent holding an agent link calls the REST API (the same operations as MCP);
each request reaches the owner's tab as an `agent` frame on its relay, and the
tab's `agent-reply` answers it (server/sessions/tab.py). Here the test is the
tab, so it can also be a hostile one. The real tab, its kernel and the MCP
client are in test_tab_agent_browser.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from bench.liveserver import ONE_ADDRESS_RIG
from bench.tab import serving
from server.sessions.tabagent import MAX_JSON, MAX_PENDING
from server.settings import AgentLimits, Settings
from server.terminal import MAX_FRAME
from tests.test_share import Tab

pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")

CAPS = [{"name": "echo", "interface": "Echo", "origin": "bundle"}]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Iterator[str]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        admission=ONE_ADDRESS_RIG,
        agent_limits=AgentLimits(call_timeout_s=2.0),
    )
    with serving(settings) as url:
        yield url


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(MAX_PENDING + 2) as executor:
        yield executor


def agent_link(tab: Tab) -> str:
    """The token of a new agent link to `tab`."""
    return tab.share("agent")["url"].rsplit("/s/", 1)[1]


def caps(pool: ThreadPoolExecutor, base: str, session: str) -> Future[httpx.Response]:
    """An agent's GET .../caps, under way while the test plays the tab."""
    return pool.submit(httpx.get, f"{base}/api/sessions/{session}/caps", timeout=10)


def next_frame(tab: Tab, kind: str) -> dict:
    """The next frame of `kind` the server sends the tab (skipping the others)."""
    while True:
        frame = json.loads(tab.relay.recv(5))
        if frame["type"] == kind:
            return frame


def reply(tab: Tab, request_id: object, response: object) -> None:
    tab.relay.send(json.dumps({"type": "agent-reply", "id": request_id, "response": response}))


def test_an_agent_links_call_crosses_the_relay_and_the_tab_sees_what_was_called(base, pool):
    tab = Tab(base)
    token = agent_link(tab)
    asked = caps(pool, base, token)
    request = next_frame(tab, "agent")
    assert request["request"] == {"listCaps": None}
    reply(tab, request["id"], {"caps": CAPS})
    answer = asked.result()
    assert answer.status_code == 200 and answer.json() == {"caps": CAPS}
    shown = next_frame(tab, "agent-call")
    assert (shown["tool"], shown["outcome"]) == ("list_caps", "ok")

    called = pool.submit(
        httpx.post,
        f"{base}/api/sessions/{token}/calls",
        json={"cap": "echo", "method": "echo", "arguments": {"data": "hi"}},
        timeout=10,
    )
    request = next_frame(tab, "agent")
    assert request["request"]["call"]["cap"] == "echo"
    reply(tab, request["id"], {"error": {"kind": "input", "type": "", "message": "no echo"}})
    answer = called.result()
    assert answer.status_code == 400 and answer.json()["error"] == "no echo"
    shown = next_frame(tab, "agent-call")
    assert shown["target"] == "echo.echo" and shown["outcome"] == "input"

    written = httpx.post(f"{base}/api/sessions/{token}/terminal/input", json={"data": "caps\r"})
    assert written.status_code == 200
    assert next_frame(tab, "input")["data"] == "caps\r"  # typed as a drive link types
    tab.write("echo  Echo\r\n")
    read = httpx.get(f"{base}/api/sessions/{token}/terminal/output", params={"wait_ms": 2000})
    assert "echo  Echo" in read.json()["data"]


def test_hostile_agent_replies_get_clear_errors_and_fail_only_their_call(base, pool):
    tab = Tab(base)
    token = agent_link(tab)
    for bad, why in (
        ({"type": "agent-reply", "response": {"caps": []}}, '"id"'),
        ({"type": "agent-reply", "id": "1", "response": {"caps": []}}, '"id"'),
        ({"type": "agent-reply", "id": 12345, "response": {"caps": []}}, "no agent request"),
        ({"type": "agent-reply", "id": 1, "response": "x" * MAX_FRAME}, "at most"),
    ):
        tab.relay.send(json.dumps(bad))
        assert why in next_frame(tab, "error")["message"]

    for response, why in (
        ({"json": "x" * (MAX_JSON + 1)}, "json"),
        ({"caps": [{"name": "echo"}]}, "held cap"),
        ({"error": {"kind": "pwned", "type": "", "message": "m"}}, "kind"),
        ({"caps": CAPS, "json": "{}"}, "one of"),
        (None, "one of"),
    ):
        asked = caps(pool, base, token)
        request = next_frame(tab, "agent")
        reply(tab, request["id"], response)
        assert why in next_frame(tab, "error")["message"]
        answer = asked.result()  # at once, not at the call's timeout
        assert answer.status_code == 502 and answer.json()["kind"] == "transport"
        assert "malformed answer" in answer.json()["error"]
        reply(tab, request["id"], {"caps": CAPS})  # a second answer: that call is over
        assert "no agent request" in next_frame(tab, "error")["message"]

    asked = caps(pool, base, token)  # the relay serves on
    request = next_frame(tab, "agent")
    reply(tab, request["id"], {"caps": CAPS})
    assert asked.result().json() == {"caps": CAPS}


def test_revoking_cuts_off_a_call_in_flight_and_every_later_one(base, pool):
    tab = Tab(base)
    share = tab.share("agent")
    token = share["url"].rsplit("/s/", 1)[1]
    asked = caps(pool, base, token)
    request = next_frame(tab, "agent")
    reading = pool.submit(  # waits for output that never comes, unless cut off
        httpx.get, f"{base}/api/sessions/{token}/terminal/output?wait_ms=10000", timeout=20
    )
    time.sleep(0.5)  # the read is waiting by now (refused either way, but this way in flight)
    revoked = httpx.delete(f"{base}/api/sessions/{tab.id}/shares/{share['id']}")
    assert revoked.status_code == 204
    for call in (asked, reading):  # cut off now, not when the tab answers or time runs out
        answer = call.result()
        assert answer.status_code == 410 and "revoked" in answer.json()["error"]
    shown = {(f["tool"], f["outcome"]) for f in (next_frame(tab, "agent-call") for _ in "12")}
    assert shown == {("list_caps", "gone"), ("terminal_read", "gone")}
    reply(tab, request["id"], {"caps": CAPS})  # the tab's late answer matches nothing
    assert "no agent request" in next_frame(tab, "error")["message"]
    again = caps(pool, base, token).result()
    assert again.status_code == 410 and "revoked" in again.json()["error"]
    shown = next_frame(tab, "agent-call")  # the page sees the refusal too
    assert (shown["tool"], shown["outcome"]) == ("list_caps", "gone")


def test_a_tab_that_is_silent_gone_or_swamped_is_a_clear_error(base, pool):
    tab = Tab(base)
    token = agent_link(tab)
    silent = caps(pool, base, token).result()  # the tab never answers
    next_frame(tab, "agent")
    assert silent.status_code == 504 and "did not answer within 2 s" in silent.json()["error"]

    waiting = [caps(pool, base, token) for _ in range(MAX_PENDING)]
    requests = [next_frame(tab, "agent") for _ in waiting]
    swamped = caps(pool, base, token).result()
    assert swamped.status_code == 503 and "already waiting" in swamped.json()["error"]
    for request in requests:
        reply(tab, request["id"], {"caps": CAPS})
    assert [asked.result().status_code for asked in waiting] == [200] * MAX_PENDING

    asked = caps(pool, base, token)
    next_frame(tab, "agent")
    tab.relay.close(code=4000)  # the connection drops (not a closed tab: it may come back)
    dropped = asked.result()
    assert dropped.status_code == 503 and "disconnected" in dropped.json()["error"]
    offline = caps(pool, base, token).result()
    assert offline.status_code == 503 and "not connected" in offline.json()["error"]

    assert httpx.delete(f"{base}/api/tabs/{tab.id}").status_code == 204
    ended = caps(pool, base, token).result()
    assert ended.status_code == 410 and "ended by its owner" in ended.json()["error"]


def test_only_an_agent_link_is_an_agents_credential(base):
    tab = Tab(base)
    view = tab.share("view")["url"].rsplit("/s/", 1)[1]
    answer = httpx.get(f"{base}/api/sessions/{view}/caps")
    assert answer.status_code == 403 and "view link" in answer.json()["error"]
    made_up = httpx.get(f"{base}/api/sessions/{'A' * 43}/caps")
    assert made_up.status_code == 404 and "no such agent link" in made_up.json()["error"]
