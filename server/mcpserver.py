"""The MCP server: server-hosted capOS sessions as typed tools, at `/mcp` (streamable HTTP).

Built on the official SDK's FastMCP. Every tool is one operation of
server/agents.py, so MCP and the REST API cannot drift apart; results are
structured content (a JSON object), and a failure is a tool error whose
structured content is `{"error": {"kind", "type", "message"}}`. Each MCP
session is one client: it owns the capOS sessions it creates and may use
no other. `capos-playground mcp` offers the same server over stdio
(server/mcpstdio.py). Resources: the schema files and the manual pages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import anyio
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.resources import TextResource
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent
from pydantic import AnyUrl, Field
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kernel.manual import build_corpus
from server.admission import Refused, admission_of, client_of
from server.agents import AgentError, Agents, Caller
from server.apierror import error
from server.jsonbody import BadBody, read_unparsed
from server.origin import HostAllowList
from server.settings import REPO_ROOT

PATH = "/mcp"
MAX_BODY = 64 * 1024
MAX_CLIENTS = 1000  # MCP sessions at once (each idle one ends after 30 minutes)
SCHEMA_FILES = ("capos.capnp", "manifest.capnp", "control.capnp", "demos.capnp")
INSTRUCTIONS = """\
capOS Playground runs capOS-like systems in QEMU VMs. Every resource in one is a typed
Cap'n Proto capability. Start with create_session, then list_caps to see what the session's
shell holds, describe_cap for a cap's methods as JSON Schema, and call_method to call one.
You hold exactly what that shell holds: the same checks as a person typing at it.
terminal_write and terminal_read drive the shell's terminal itself (try `help`).
A session's id is its owner's secret credential: to show a person the session, give them
its `watch` link (read-only), never the id.
Read the manual pages (capos://manual/...) for the concepts."""

Session = Annotated[
    str, Field(description="the session id create_session returned (a secret: keep it)")
]


def _agents(ctx: Context) -> Agents:
    """The running server's agent operations, from the HTTP request's lifespan state."""
    request = ctx.request_context.request
    agents = getattr(request.state, "agents", None) if request is not None else None
    if agents is None:
        raise AgentError("unavailable", "the server is starting or stopping; try again shortly")
    return agents


async def _result(ctx: Context, operation: Callable[[Agents], Awaitable[dict]]) -> CallToolResult:
    """An operation's answer as structured content, or its AgentError as a tool error."""
    try:
        value = await operation(_agents(ctx))
    except AgentError as exc:
        error = {"error": exc.as_dict()}
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(error))],
            structuredContent=error,
            isError=True,
        )
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(value, ensure_ascii=False))],
        structuredContent=value,
    )


class _ClosedStreamNoise(logging.Filter):
    """mcp 1.30 logs a traceback whenever a client ends its session while its GET stream
    is open (the stream is closed under its own writer). Nothing is wrong: drop that record."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(error, anyio.ClosedResourceError)
            and record.getMessage() == "Error in standalone SSE writer"
        )


logging.getLogger("mcp.server.streamable_http").addFilter(_ClosedStreamNoise())


def _caller(ctx: Context) -> Caller:
    request = ctx.request_context.request
    session = request.headers.get("mcp-session-id") if request is not None else None
    address = client_of(request) if request is not None else "unknown"
    return Caller(f"mcp:{session or id(ctx.session)}", owns_sessions=True, client=address)


def build(allow: HostAllowList) -> FastMCP:
    hosts, origins = allow.patterns()
    mcp = FastMCP(
        "capos-playground",
        instructions=INSTRUCTIONS,
        streamable_http_path=PATH,
        json_response=True,  # one JSON answer per request: no event stream to hold open
        log_level="WARNING",  # the SDK configures logging; keep requests out of the server's log
        max_request_body_size=MAX_BODY,
        max_sessions=MAX_CLIENTS,
        # server/guard.py checks Host (on the exact port) and Origin for every route; the
        # SDK checks them again here, from the same allow-list.
        transport_security=TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins),
    )

    @mcp.tool()
    async def create_session(
        ctx: Context,
        backend: Annotated[str, Field(description='where it runs: "qemu" (a VM)')] = "qemu",
    ) -> CallToolResult:
        """Boot a capOS session (a warm VM: about 20 ms) owned by this client.
        Returns {"id", "watch", ...}: pass id as `session` to every other tool. The id is
        this client's secret credential for the session: never show or share it. A person
        can watch the session live, read-only, at the `watch` path of this server (a view
        link, expiring at `watch_expires_at`)."""
        return await _result(ctx, lambda agents: agents.create_session(_caller(ctx), backend))

    @mcp.tool()
    async def list_caps(ctx: Context, session: Session) -> CallToolResult:
        """The caps the session's shell holds: name, interface, and where each came from."""
        return await _result(ctx, lambda agents: agents.list_caps(_caller(ctx), session))

    @mcp.tool()
    async def describe_cap(
        ctx: Context, session: Session, cap: Annotated[str, Field(description="a cap's name")]
    ) -> CallToolResult:
        """A held cap's interface: each method with its params and results as JSON Schema
        (derived from the capnp schema). A cap-typed value is written {"$cap": "name"}."""
        return await _result(ctx, lambda agents: agents.describe_cap(_caller(ctx), session, cap))

    @mcp.tool()
    async def call_method(
        ctx: Context,
        session: Session,
        cap: Annotated[str, Field(description="a cap's name, from list_caps")],
        method: Annotated[str, Field(description="one of its methods, from describe_cap")],
        arguments: Annotated[
            dict[str, Any] | None,
            Field(description="the params as a JSON object, checked against the schema"),
        ] = None,
        bind: Annotated[
            str, Field(description="keep caps in the results under this name ('' releases them)")
        ] = "",
    ) -> CallToolResult:
        """Call a method on a held cap. Returns {"results": ...}; caps in the results are
        {"$cap": name} when kept with `bind`. A CapException or transport error is a tool
        error naming its kind."""
        return await _result(
            ctx,
            lambda agents: agents.call_method(_caller(ctx), session, cap, method, arguments, bind),
        )

    @mcp.tool()
    async def spawn(
        ctx: Context,
        session: Session,
        binary: Annotated[str, Field(description='a binary of the boot manifest, e.g. "counter"')],
        grants: Annotated[
            dict[str, Any] | None,
            Field(
                description='the child\'s caps, by the name it sees: "capName" copies a held '
                'cap, {"move": "capName"} moves it, {"client": "capName"} grants a client '
                'facet ({"client": "stdio"}: the shell\'s terminal), {"new": "Interface"} a '
                "fresh endpoint the child serves, whose client the shell keeps"
            ),
        ] = None,
    ) -> CallToolResult:
        """Start a process holding exactly the grants named (nothing else)."""
        return await _result(
            ctx, lambda agents: agents.spawn(_caller(ctx), session, binary, grants)
        )

    @mcp.tool()
    async def terminal_write(
        ctx: Context,
        session: Session,
        data: Annotated[str, Field(description='keystrokes; end a line with "\\r"')],
    ) -> CallToolResult:
        """Type into the session's terminal, as a person at it would."""
        return await _result(ctx, lambda agents: agents.terminal_write(_caller(ctx), session, data))

    @mcp.tool()
    async def terminal_read(
        ctx: Context,
        session: Session,
        offset: Annotated[
            int | None, Field(description="where to read from; omit for the oldest kept")
        ] = None,
        max_bytes: Annotated[int, Field(ge=1, le=65536)] = 16384,
        wait_ms: Annotated[
            int, Field(ge=0, le=10000, description="wait this long for output if there is none")
        ] = 0,
    ) -> CallToolResult:
        """Terminal output from `offset`: {"offset", "data", "next_offset", "reset",
        "ended"}; read on from next_offset. `reset`: the bytes asked for fell out of the
        scrollback, and data starts at the oldest byte kept."""
        return await _result(
            ctx,
            lambda agents: agents.terminal_read(_caller(ctx), session, offset, max_bytes, wait_ms),
        )

    @mcp.tool()
    async def monitor_snapshot(ctx: Context, session: Session) -> CallToolResult:
        """The whole system as its SystemMonitor sees it: processes, caps, endpoints,
        recent calls, logs and exits."""
        return await _result(ctx, lambda agents: agents.monitor_snapshot(_caller(ctx), session))

    @mcp.tool()
    async def end_session(ctx: Context, session: Session) -> CallToolResult:
        """End the session: its VM shuts down."""
        return await _result(ctx, lambda agents: agents.end_session(_caller(ctx), session))

    _add_resources(mcp)
    return mcp


def _add_resources(mcp: FastMCP) -> None:
    for name in SCHEMA_FILES:
        mcp.add_resource(
            TextResource(
                uri=AnyUrl(f"capos://schema/{name}"),
                name=name,
                description=f"the Cap'n Proto schema {name}",
                mime_type="text/plain",
                text=(REPO_ROOT / "schema" / name).read_text(encoding="utf-8"),
            )
        )
    for page in build_corpus():
        mcp.add_resource(
            TextResource(
                uri=AnyUrl(f"capos://manual/{page['section']}/{page['topic']}"),
                name=f"man {page['topic']}",
                description=page["summary"],
                mime_type="text/markdown",
                text=f"# {page['topic']}\n\n{page['summary']}\n\n{page['body']}",
            )
        )


class BoundedBody:
    """The MCP endpoint, refusing a body over MAX_BODY (413) as it streams in and JSON
    nested too deep (400) before the SDK parses it, with the same answers as every route.
    (Host, Origin and Content-Type were checked by server/guard.py, and again by the SDK.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await read_unparsed(Request(scope, receive), MAX_BODY)
        except BadBody as exc:
            await error(exc.status, str(exc))(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class SessionsPerClient:
    """At most `mcp_sessions` MCP sessions per client (server/admission.py): an
    `initialize` (a POST without Mcp-Session-Id) past that is refused with 429, so one
    address cannot fill the SDK's table of sessions and lock everyone else out.

    The SDK names a new session in its answer's Mcp-Session-Id header; a session counts
    while the SDK still holds it (its table, `_server_instances`, of the pinned SDK:
    ended, deleted and idled-out sessions leave it)."""

    def __init__(self, app: ASGIApp, mcp: FastMCP) -> None:
        self.app, self.mcp = app, mcp
        self._by_client: dict[str, set[str]] = {}

    def _open(self, client: str) -> set[str]:
        held = self.mcp.session_manager._server_instances
        mine = {s for s in self._by_client.get(client, set()) if s in held}
        if mine:
            self._by_client[client] = mine
        else:
            self._by_client.pop(client, None)
        return mine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = HTTPConnection(scope)
        admission = admission_of(connection)
        if admission is None or scope["method"] != "POST" or "mcp-session-id" in connection.headers:
            await self.app(scope, receive, send)
            return
        client = admission.client(connection)
        try:
            admission.check(
                "MCP sessions",
                len(self._open(client)),
                admission.limits.mcp_sessions,
                "end one (DELETE /mcp with its Mcp-Session-Id) or reuse it",
            )
        except Refused as refused:
            body = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32000, "message": str(refused)},
            }
            await JSONResponse(body, 429, headers=refused.headers)(scope, receive, send)
            return

        async def noting_the_session(message: Message) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers", []):
                    if name.lower() == b"mcp-session-id":
                        self._by_client.setdefault(client, set()).add(value.decode("latin-1"))
            await send(message)

        await self.app(scope, receive, noting_the_session)


def route(mcp: FastMCP) -> Route:
    """`/mcp`, served by the SDK's streamable HTTP transport; run `mcp.session_manager`
    for the app's lifetime."""
    endpoint = next(
        r for r in mcp.streamable_http_app().routes if isinstance(r, Route) and r.path == PATH
    )
    gated = BoundedBody(SessionsPerClient(endpoint.app, mcp))
    return Route(PATH, endpoint=gated, methods=["GET", "POST", "DELETE"])
