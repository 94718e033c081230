"""Two server processes' worth of replicas through a real redis-server: a viewer on one
replica watches, drives and is cut off from a session hosted by the other."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from bench.redisserver import redis_server
from bench.tab import serving
from server.settings import Settings
from tests.test_share import Tab, closing_frames, read_until, ws_url

pytestmark = [
    pytest.mark.redis,
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory) -> Iterator[tuple[str, str]]:
    with redis_server() as url:
        one = Settings(data_dir=tmp_path_factory.mktemp("one"), redis_url=url)
        two = Settings(data_dir=tmp_path_factory.mktemp("two"), redis_url=url)
        with serving(one) as a, serving(two) as b:
            yield a, b


def watch_on(base: str, share: dict, offset: int = 0):
    path = share["url"].split("/s/", 1)[1]
    conn = connect(ws_url(base, f"/s/{path}/terminal"))
    conn.send(json.dumps({"type": "resume", "offset": offset}))
    return conn


def test_a_viewer_on_one_replica_watches_and_drives_a_session_hosted_by_the_other(replicas):
    a, b = replicas
    tab = Tab(a)  # hosted by replica A
    tab.write("hosted on A\r\n")
    view, drive = tab.share("view"), tab.share("drive")
    page = httpx.get(b + "/s/" + view["url"].split("/s/", 1)[1])
    assert page.status_code == 200  # replica B opens a link replica A made
    viewer = watch_on(b, view)
    first = json.loads(viewer.recv(10))
    assert first == {"type": "output", "offset": 0, "data": "hosted on A\r\n"}  # same offsets
    tab.write("live\r\n")
    assert read_until(viewer, "live") == "live\r\n"
    late = watch_on(b, view, offset=len("hosted on A\r\n"))  # resume means the same there
    assert read_until(late, "live") == "live\r\n"
    driver = watch_on(b, drive)
    read_until(driver, "live")
    driver.send(json.dumps({"type": "input", "data": "from B\r"}))
    assert json.loads(tab.relay.recv(10)) == {"type": "input", "data": "from B\r"}
    viewer.send(json.dumps({"type": "input", "data": "nope"}))
    assert "view link" in json.loads(viewer.recv(5))["message"]
    # the owner, asking replica A, sees the viewers connected to replica B
    listed = httpx.get(f"{a}/api/sessions/{tab.id}/shares").json()["shares"]
    watching = {s["mode"]: len(s["viewers"]) for s in listed}
    assert watching == {"view": 2, "drive": 1}
    [driving] = next(s["viewers"] for s in listed if s["mode"] == "drive")
    assert httpx.delete(f"{a}/api/sessions/{tab.id}/viewers/{driving['id']}").status_code == 204
    frames = closing_frames(driver)
    assert frames[-2]["reason"] == "the session's owner ended your connection"


def test_revoking_on_one_replica_cuts_off_viewers_on_the_other(replicas):
    a, b = replicas
    tab = Tab(a)
    share = tab.share("view")
    viewer = watch_on(b, share)
    tab.write("x")
    read_until(viewer, "x")
    assert httpx.delete(f"{a}/api/sessions/{tab.id}/shares/{share['id']}").status_code == 204
    frames = closing_frames(viewer)
    assert frames[-2]["reason"] == "the session's owner revoked this share link"
    assert frames[-1] == {"code": 4410}
    assert httpx.get(b + "/s/" + share["url"].split("/s/", 1)[1]).status_code == 410


def test_when_the_host_ends_the_session_viewers_on_the_other_replica_see_why(replicas):
    a, b = replicas
    tab = Tab(a)
    viewer = watch_on(b, tab.share("view"))
    tab.write("y")
    read_until(viewer, "y")
    tab.relay.close(code=1001)
    assert {"type": "exit", "reason": "the owner closed the tab"} in closing_frames(viewer)
