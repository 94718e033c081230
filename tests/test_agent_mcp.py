"""Outside agents on real QEMU sessions: MCP over HTTP and stdio, and the REST API.

One real server (`capos-playground serve`, a subprocess, TCG) serves the
module; the MCP tests use the official SDK's own client, as an agent's
host would, speaking the current revision (2026-07-28, no handshake) and
the handshake revisions (2025-11-25 through the SDK, 2025-06-18 as raw
JSON-RPC). Every call crosses the VM's control channel and is served by
the session's shell with its own caps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from mcp import Client, StdioServerParameters

from bench.poolserver import REPO, pool_server

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]

TOOLS = {
    "create_session",
    "list_caps",
    "describe_cap",
    "call_method",
    "spawn",
    "terminal_write",
    "terminal_read",
    "monitor_snapshot",
    "generate",
    "fork_session",
    "end_session",
}


@pytest.fixture(scope="module")
def server():
    with pool_server(
        "--warm", "2", "--max-vms", "5", "--agent-sessions", "2", "--agent-calls-per-s", "25"
    ) as served:
        served.wait_for(lambda: served.pool()["warm"] >= 1, "a warm VM")
        yield served


@contextlib.asynccontextmanager
async def mcp_over_http(server, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK's client: "auto" finds the current revision; "legacy" shakes hands."""
    async with Client(f"{server.base}/mcp", mode=mode) as client:
        yield client


async def tool(client: Client, name: str, **arguments) -> tuple[bool, dict]:
    result = await client.call_tool(name, arguments)
    return result.is_error, result.structured_content


async def new_session(client: Client, owner: str = "") -> dict:
    """{"owner", "session"}: the arguments every later tool call takes."""
    failed, answer = await tool(client, "create_session", backend="qemu", owner=owner)
    assert not failed, answer
    return {"owner": answer["owner"], "session": answer["id"]}


async def echo_in_a_new_session(client: Client, data: str) -> tuple[bool, dict]:
    """Make a session, call its echo cap once, end it: the echo call's answer."""
    session = await new_session(client)
    echoed = await tool(
        client, "call_method", **session, cap="echo", method="echo", arguments={"data": data}
    )
    await tool(client, "end_session", **session)
    return echoed


def test_an_agent_drives_a_session_through_typed_tools_over_http(server):
    async def scenario() -> dict:
        seen = {}
        async with mcp_over_http(server) as client:
            seen["version"] = client.protocol_version
            tool_list = await client.list_tools()
            seen["cacheable"] = (tool_list.ttl_ms, tool_list.cache_scope)
            listed = tool_list.tools
            seen["tools"] = {t.name for t in listed}
            seen["unschemed"] = {t.name for t in listed if not t.output_schema}
            session = await new_session(client)
            seen["caps"] = (await tool(client, "list_caps", **session))[1]["caps"]
            seen["described"] = (await tool(client, "describe_cap", **session, cap="counter"))[1]
            seen["good"] = await tool(
                client,
                "call_method",
                **session,
                cap="counter",
                method="increment",
                arguments={"by": 3},
            )
            seen["bad"] = await tool(
                client,
                "call_method",
                **session,
                cap="counter",
                method="increment",
                arguments={"by": "three"},
            )
            seen["raised"] = await tool(
                client,
                "call_method",
                **session,
                cap="launcher",
                method="spawn",
                arguments={"name": "x", "binaryName": "no-such-binary", "grants": []},
            )
            seen["spawned"] = await tool(
                client,
                "spawn",
                **session,
                binary="counter",
                grants={"stdio": {"client": "stdio"}, "counter": {"client": "counter"}},
            )
            written = (await tool(client, "terminal_write", **session, data="caps\r"))[1]
            text, offset = "", 0
            for _ in range(50):
                read = (
                    await tool(client, "terminal_read", **session, offset=offset, wait_ms=2000)
                )[1]
                text += read["data"]
                offset = read["next_offset"]
                if "ORIGIN" in text and "spawned by an agent" in text:
                    break
            seen["terminal"], seen["written"] = text, written
            snapshot = (await tool(client, "monitor_snapshot", **session))[1]
            assert "processes" in snapshot, snapshot
            seen["binaries"] = {p["binary"] for p in snapshot["processes"]}
            # A narrower monitor the shell makes and keeps: the agent sees only its subtree.
            child = seen["spawned"][1]["pid"]
            narrowed = await tool(
                client,
                "call_method",
                **session,
                cap="monitor",
                method="subtree",
                arguments={"pid": child},
                bind="mine",
            )
            assert not narrowed[0], narrowed
            seen["narrow"] = (
                await tool(client, "monitor_snapshot", **session, cap="mine", max_calls=5)
            )[1]
            seen["not a monitor"] = await tool(client, "monitor_snapshot", **session, cap="echo")
            seen["ended"] = await tool(client, "end_session", **session)
            seen["after"] = await tool(client, "list_caps", **session)
        return seen

    seen = asyncio.run(scenario())
    assert seen["version"] == "2026-07-28"
    assert seen["tools"] >= TOOLS
    assert not seen["unschemed"]  # every tool says what it answers (and the SDK checks it)
    assert seen["cacheable"] == (3_600_000, "public")  # the same list for everyone, an hour
    held = {c["name"]: c["interface"] for c in seen["caps"]}
    assert held["counter"] == "Counter" and held["echo"] == "Echo"
    increment = next(m for m in seen["described"]["methods"] if m["name"] == "increment")
    assert increment["params"]["required"] == ["by"]
    assert seen["good"] == (False, {"results": {"value": 3}})
    failed, bad = seen["bad"]
    assert (
        failed
        and bad["error"]["kind"] == "input"
        and "by expects UInt32" in bad["error"]["message"]
    )
    failed, raised = seen["raised"]
    assert failed and raised["error"]["kind"] == "capException"
    assert raised["error"]["type"] == "invalidArgument"
    assert seen["spawned"][1]["binary"] == "counter"
    assert "counter" in seen["binaries"] and "shell" in seen["binaries"]
    assert seen["narrow"]["scopePid"] == seen["spawned"][1]["pid"]
    assert {p["binary"] for p in seen["narrow"]["processes"]} == {"counter"}
    failed, not_a_monitor = seen["not a monitor"]
    assert failed and "snapshot" in not_a_monitor["error"]["message"], not_a_monitor
    assert "ORIGIN" in seen["terminal"]  # the shell ran `caps`, typed by the agent
    assert seen["ended"] == (False, {"id": seen["ended"][1]["id"], "ended": True})
    failed, after = seen["after"]
    assert failed and after["error"]["kind"] in ("gone", "notFound")


def test_older_revisions_drive_a_session_too(server):
    """A 2025-11-25 client (the SDK's handshake) and a 2025-06-18 one (raw JSON-RPC over
    HTTP, as a client of that revision sends it): no session id comes back, and the
    owner token is the credential either way."""

    async def through_the_sdk():
        async with mcp_over_http(server, mode="legacy") as client:
            echoed = await echo_in_a_new_session(client, "25")
            return client.protocol_version, echoed

    version, echoed = asyncio.run(through_the_sdk())
    assert version == "2025-11-25"
    assert echoed == (False, {"results": {"data": "25"}})

    http = httpx.Client(base_url=server.base, timeout=60)
    headers = {"accept": "application/json, text/event-stream"}
    hello = http.post("/mcp", json=raw_request(1, "initialize", INITIALIZE_0618), headers=headers)
    assert hello.json()["result"]["protocolVersion"] == "2025-06-18"
    assert "mcp-session-id" not in hello.headers
    headers["mcp-protocol-version"] = "2025-06-18"

    def call(n: int, name: str, **arguments) -> dict:
        params = {"name": name, "arguments": arguments}
        return http.post("/mcp", json=raw_request(n, "tools/call", params), headers=headers).json()

    created = call(2, "create_session")["result"]["structuredContent"]
    held = {"owner": created["owner"], "session": created["id"]}
    echoed = call(3, "call_method", **held, cap="echo", method="echo", arguments={"data": "0618"})
    assert echoed["result"]["structuredContent"] == {"results": {"data": "0618"}}
    # The token as HTTP authorization instead of an argument; a wrong one reaches nothing.
    headers["authorization"] = f"Bearer {held['owner']}"
    authorized = call(4, "list_caps", session=held["session"])["result"]
    assert any(c["name"] == "echo" for c in authorized["structuredContent"]["caps"])
    headers["authorization"] = "Bearer not-a-token"
    refused = call(5, "list_caps", session=held["session"])["result"]["structuredContent"]
    assert refused["error"]["kind"] == "forbidden"
    assert call(6, "end_session", **held)["result"]["structuredContent"]["ended"]


INITIALIZE_0618 = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "raw-0618", "version": "1"},
}


def raw_request(n: int, method: str, params: dict) -> dict:
    return {"jsonrpc": "2.0", "id": n, "method": method, "params": params}


def test_a_session_answers_only_its_owner_token(server):
    """Hostile callers: no token, a made-up token, another client's token."""

    async def scenario():
        async with mcp_over_http(server) as owner, mcp_over_http(server) as other:
            mine = await new_session(owner)
            theirs = await new_session(other)
            echo = {"cap": "echo", "method": "echo", "arguments": {"data": "mine now"}}
            try:
                return {
                    "no token": await tool(other, "call_method", **mine | {"owner": ""}, **echo),
                    "missing": await tool(other, "call_method", session=mine["session"], **echo),
                    "made up": await tool(
                        other, "call_method", **mine | {"owner": "guessed"}, **echo
                    ),
                    "another's": await tool(
                        other, "call_method", **mine | {"owner": theirs["owner"]}, **echo
                    ),
                    "made-up owner": await tool(other, "create_session", owner="guessed"),
                    "own": await tool(owner, "call_method", **mine, **echo),
                }
            finally:
                await tool(owner, "end_session", **mine)
                await tool(other, "end_session", **theirs)

    seen = asyncio.run(scenario())
    for case in ("no token", "missing", "made up", "another's", "made-up owner"):
        failed, answer = seen[case]
        assert failed and answer["error"]["kind"] == "forbidden", case
    assert "no owner token" in seen["no token"][1]["error"]["message"]
    assert "not this owner token's" in seen["another's"][1]["error"]["message"]
    assert "unknown owner token" in seen["made-up owner"][1]["error"]["message"]
    assert "no owner token" in seen["missing"][1]["error"]["message"]
    assert seen["own"] == (False, {"results": {"data": "mine now"}})


@pytest.mark.browser
def test_create_session_gives_a_view_link_to_watch_and_no_address_holds_the_id(server):
    from playwright.sync_api import sync_playwright

    from bench.tab import CHROMIUM, CHROMIUM_FLAGS, has_prompt, wait_global, wait_screen

    async def scenario():
        async with mcp_over_http(server) as client:
            result = await client.call_tool("create_session", {})
            assert not result.is_error, result.structured_content
            return result.structured_content, result.model_dump_json()

    made, whole = asyncio.run(scenario())
    session = made["id"]
    assert made["watch"].startswith("/s/") and session not in made["watch"]
    http = server.http
    server.wait_for(lambda: server.pool()["warm"] >= 1, "a warm VM")
    rest = http.post("/api/sessions", json={"backend": "qemu"})
    assert rest.status_code == 201 and rest.json()["id"]  # the owner's API credential
    answers = [
        rest,
        http.get(f"/api/sessions/{session}"),
        http.post(f"/api/sessions/{session}/shares", json={"mode": "drive"}),
        http.get(f"/api/sessions/{session}/shares"),
        http.get(f"/play?session={session}"),  # an old owner link: the page, nothing more
    ]
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        said = answer.text + " ".join(f"{k}: {v}" for k, v in answer.headers.items())
        assert "?session=" not in said, answer.url
    assert "?session=" not in whole
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(server.base + made["watch"])
        assert wait_global(page, "window.capos && window.capos.mode", 30) == "view"
        wait_screen(page, has_prompt, 60)
        browser.close()
    for ending in (session, rest.json()["id"]):
        assert http.delete(f"/api/sessions/{ending}").status_code == 204


def test_sessions_per_owner_token_and_call_rate_are_limited(server):
    async def scenario():
        async with mcp_over_http(server) as client:
            first = await new_session(client)
            second = await new_session(client, owner=first["owner"])
            third = await tool(client, "create_session", owner=first["owner"])
            for session in (first, second):
                await tool(client, "end_session", **session)
            flood = [
                await tool(client, "list_caps", owner=first["owner"], session="nope")
                for _ in range(150)
            ]
        return first, second, third, flood

    first, second, (failed, third), flood = asyncio.run(scenario())
    assert second["owner"] == first["owner"]  # one token, two sessions
    assert failed and third["error"]["kind"] == "limit"
    kinds = [answer["error"]["kind"] for _, answer in flood]
    assert kinds[0] == "notFound"
    assert "rateLimited" in kinds
    limited = next(a for _, a in flood if a["error"]["kind"] == "rateLimited")
    assert limited["error"]["retry_after"] >= 1


def test_resources_are_the_schema_and_the_manual(server):
    async def scenario():
        async with mcp_over_http(server) as client:
            listed = {str(r.uri) for r in (await client.list_resources()).resources}
            schema = await client.read_resource("capos://schema/capos.capnp")
            return listed, schema.contents[0].text

    listed, schema = asyncio.run(scenario())
    assert "capos://schema/control.capnp" in listed
    assert any(uri.startswith("capos://manual/concepts/") for uri in listed)
    assert "interface AgentPort" in schema


def test_create_session_comes_with_an_app_that_shows_the_session(server):
    """MCP Apps: a host that renders them finds the App on create_session, and reads it."""

    async def scenario():
        async with mcp_over_http(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            uri = tools["create_session"].meta["ui"]["resourceUri"]
            app = (await client.read_resource(uri)).contents[0]
            return client.server_capabilities, uri, app

    capabilities, uri, app = asyncio.run(scenario())
    assert "io.modelcontextprotocol/ui" in (capabilities.extensions or {})
    assert "io.modelcontextprotocol/tasks" in (capabilities.extensions or {})
    assert uri.startswith("ui://") and app.mime_type == "text/html;profile=mcp-app"
    assert '"ui/initialize"' in app.text
    assert 'callTool("terminal_read"' in app.text and 'callTool("monitor_snapshot"' in app.text


# A host page for the App, as an agent's host plays it: the App in a sandboxed iframe,
# its ui/initialize answered, the create_session result handed to it, and its tools/call
# passed to the real server (`mcpCall`, the host's own MCP client).
APP_HOST = """<!doctype html><body><script>
window.appCalls = [];
const frame = document.createElement("iframe");
frame.sandbox = "allow-scripts";
frame.srcdoc = APP_HTML;
document.body.append(frame);
window.addEventListener("message", async (event) => {
  const m = event.data;
  const answer = (result) =>
    frame.contentWindow.postMessage({jsonrpc: "2.0", id: m.id, result}, "*");
  if (m.method === "ui/initialize") {
    answer({protocolVersion: m.params.protocolVersion, hostInfo: {name: "test-host", version: "1"},
            hostCapabilities: {serverTools: {}}, hostContext: {}});
  } else if (m.method === "ui/notifications/initialized") {
    frame.contentWindow.postMessage({jsonrpc: "2.0", method: "ui/notifications/tool-result",
                                     params: CREATED}, "*");
  } else if (m.method === "tools/call") {
    window.appCalls.push(m.params.name);
    answer(JSON.parse(await window.mcpCall(m.params.name, JSON.stringify(m.params.arguments))));
  }
});
</script></body>"""


@pytest.mark.browser
def test_the_app_shows_the_sessions_terminal_and_processes_in_a_host(server):
    from playwright.sync_api import sync_playwright

    from bench.tab import CHROMIUM, CHROMIUM_FLAGS

    http = httpx.Client(base_url=server.base, timeout=60)
    headers = {
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2025-11-25",
    }

    def mcp_call(name: str, arguments: str) -> str:
        params = {"name": name, "arguments": json.loads(arguments)}
        answer = http.post("/mcp", json=raw_request(1, "tools/call", params), headers=headers)
        return json.dumps(answer.json()["result"])

    created = json.loads(mcp_call("create_session", "{}"))
    held = {"owner": created["structuredContent"]["owner"]}
    held["session"] = created["structuredContent"]["id"]
    app = (REPO / "web" / "mcp-app.html").read_text()
    inlined = json.dumps(app).replace("</", "<\\/")  # its </script> must not end the host's
    host = APP_HOST.replace("APP_HTML", inlined).replace("CREATED", json.dumps(created))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.expose_function("mcpCall", mcp_call)
            page.set_content(host)
            frame = page.frame_locator("iframe")
            mcp_call("terminal_write", json.dumps({**held, "data": "echo.echo(data=app)\r"}))
            frame.locator("#terminal").get_by_text("app", exact=False).first.wait_for(timeout=60000)
            shell = frame.locator("#processes td", has_text="shell").first
            shell.wait_for(timeout=60000)
            calls = set(page.evaluate("window.appCalls"))
            browser.close()
    finally:
        mcp_call("end_session", json.dumps(held))
    assert calls >= {"terminal_read", "monitor_snapshot"}


def test_mcp_refuses_a_page_from_another_site(server):
    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"accept": "application/json, text/event-stream", "origin": "http://evil.example"}
    response = httpx.post(f"{server.base}/mcp", json=hello, headers=headers)
    assert response.status_code == 403


def stdio(*args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "server.cli", "mcp", *args], cwd=str(REPO)
    )


def test_the_stdio_server_talks_to_a_running_server(server):
    async def scenario(mode: str):
        async with Client(stdio("--url", f"{server.base}/mcp"), mode=mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            echoed = await echo_in_a_new_session(client, "over stdio")
            return client.protocol_version, names, echoed

    for mode, version in (("auto", "2026-07-28"), ("legacy", "2025-11-25")):
        spoke, names, echoed = asyncio.run(scenario(mode))
        assert spoke == version
        assert names >= TOOLS
        assert echoed == (False, {"results": {"data": "over stdio"}})


class ModernWire:
    """2026-07-28 as raw JSON-RPC over HTTP, as a client of that revision sends it: each
    request carries its revision, capabilities and routing headers."""

    def __init__(self, server, extensions: dict) -> None:
        self.http = httpx.Client(base_url=server.base, timeout=60)
        self.capabilities = {"extensions": extensions}
        self.sent = 0

    def request(self, method: str, params: dict, name: str | None = None) -> dict:
        self.sent += 1
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": self.capabilities,
            "io.modelcontextprotocol/clientInfo": {"name": "raw-2026", "version": "1"},
        }
        headers = {
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": "2026-07-28",
            "mcp-method": method,
            **({"mcp-name": name} if name else {}),
        }
        body = raw_request(self.sent, method, {**params, "_meta": meta})
        return self.http.post("/mcp", json=body, headers=headers).json()

    def call(self, tool: str, **arguments) -> dict:
        answer = self.request("tools/call", {"name": tool, "arguments": arguments}, tool)
        return answer["result"]

    def task(self, task_id: str, verb: str = "get") -> dict:
        return self.request(f"tasks/{verb}", {"taskId": task_id}, task_id)

    def settled(self, task_id: str) -> dict:
        for _ in range(120):
            task = self.task(task_id)["result"]
            if task["status"] != "working":
                return task
            time.sleep(task["pollIntervalMs"] / 1000)
        raise AssertionError(f"task {task_id} never settled")


def test_a_slow_call_becomes_a_task_the_client_polls_or_cancels(server):
    tasks = ModernWire(server, {"io.modelcontextprotocol/tasks": {}})
    created = tasks.call("create_session")
    assert created["resultType"] == "complete"  # a warm VM: quick, so answered at once
    held = {"owner": created["structuredContent"]["owner"]}
    held["session"] = created["structuredContent"]["id"]
    try:
        end = tasks.call("terminal_read", **held, wait_ms=0)["structuredContent"]["next_offset"]
        waiting = tasks.call("terminal_read", **held, offset=end, wait_ms=8000)
        assert waiting["resultType"] == "task" and waiting["status"] == "working"
        assert tasks.call("terminal_write", **held, data="help\r")["structuredContent"]["written"]
        done = tasks.settled(waiting["taskId"])
        assert done["status"] == "completed"
        echoed = done["result"]["structuredContent"]["data"]  # the keystrokes' echo woke it
        assert echoed.startswith("h")

        end = done["result"]["structuredContent"]["next_offset"]
        while read := tasks.call("terminal_read", **held, offset=end, wait_ms=500):
            if not read["structuredContent"]["data"]:  # the shell is quiet now
                break
            end = read["structuredContent"]["next_offset"]
        abandoned = tasks.call("terminal_read", **held, offset=end, wait_ms=10000)
        assert abandoned["resultType"] == "task"
        assert tasks.task(abandoned["taskId"], "cancel")["result"]["resultType"] == "complete"
        assert tasks.settled(abandoned["taskId"])["status"] == "cancelled"
        unknown = tasks.task("f" * 32)
        assert "no task" in unknown["error"]["message"]

        # A program that runs a while, waited for: its exit code at the end, a task meanwhile.
        grants = {"stdio": {"client": "stdio"}, "echo": "echo"}
        ping = tasks.call("spawn", **held, binary="ping", grants=grants, wait=True)
        ran = tasks.settled(ping["taskId"])["result"] if ping["resultType"] == "task" else ping
        assert ran["structuredContent"]["exit_code"] == 0, ran
        assert ran["structuredContent"]["binary"] == "ping"

        plain = ModernWire(server, {})  # no Tasks extension: never a task
        waited = plain.call("terminal_read", **held, offset=end, wait_ms=1500)
        assert waited["resultType"] == "complete" and not waited.get("isError")
    finally:
        tasks.call("end_session", **held)


# --- the REST API: the same operations ------------------------------------------------------


def test_the_rest_api_makes_the_same_typed_calls(server):
    session = server.new_session()["id"]
    api = f"/api/sessions/{session}"
    http = server.http
    anonymous = {c["name"] for c in http.get(f"{api}/caps").json()["caps"]}
    assert anonymous == {"manual", "session", "systemInfo"}  # a visitor's session, as made
    caps = http.post(f"{api}/guest").json()["caps"]
    assert {"name": "echo", "interface": "Echo", "origin": "bundle"} in caps
    assert caps == http.get(f"{api}/caps").json()["caps"]
    assert http.get(f"{api}/caps/echo").json()["methods"][0]["name"] == "echo"
    good = http.post(
        f"{api}/calls", json={"cap": "echo", "method": "echo", "arguments": {"data": "hi"}}
    )
    assert good.status_code == 200 and good.json() == {"results": {"data": "hi"}}
    bad = http.post(
        f"{api}/calls", json={"cap": "counter", "method": "increment", "arguments": {"by": -1}}
    )
    assert bad.status_code == 400 and "outside UInt32" in bad.json()["error"]
    wrong_type = http.post(  # once this ended the shell, and so the VM
        f"{api}/calls",
        json={"cap": "logger", "method": "write", "arguments": {"level": [], "text": "x"}},
    )
    assert wrong_type.status_code == 400 and "level expects one of" in wrong_type.json()["error"]
    assert http.get(f"/api/sessions/{session}").json()["state"] == "running"
    raised = http.post(
        f"{api}/calls",
        json={
            "cap": "launcher",
            "method": "spawn",
            "arguments": {"name": "x", "binaryName": "nope", "grants": []},
        },
    )
    assert raised.status_code == 422
    assert raised.json()["kind"] == "capException" and raised.json()["type"] == "invalidArgument"
    unknown = http.post(f"{api}/calls", json={"cap": "echo", "method": "echo", "colour": "red"})
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]
    not_json = http.post(
        f"{api}/calls", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    huge = http.post(
        f"{api}/calls", content=b"x" * 20000, headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
    spawned = http.post(
        f"{api}/processes",
        json={
            "binary": "counter",
            "grants": {"stdio": {"client": "stdio"}, "counter": {"client": "counter"}},
        },
    )
    assert spawned.status_code == 200 and spawned.json()["pid"] > 0
    assert http.post(f"{api}/terminal/input", json={"data": "ps\r"}).status_code == 200
    text, offset = "", 0
    for _ in range(30):
        output = http.get(
            f"{api}/terminal/output", params={"offset": offset, "wait_ms": 2000}
        ).json()
        text, offset = text + output["data"], output["next_offset"]
        if "counter" in text.partition("BINARY")[2]:
            break
    assert "counter" in text.partition("BINARY")[2]  # `ps` lists the job the API spawned
    assert http.get("/api/sessions/no-such-session/caps").status_code == 404
    assert http.delete(f"/api/sessions/{session}").status_code == 204
    paths = http.get("/openapi.json").json()["paths"]
    assert "/api/sessions/{session_id}/calls" in paths
    assert "/api/sessions/{session_id}/caps/{name}" in paths


def test_the_stdio_server_can_start_its_own(server):
    """No --url: an embedded server with its own pool, stopped when stdin closes."""

    async def scenario():
        async with Client(stdio("--warm", "1", "--max-vms", "1")) as client:
            session = await new_session(client)
            caps = await tool(client, "list_caps", **session)
            await tool(client, "end_session", **session)
            return caps

    failed, caps = asyncio.run(scenario())
    assert not failed and any(c["name"] == "launcher" for c in caps["caps"])


# --- agent mode inside a QEMU session: the server's model, over the control channel ----------

ASK = "allow? [y]es [n]o [a]lways [d]eny always:"


class Terminal:
    """A session's terminal through the REST API, as an agent's host would read it."""

    def __init__(self, server, session: str) -> None:
        self.http, self.api = server.http, f"/api/sessions/{session}"
        self.text, self.offset = "", 0

    def type(self, data: str) -> None:
        self.http.post(f"{self.api}/terminal/input", json={"data": data}).raise_for_status()

    def until(self, done, what: str, timeout: float = 90) -> str:
        start = len(self.text)
        deadline = time.monotonic() + timeout
        while not done(self.text[start:]):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what}; the screen: {self.text[-800:]!r}")
            params = {"offset": self.offset, "wait_ms": 1000}
            output = self.http.get(f"{self.api}/terminal/output", params=params).json()
            self.text += output["data"]
            self.offset = output["next_offset"]
        return self.text[start:]


def test_agent_mode_in_a_session_uses_the_servers_model(server):
    session = server.new_session()["id"]
    terminal = Terminal(server, session)
    terminal.until(lambda text: "capos> " in text, "prompt")
    terminal.type("guest\r")  # a visitor's session starts anonymous: the demo bundle
    terminal.until(lambda text: "guest@capos> " in text, "the guest prompt")
    terminal.type("agent counter\r")
    banner = terminal.until(lambda text: "agent> " in text, "agent mode")
    assert "SmolLM2-135M-Instruct is answering" in banner
    assert "on the playground's server" in banner
    terminal.type("increment the counter by 2\r")
    asked = terminal.until(lambda text: ASK in text, "a proposed call")
    assert re.search(r"\[call_\w+\] counter\.(increment|get)\(", asked), asked
    assert "] value = " not in asked  # nothing ran while it asked
    terminal.type("y\r")
    terminal.until(lambda text: "] value = " in text, "the call's result")
    while True:  # say no to any further call, until agent mode prompts again
        rest = terminal.until(lambda text: ASK in text or "agent> " in text, "agent prompt")
        if "agent> " in rest:
            break
        terminal.type("n\r")
    terminal.type("exit\r")
    terminal.until(lambda text: "capos> " in text, "the shell's prompt")
    counter = server.http.post(
        f"/api/sessions/{session}/calls", json={"cap": "counter", "method": "get"}
    ).json()
    assert counter["results"]["value"] > 0  # the call the person allowed ran in the VM
    server.http.delete(f"/api/sessions/{session}")


def test_a_model_generation_is_a_task_the_client_polls_or_cancels(server):
    tasks = ModernWire(server, {"io.modelcontextprotocol/tasks": {}})
    created = tasks.call("create_session")["structuredContent"]
    held = {"owner": created["owner"], "session": created["id"]}
    try:
        asked = tasks.call("generate", **held, prompt="Name three colours.", max_tokens=32)
        done = tasks.settled(asked["taskId"])["result"] if asked["resultType"] == "task" else asked
        answer = done["structuredContent"]
        assert answer["text"].strip() and answer["stop"] in ("stop", "length"), answer
        assert answer["usage"]["completionTokens"] > 0

        story = tasks.call(
            "generate", **held, prompt="Tell a very long story about a robot.", max_tokens=1024
        )
        assert story["resultType"] == "task" and story["status"] == "working"
        assert tasks.task(story["taskId"], "cancel")["result"]["resultType"] == "complete"
        assert tasks.settled(story["taskId"])["status"] == "cancelled"

        empty = tasks.call("generate", **held, prompt="   ")
        assert (
            empty["isError"] and "prompt is empty" in empty["structuredContent"]["error"]["message"]
        )
        none = tasks.call("generate", **held, prompt="hi", cap="echo")
        assert none["isError"], none  # echo is no LanguageModel: the shell refuses the call
    finally:
        tasks.call("end_session", **held)

    rest = server.new_session()["id"]  # a REST session starts anonymous: no model yet
    assert server.http.post(f"/api/sessions/{rest}/guest").status_code == 200
    said = server.http.post(
        f"/api/sessions/{rest}/generate", json={"prompt": "Say hi.", "max_tokens": 64}
    )
    assert said.status_code == 200 and said.json()["usage"]["completionTokens"] > 0, said.text
    too_long = server.http.post(f"/api/sessions/{rest}/generate", json={"prompt": "x" * 5000})
    assert too_long.status_code == 400 and too_long.json()["kind"] == "input"
    server.http.delete(f"/api/sessions/{rest}")
