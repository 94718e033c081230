"""Admission per client: one address that floods stops at its limits, with a refusal that
names the limit and when to retry, while another address is still served. Clients
on loopback aliases (127.0.0.2, ...) are different addresses to the server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from bench.abuse import INITIALIZE
from bench.liveserver import LiveServer, live_server
from bench.poolserver import PoolServer, pool_server
from kernel.hosts.models.settings import ModelSettings
from server.admission import AdmissionLimits, client_key
from server.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")

MCP_HEADERS = {"accept": "application/json, text/event-stream"}


def client_at(address: str, base: str) -> httpx.Client:
    """An HTTP client whose connections come from `address`."""
    return httpx.Client(
        base_url=base, transport=httpx.HTTPTransport(local_address=address), timeout=30
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    limits = AdmissionLimits(tab_sessions=3, trusted_proxies=("127.0.0.9",))
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        model=ModelSettings(disabled=True),
        admission=limits,
    )
    with live_server(settings) as served:
        yield served


def assert_refused_with_reason(response: httpx.Response, limit: str) -> None:
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert limit in response.text and "limit reached" in response.text


def test_a_flood_of_tab_sessions_stops_at_its_limit_and_another_address_is_served(server):
    flooder, honest = client_at("127.0.0.1", server.base), client_at("127.0.0.2", server.base)
    made = [flooder.post("/api/tabs") for _ in range(10)]
    assert [r.status_code for r in made[:3]] == [201, 201, 201]
    for refused in made[3:]:
        assert_refused_with_reason(refused, "shared tab sessions")
    assert honest.post("/api/tabs").status_code == 201
    flooder.delete(f"/api/tabs/{made[0].json()['id']}")  # ending one frees its place
    for _ in range(50):
        if flooder.post("/api/tabs").status_code == 201:
            break
    else:
        raise AssertionError("ending a tab session did not give its place back")


def test_a_flood_of_mcp_initializes_leaves_nothing_to_lock_out_another(server):
    """MCP keeps nothing per client between requests (no Mcp-Session-Id, at any revision),
    so a flood of handshakes fills no table."""
    flooder, honest = client_at("127.0.0.3", server.base), client_at("127.0.0.4", server.base)
    answers = [flooder.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS) for _ in range(300)]
    assert all(a.status_code == 200 for a in answers)
    assert not any("mcp-session-id" in a.headers for a in answers)
    welcome = honest.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
    assert welcome.json()["result"]["protocolVersion"] == INITIALIZE["params"]["protocolVersion"]


def test_a_trusted_proxy_names_the_client_and_nobody_else_can(server):
    proxy, stranger = client_at("127.0.0.9", server.base), client_at("127.0.0.5", server.base)
    for n in range(3):  # three visitors behind the proxy, one tab each
        forwarded = {"x-forwarded-for": f"198.51.100.{n}"}
        assert proxy.post("/api/tabs", headers=forwarded).status_code == 201
    spoofed = [
        stranger.post("/api/tabs", headers={"x-forwarded-for": f"203.0.113.{n}"}) for n in range(4)
    ]  # a header from a client that is not a trusted proxy is ignored
    assert [r.status_code for r in spoofed] == [201, 201, 201, 429]


def test_an_ipv6_client_is_its_64():
    one, other = client_key("2001:db8:1:2::1"), client_key("2001:db8:1:2:ffff::9")
    assert one == other == "2001:db8:1:2::/64"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"  # IPv4-mapped: the IPv4 client
    assert client_key("2001:db8:1:3::1") != one


# --- QEMU sessions and their sockets ---------------------------------------------------------


@pytest.fixture(scope="module")
def pool() -> Iterator[PoolServer]:
    options = ["--accel", "tcg", "--warm", "2", "--max-vms", "3"]
    with pool_server(*options, "--client-sessions", "1", "--client-terminals", "2") as served:
        yield served


@pytest.mark.qemu
def test_a_flood_of_sessions_stops_at_its_limit_while_another_address_gets_a_vm(pool):
    flooder = client_at("127.0.0.1", pool.base)
    honest = client_at("127.0.0.2", pool.base)
    made = [pool.new_session()]  # from 127.0.0.1, waiting for the pool if need be
    try:
        refused = [flooder.post("/api/sessions", json={"backend": "qemu"}) for _ in range(5)]
        for response in refused:
            assert_refused_with_reason(response, "running sessions")
        deadline = time.monotonic() + 120
        while (
            welcome := honest.post("/api/sessions", json={"backend": "qemu"})
        ).status_code == 503:
            assert time.monotonic() < deadline, "the pool never had a VM for the second address"
            time.sleep(min(1.0, float(welcome.headers["retry-after"])))  # booting: not refused
        assert welcome.status_code == 201, welcome.text
        made.append(welcome.json())
    finally:
        for session in made:
            assert pool.http.delete(f"/api/sessions/{session['id']}").status_code == 204


@pytest.mark.qemu
def test_new_owner_tokens_do_not_lift_an_addresss_session_limit(pool):
    """An MCP client that leaves out its owner token gets a new one with each session, but
    its sessions still count against its address."""
    flooder = client_at("127.0.0.6", pool.base)
    headers = MCP_HEADERS | {"mcp-protocol-version": "2025-11-25"}

    def create(n: int) -> dict:
        call = {"name": "create_session", "arguments": {}}
        answer = flooder.post("/mcp", json=mcp_call(n, call), headers=headers).json()
        return answer["result"]["structuredContent"]

    pool.wait_for(lambda: pool.pool()["warm"] >= 1, "a warm VM")
    first = create(1)
    try:
        second = create(2)
        assert second["error"]["kind"] == "limit", second
        assert "running sessions" in second["error"]["message"]
    finally:
        ended = {"owner": first["owner"], "session": first["id"]}
        end = {"name": "end_session", "arguments": ended}
        flooder.post("/mcp", json=mcp_call(3, end), headers=headers).raise_for_status()


def mcp_call(n: int, params: dict) -> dict:
    return {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": params}


@pytest.mark.qemu
def test_terminal_sockets_past_the_limit_are_closed_with_the_reason(pool):
    session = pool.new_session()
    url = f"ws://127.0.0.1:{pool.port}{session['terminal']}"
    open_ones = [connect(url) for _ in range(2)]
    third = connect(url)
    error = json.loads(third.recv(10))
    assert error["type"] == "error" and "terminal connections" in error["message"]
    with pytest.raises(Exception):  # noqa: B017 (the socket closes: 4429)
        third.recv(10)
    assert third.close_code == 4429
    open_ones.pop().close()
    for _ in range(50):  # a closed one gives its place back
        again = connect(url)
        again.send(json.dumps({"type": "resume", "offset": 0}))
        if json.loads(again.recv(10))["type"] == "output":
            break
        again.close()
    else:
        raise AssertionError("a closed terminal socket did not give its place back")
    for ws in [*open_ones, again]:
        ws.close()
    assert pool.http.delete(f"/api/sessions/{session['id']}").status_code == 204
