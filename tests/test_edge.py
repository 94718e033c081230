"""The server's edge against a hostile visitor: DNS rebinding, cross-site requests,
oversized bodies and JSON nested to exhaust the parser (server/guard.py, server/origin.py,
server/jsonbody.py), against the real server and real clients.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.routing import Mount, Route, WebSocketRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from bench.liveserver import ONE_ADDRESS_RIG, LiveServer, live_server
from kernel.hosts.models.settings import ModelSettings
from server.jsonbody import MAX_DEPTH
from server.settings import Settings
from tests.llm_server import ScriptedLLM
from tests.test_share import Tab, read_until, watch, ws_url
from tests.test_share_restart import free_port, start_server

PUBLIC = "play.example"
MCP_ACCEPT = {"accept": "application/json, text/event-stream"}
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
DEEP_ARRAY = "[" * 2000  # within every body limit; the parser's recursion ends near 1000
DEEP_OBJECT = '{"a":' * 500 + "1" + "}" * 500


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    with ScriptedLLM() as llm:
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("data"),
            public_hosts=(PUBLIC,),
            model=ModelSettings(url=llm.url, model="scripted-1"),
            admission=ONE_ADDRESS_RIG,
        )
        with live_server(settings, start_timeout=30) as running:
            yield running


def filled(path: str) -> str:
    """A route's path with every parameter filled in."""
    return re.sub(r"\{[^}]+\}", "x", path)


def every_route(server: LiveServer) -> tuple[list[tuple[str, str]], list[str]]:
    """(method, path) of every HTTP route, and the path of every websocket route."""
    http: list[tuple[str, str]] = []
    sockets: list[str] = []
    for route in server.app.routes:
        if isinstance(route, WebSocketRoute):
            sockets.append(filled(route.path))
        elif isinstance(route, Route):
            http += [(method, filled(route.path)) for method in sorted(route.methods or ())]
        elif isinstance(route, Mount):
            http.append(("GET", filled(route.path) + "/x"))
    return http, sockets


def handshake(server: LiveServer, path: str, host: str, origin: str) -> ClientConnection:
    """A websocket handshake to this server that names `host`, however it resolves."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    return connect(f"ws://{host}{path}", sock=sock, origin=origin, open_timeout=5)


def test_a_rebound_name_is_refused_on_every_route_and_socket(server):
    rebound = f"evil.example:{server.port}"
    headers = {"host": rebound, "origin": f"http://{rebound}", "content-type": "application/json"}
    http, sockets = every_route(server)
    assert ("POST", "/mcp") in http and "/api/tabs/x/relay" in sockets
    for method, path in http:
        response = httpx.request(method, server.base + path, headers=headers, content=b"{}")
        assert response.status_code == 421, (method, path, response.text)
        assert method == "HEAD" or "--public-host evil.example" in response.json()["error"]
    for path in sockets:
        with pytest.raises(InvalidStatus) as refused:
            handshake(server, path, rebound, f"http://{rebound}")
        assert refused.value.response.status_code == 421, path
        assert b"--public-host evil.example" in refused.value.response.body
    assert httpx.get(server.base + "/healthz").status_code == 200  # its own name still works


def test_the_loopback_names_and_a_public_host_are_served(server):
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", PUBLIC):
        headers = {"host": host, "origin": f"https://{host}"}
        assert httpx.get(server.base + "/healthz", headers={"host": host}).status_code == 200
        created = httpx.post(server.base + "/api/tabs", headers=headers)
        assert created.status_code == 201, (host, created.text)
    other_port = httpx.get(server.base + "/healthz", headers={"host": "localhost:1"})
    assert other_port.status_code == 421


def test_an_mcp_client_is_served_by_the_names_on_the_allow_list(server):
    """The SDK checks Host and Origin again, from the same allow-list: it must agree."""

    async def tools(host: str) -> set[str]:
        async with (
            httpx2.AsyncClient(headers={"host": host, "origin": f"http://{host}"}) as http,
            Client(streamable_http_client(server.base + "/mcp", http_client=http)) as client,
        ):
            return {tool.name for tool in (await client.list_tools()).tools}

    for host in (f"localhost:{server.port}", PUBLIC):
        assert "create_session" in asyncio.run(tools(host))


def test_a_page_from_another_site_cannot_change_anything_or_open_a_socket(server):
    """With the Host right (the page is on the network, not rebound), its Origin gives it
    away: every state-changing route, /mcp and every socket refuse it."""
    own = server.base.removeprefix("http://")
    tab = Tab(server.base)
    headers = {"origin": "http://evil.example", "content-type": "application/json"}
    http, sockets = every_route(server)
    changing = [(m, p) for m, p in http if m in ("POST", "PUT", "PATCH", "DELETE")]
    assert ("POST", "/api/tabs") in changing and ("POST", "/mcp") in changing
    for method, path in changing:
        path = path.replace("/x/", f"/{tab.id}/", 1) if path.startswith("/api/sess") else path
        response = httpx.request(method, server.base + path, headers=headers, content=b"{}")
        assert response.status_code == 403, (method, path, response.text)
    for path in sockets:
        with pytest.raises(InvalidStatus) as refused:
            handshake(server, path, own, "http://evil.example")
        assert refused.value.response.status_code == 403, path
    assert httpx.get(f"{server.base}/api/tabs/{tab.id}").json()["state"] != "ended"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"],
)
def test_a_simple_cross_site_post_is_refused_unparsed(server, content_type):
    """The requests a page elsewhere may send without asking first (no Origin: an old
    browser, or a page that strips it) are not JSON, so nothing here takes them."""
    tab = Tab(server.base)
    for path in (
        f"/api/sessions/{tab.id}/shares",
        f"/api/sessions/{tab.id}/recordings",
        "/api/tabs",
    ):
        headers = {"content-type": content_type}
        response = httpx.post(server.base + path, content=b'{"mode": "drive"}', headers=headers)
        assert response.status_code == 415, (path, response.text)
        assert "application/json" in response.json()["error"]
    listed = httpx.get(f"{server.base}/api/sessions/{tab.id}/shares").json()
    assert listed["shares"] == []


def body_routes(tab_id: str) -> list[str]:
    """Every route that reads a body here (POST /api/sessions does too, with QEMU on:
    the same reader as the share and recording routes)."""
    api = f"/api/sessions/{tab_id}"
    return [
        f"{api}/shares",
        f"{api}/recordings",
        f"{api}/markers",
        f"{api}/calls",
        f"{api}/processes",
        f"{api}/terminal/input",
        "/mcp",
    ]


def peak_rss_mib(pid: int) -> float:
    """The most memory the process has held at once (its RSS high-water mark)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_100_mb_body_is_refused_at_its_limit_and_the_server_stays_small(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_server(tmp_path, port)
    try:
        tab = httpx.post(base + "/api/tabs").json()
        before = peak_rss_mib(process.pid)

        def hundred_mib() -> Iterator[bytes]:
            for _ in range(100):
                yield b" " * (1 << 20)

        for path in body_routes(tab["id"]):
            headers = {**MCP_ACCEPT, "content-type": "application/json"}
            response = httpx.post(base + path, content=hundred_mib(), headers=headers)
            assert response.status_code == 413, (path, response.text)
            assert "at most" in response.json()["error"]
        head = (
            f"POST /api/sessions/{tab['id']}/shares HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
            f"content-type: application/json\r\ncontent-length: {100 << 20}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port)) as raw:  # says 100 MB, sends none
            raw.sendall(head.encode())
            assert raw.recv(100).startswith(b"HTTP/1.1 413")
        assert peak_rss_mib(process.pid) - before < 20
        assert httpx.get(base + "/healthz").status_code == 200
    finally:
        process.kill()
        process.wait()


def test_json_nested_too_deep_gets_a_clear_400_on_every_body_route(server):
    tab = Tab(server.base)
    headers = {**MCP_ACCEPT, "content-type": "application/json"}
    for path in body_routes(tab.id):
        for body in (DEEP_ARRAY, DEEP_OBJECT):
            response = httpx.post(server.base + path, content=body, headers=headers)
            assert response.status_code == 400, (path, body[:8], response.text)
            assert TOO_DEEP in response.json()["error"]
        flood = httpx.post(server.base + path, content="[" * 100_000, headers=headers)
        assert flood.status_code == 413, (path, flood.text)  # past every limit: not parsed
    tab.write("the tab is unharmed\r\n")
    viewer = watch(server.base, tab.share("view"))
    read_until(viewer, "the tab is unharmed")


def refused_deep(conn: ClientConnection) -> None:
    """Deep JSON on a socket: an error frame naming the problem each time; it stays open."""
    for frame in ("[" * 60_000, '{"a":' * 10_000 + "1" + "}" * 10_000):
        conn.send(frame)
        answer = json.loads(conn.recv(5))
        assert answer["type"] == "error" and TOO_DEEP in answer["message"], answer


def test_json_nested_too_deep_on_every_socket_is_refused_and_the_socket_stays_open(server):
    tab = Tab(server.base)
    driver = watch(server.base, tab.share("drive"))  # the terminal protocol (server/terminal.py)
    refused_deep(tab.relay)
    refused_deep(driver)
    tab.write("relay still open\r\n")
    read_until(driver, "relay still open")
    driver.send(json.dumps({"type": "input", "data": "typed\r"}))
    deadline = time.monotonic() + 5
    while (frame := json.loads(tab.relay.recv(5)))["type"] != "input":
        assert time.monotonic() < deadline
    assert frame["data"] == "typed\r"
    with connect(ws_url(server.base, "/api/model/stream")) as model:
        refused_deep(model)
        model.send(json.dumps({"type": "cancel", "stream": 0}))
        assert "stream" in json.loads(model.recv(5))["message"]  # still answering
