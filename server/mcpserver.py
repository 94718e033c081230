"""The MCP server: server-hosted capOS sessions as typed tools, at `/mcp` (streamable HTTP).

Built on the official SDK's MCPServer. It speaks the current revision
(2026-07-28: every request stands alone, no `initialize` and no
Mcp-Session-Id) and, for older clients, the handshake revisions
(2025-11-25, 2025-06-18, ...), also without a session: the SDK's stateless
mode. Every tool is one operation of server/agents.py, so MCP and the REST
API cannot drift apart; results are structured content (a JSON object, each
tool's described by its output schema: server/agentanswers.py), and
a failure is a tool error whose structured content is `{"error": {"kind",
"type", "message"}}`. With no MCP session to hang ownership on, a client
holds an owner token: create_session returns it, every later call carries it
as `owner` (or as its HTTP bearer authorization), and it reaches only the
sessions made with it. A visitor can hand their browser tab to an agent with an
agent link: the link (its address or token) is then the `session`, no owner
token is needed, and every tool but create_session and end_session works on
the tab, served by the tab's own shell over its relay (server/agents.py).
`capos-playground mcp` offers the same server over stdio
(server/mcpstdio.py). Resources: the schema files and the manual pages. Slow calls
become Tasks (server/mcptasks.py), and create_session comes with an MCP App that
shows the session live (server/mcpapp.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import TextResource
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, TextContent
from pydantic import Field
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kernel.manual import build_corpus
from server.admission import client_of
from server.agentanswers import (
    CallAnswer,
    CapDescription,
    CapsAnswer,
    EndAnswer,
    ForkAnswer,
    GenerateAnswer,
    InputAnswer,
    MonitorAnswer,
    OutputAnswer,
    SessionAnswer,
    SpawnAnswer,
)
from server.agents import (
    MAX_RECORDS,
    AgentError,
    Agents,
    Caller,
    new_owner_token,
    owner_caller,
)
from server.apierror import error
from server.jsonbody import BadBody, read_unparsed
from server.mcpapp import SESSION_APP, session_app
from server.mcptasks import ToolTasks
from server.origin import HostAllowList
from server.settings import REPO_ROOT

PATH = "/mcp"
MAX_BODY = 64 * 1024
LISTS_TTL_MS = 60 * 60 * 1000  # how long tools/list and resources/list stay fresh
SCHEMA_FILES = ("capos.capnp", "manifest.capnp", "control.capnp", "demos.capnp")
INSTRUCTIONS = """\
capOS Playground runs capOS-like systems in QEMU VMs. Every resource in one is a typed
Cap'n Proto capability. Start with create_session, then list_caps to see what the session's
shell holds, describe_cap for a cap's methods as JSON Schema, and call_method to call one.
You hold exactly what that shell holds: the same checks as a person typing at it.
terminal_write and terminal_read drive the shell's terminal itself (try `help`).
create_session returns an `owner` token: pass it as `owner` to every later call (and to
create_session, for a second session under the same token), or over HTTP as
`Authorization: Bearer <token>`. It and a session's id are
secret credentials: to show a person the session, give them its `watch` link
(read-only), never the id or the token.
A person may instead hand you their browser tab with an agent link (…/s/TOKEN): pass
the link as `session` and no `owner`; every tool but create_session and end_session works
on that tab, until its owner revokes the link.
Read the manual pages (capos://manual/...) for the concepts."""

Session = Annotated[
    str,
    Field(
        description="the session id create_session returned, or an agent link a person "
        "gave you to their browser tab (its address or token); a secret: keep it"
    ),
]
Owner = Annotated[
    str,
    Field(
        description="the owner token create_session returned (a secret: keep it); or "
        "leave it out and send the token as HTTP `Authorization: Bearer <token>`; not "
        "needed with an agent link"
    ),
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
            structured_content=error,
            is_error=True,
        )
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(value, ensure_ascii=False))],
        structured_content=value,
    )


def _address(ctx: Context) -> str:
    request = ctx.request_context.request
    return client_of(request) if isinstance(request, Request) else "unknown"


def _bearer(ctx: Context) -> str:
    """The owner token an HTTP client sends as its authorization, if it does."""
    request = ctx.request_context.request
    scheme, _, token = (request.headers.get("authorization", "") if request else "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _caller(ctx: Context, owner: str) -> Caller:
    """The client holding `owner` (or the bearer token); one holding neither reaches only
    tabs, through agent links."""
    return owner_caller(owner or _bearer(ctx), _address(ctx))


def build(tasks: ToolTasks) -> MCPServer:
    """The tools; `tasks` answers slow calls with tasks (server/mcptasks.py)."""
    mcp = MCPServer(
        "capos-playground",
        instructions=INSTRUCTIONS,
        extensions=[tasks, session_app()],
        # The tools, resources and their schemas change only with the server's version:
        # the same for everyone, so a client (or a cache between) may keep the lists.
        cache_hints={
            method: CacheHint(ttl_ms=LISTS_TTL_MS, scope="public")
            for method in ("tools/list", "resources/list")
        },
        log_level="WARNING",  # the SDK configures logging; keep requests out of the server's log
    )

    @mcp.tool(meta={"ui": {"resourceUri": SESSION_APP}})  # shown live by hosts with Apps
    async def create_session(
        ctx: Context,
        backend: Annotated[str, Field(description='where it runs: "qemu" (a VM)')] = "qemu",
        owner: Annotated[
            str,
            Field(
                description="an owner token you hold, for another session under it; "
                "leave it out and a new token comes back"
            ),
        ] = "",
    ) -> Annotated[CallToolResult, SessionAnswer]:
        """Boot a capOS session (a warm VM: about 20 ms) owned by this client.
        Returns {"id", "owner", "watch", ...}: pass id as `session` and owner as `owner` to
        every other tool. Both are this client's secret credentials: never show or share
        them. A person can watch the session live, read-only, at the `watch` path of this
        server (a view link, expiring at `watch_expires_at`). Its shell starts anonymous,
        as in capOS, and is logged in as guest before this returns, as a visitor's first
        step: it holds the guest bundle (a launcher, the demo services, a monitor)."""
        held = owner or _bearer(ctx)
        token = held or new_owner_token()

        async def create(agents: Agents) -> dict:
            caller = owner_caller(token, _address(ctx), new=not held)
            return {**await agents.create_session(caller, backend), "owner": token}

        return await _result(ctx, create)

    @mcp.tool()
    async def list_caps(
        ctx: Context, session: Session, owner: Owner = ""
    ) -> Annotated[CallToolResult, CapsAnswer]:
        """The caps the session's shell holds: name, interface, and where each came from."""
        return await _result(ctx, lambda agents: agents.list_caps(_caller(ctx, owner), session))

    @mcp.tool()
    async def describe_cap(
        ctx: Context,
        session: Session,
        cap: Annotated[str, Field(description="a cap's name")],
        owner: Owner = "",
    ) -> Annotated[CallToolResult, CapDescription]:
        """A held cap's interface: each method with its params and results as JSON Schema
        (derived from the capnp schema). A cap-typed value is written {"$cap": "name"}."""
        return await _result(
            ctx, lambda agents: agents.describe_cap(_caller(ctx, owner), session, cap)
        )

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
        owner: Owner = "",
    ) -> Annotated[CallToolResult, CallAnswer]:
        """Call a method on a held cap. Returns {"results": ...}; caps in the results are
        {"$cap": name} when kept with `bind`. A CapException or transport error is a tool
        error naming its kind."""
        return await _result(
            ctx,
            lambda agents: agents.call_method(
                _caller(ctx, owner), session, cap, method, arguments, bind
            ),
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
        wait: Annotated[
            bool,
            Field(
                description="answer once the program exits, with its exit code (a client "
                "with the Tasks extension gets a task to poll meanwhile)"
            ),
        ] = False,
        owner: Owner = "",
    ) -> Annotated[CallToolResult, SpawnAnswer]:
        """Start a process holding exactly the grants named (nothing else)."""
        return await _result(
            ctx, lambda agents: agents.spawn(_caller(ctx, owner), session, binary, grants, wait)
        )

    @mcp.tool()
    async def generate(
        ctx: Context,
        session: Session,
        prompt: Annotated[str, Field(description="what to ask the model", max_length=4096)],
        system: Annotated[str, Field(description="a system message", max_length=4096)] = "",
        max_tokens: Annotated[int, Field(ge=1, le=1024)] = 256,
        cap: Annotated[
            str, Field(description="a LanguageModel cap the shell holds, from list_caps")
        ] = "model",
        owner: Owner = "",
    ) -> Annotated[CallToolResult, GenerateAnswer]:
        """Ask the session's language model (the one its agent mode uses) and get the whole
        completion: {"text", "stop", "usage"}. A generation can take a minute on the local
        model: a client with the Tasks extension gets a task to poll or cancel meanwhile
        (cancelling stops the model)."""
        return await _result(
            ctx,
            lambda agents: agents.generate(
                _caller(ctx, owner), session, prompt, system, max_tokens, cap
            ),
        )

    @mcp.tool()
    async def terminal_write(
        ctx: Context,
        session: Session,
        data: Annotated[str, Field(description='keystrokes; end a line with "\\r"')],
        owner: Owner = "",
    ) -> Annotated[CallToolResult, InputAnswer]:
        """Type into the session's terminal, as a person at it would (with an agent link,
        into the owner's tab, as a drive link types)."""
        return await _result(
            ctx, lambda agents: agents.terminal_write(_caller(ctx, owner), session, data)
        )

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
        owner: Owner = "",
    ) -> Annotated[CallToolResult, OutputAnswer]:
        """Terminal output from `offset`: {"offset", "data", "next_offset", "reset",
        "ended"}; read on from next_offset. `reset`: the bytes asked for fell out of the
        scrollback, and data starts at the oldest byte kept."""
        return await _result(
            ctx,
            lambda agents: agents.terminal_read(
                _caller(ctx, owner), session, offset, max_bytes, wait_ms
            ),
        )

    @mcp.tool()
    async def monitor_snapshot(
        ctx: Context,
        session: Session,
        cap: Annotated[
            str, Field(description="a SystemMonitor cap the shell holds, from list_caps")
        ] = "monitor",
        max_calls: Annotated[
            int, Field(ge=0, le=MAX_RECORDS, description="recent calls to include")
        ] = 0,
        max_logs: Annotated[
            int, Field(ge=0, le=MAX_RECORDS, description="recent log records to include")
        ] = 0,
        owner: Owner = "",
    ) -> Annotated[CallToolResult, MonitorAnswer]:
        """What the shell's monitor cap sees: processes with their caps and ledgers,
        endpoints, recent calls, logs and exits. Only as much as that cap's scope (the
        manifest's `monitor`, or a narrower one made with monitor.subtree and kept with
        bind): the same view as `top` typed at the shell. The answer comes through the
        shell (at most 16 KiB), which the whole system nearly fills: ask for recent calls
        and logs (max_calls, max_logs) on a narrower view."""
        return await _result(
            ctx,
            lambda agents: agents.monitor_snapshot(
                _caller(ctx, owner), session, cap, max_calls, max_logs
            ),
        )

    @mcp.tool(meta={"ui": {"resourceUri": SESSION_APP}})
    async def fork_session(
        ctx: Context, session: Session, owner: Owner = ""
    ) -> Annotated[CallToolResult, ForkAnswer]:
        """Fork a running session: a new session whose VM is a copy of this one's now (the
        same shell, programs and screen; fresh entropy). The source pauses for a moment and
        runs on; the two share nothing after. Returns {"id", "owner", "watch", ...} like
        create_session: the fork's own id and owner token, for every call about it. Fork
        before a risky step and end the fork (end_session) if it goes wrong."""
        return await _result(ctx, lambda agents: agents.fork_session(_caller(ctx, owner), session))

    @mcp.tool()
    async def end_session(
        ctx: Context, session: Session, owner: Owner = ""
    ) -> Annotated[CallToolResult, EndAnswer]:
        """End the session: its VM shuts down. Refused for an agent link: a tab ends only
        when its owner closes it (or revokes the link, to cut the agent off)."""
        return await _result(ctx, lambda agents: agents.end_session(_caller(ctx, owner), session))

    _add_resources(mcp)
    return mcp


def _add_resources(mcp: MCPServer) -> None:
    for name in SCHEMA_FILES:
        mcp.add_resource(
            TextResource(
                uri=f"capos://schema/{name}",
                name=name,
                description=f"the Cap'n Proto schema {name}",
                mime_type="text/plain",
                text=(REPO_ROOT / "schema" / name).read_text(encoding="utf-8"),
            )
        )
    for page in build_corpus():
        mcp.add_resource(
            TextResource(
                uri=f"capos://manual/{page['section']}/{page['topic']}",
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


def route(mcp: MCPServer, allow: HostAllowList) -> Route:
    """`/mcp`, served by the SDK's streamable HTTP transport; run `mcp.session_manager`
    for the app's lifetime."""
    hosts, origins = allow.patterns()
    app = mcp.streamable_http_app(
        streamable_http_path=PATH,
        json_response=True,  # one JSON answer per request: no event stream to hold open
        stateless_http=True,  # older clients too: nothing kept between requests
        max_request_body_size=MAX_BODY,
        # server/guard.py checks Host (on the exact port) and Origin for every route; the
        # SDK checks them again here, from the same allow-list.
        transport_security=TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins),
    )
    endpoint = next(r for r in app.routes if isinstance(r, Route) and r.path == PATH)
    # POST only: with no session there is nothing to end (DELETE) and nothing to push on a
    # GET stream, which would only hold a connection open; both are 405, as the spec allows.
    return Route(PATH, endpoint=BoundedBody(endpoint.app), methods=["POST"])
