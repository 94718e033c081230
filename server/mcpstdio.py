"""`capos-playground mcp`: the MCP server over stdio, for agents that start their tools.

The tools live once, in the server's `/mcp` (server/mcpserver.py). This
command joins the SDK's two transports: JSON-RPC messages from stdin go
to a server's streamable HTTP endpoint and its answers go to stdout,
unchanged. On HTTP a request also names its protocol revision (and, from
2026-07-28, its method and target) in headers; over stdio only the message
says, so the bridge writes those headers from it (`_Headers`).

With `--url` the endpoint is a running server's; without, the command starts one
in this process (the QEMU pool included) on a free loopback port, and
stops it when stdin closes. stdout carries MCP only: everything for a
person goes to stderr.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable

import anyio
import httpx
import uvicorn
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
)
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp.types import JSONRPCRequest, JSONRPCResponse
from mcp_types import PROTOCOL_VERSION_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from server.mcpserver import PATH
from server.settings import Settings

START_TIMEOUT_S = 120.0  # the first start may build the guest image


class ServerFailed(Exception):
    """The server's endpoint cannot be reached, or broke off: the bridge ends."""


async def bridge(url: str) -> int:
    """Relay MCP between stdio and `url` until stdin closes; the command's exit status."""
    try:  # fail now, plainly, rather than once the agent's first message is stuck
        async with httpx.AsyncClient(timeout=10) as client:
            await client.get(url)  # any answer (405 here) shows a server is there
    except httpx.HTTPError as exc:
        return _failed(f"cannot reach {url}: {exc or type(exc).__name__}")
    failures: list[BaseException] = []
    try:
        async with (
            stdio_server() as (from_agent, to_agent),
            streamable_http_client(url) as (from_server, to_server),
            anyio.create_task_group() as tasks,
        ):
            headers = _Headers()
            tasks.start_soon(_relay, from_server, to_agent, "the server", headers.learn, True)
            await _relay(from_agent, to_server, "the agent", headers.stamp, False)
            tasks.cancel_scope.cancel()  # stdin closed: the agent is done
    except* (ServerFailed, httpx.HTTPError) as failed:
        failures.extend(failed.exceptions)
    return _failed(f"the server failed: {failures[0]}") if failures else 0


def _failed(why: str) -> int:
    print(
        f"capos-playground mcp: {why} (is `capos-playground serve` running there? "
        "or leave out --url to start one here)",
        file=sys.stderr,
    )
    return 1


class _Headers:
    """What the SDK's HTTP client would send with each message, written from the message.

    A 2026-07-28 request names its revision in `_meta`, and HTTP wants it again in
    Mcp-Protocol-Version with Mcp-Method and Mcp-Name (the server refuses a request whose
    headers disagree with its body). An older client names its revision once, in the
    `initialize` answer; every later request carries it in Mcp-Protocol-Version."""

    def __init__(self) -> None:
        self.handshake_version: str | None = None
        self._initialize_ids: set[str | int] = set()

    def stamp(self, message: SessionMessage) -> SessionMessage:
        request = message.message
        if not isinstance(request, JSONRPCRequest):
            return message
        params = request.params or {}
        meta = params.get("_meta")
        version = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
        if version in MODERN_PROTOCOL_VERSIONS:
            headers = {MCP_PROTOCOL_VERSION_HEADER: version, MCP_METHOD_HEADER: request.method}
            name = params.get(NAME_BEARING_METHODS.get(request.method, ""))
            if isinstance(name, str):
                headers[MCP_NAME_HEADER] = encode_header_value(name)
        elif request.method == "initialize":
            self._initialize_ids.add(request.id)
            return message
        elif self.handshake_version is not None:
            headers = {MCP_PROTOCOL_VERSION_HEADER: self.handshake_version}
        else:
            return message
        return SessionMessage(request, ClientMessageMetadata(headers=headers))

    def learn(self, message: SessionMessage) -> SessionMessage:
        answer = message.message
        if isinstance(answer, JSONRPCResponse) and answer.id in self._initialize_ids:
            self._initialize_ids.discard(answer.id)
            version = answer.result.get("protocolVersion")
            self.handshake_version = version if isinstance(version, str) else None
        return message


async def _relay(
    source: ReadStream[SessionMessage | Exception],
    sink: WriteStream[SessionMessage],
    who: str,
    passing: Callable[[SessionMessage], SessionMessage],
    fatal: bool,
) -> None:
    """Pass messages on, through `passing`. A transport error from the server ends the
    bridge; one from the agent (a line that is not JSON-RPC) is reported, and the bridge
    goes on."""
    async for message in source:
        if isinstance(message, Exception):
            if fatal:
                raise ServerFailed(str(message))
            print(f"capos-playground mcp: unusable message from {who}: {message}", file=sys.stderr)
            continue
        await sink.send(passing(message))


async def embedded(settings: Settings) -> int:
    """Serve `settings` on a free loopback port and bridge stdio to its /mcp."""
    from server.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    async with asyncio.TaskGroup() as tasks:
        serving = tasks.create_task(server.serve())
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while not server.started:
                    if serving.done():
                        return 1  # it failed to start and said why on stderr
                    await asyncio.sleep(0.05)
            print(
                f"capos-playground mcp: serving on http://127.0.0.1:{port}/ "
                "(open a session's `watch` path there to watch it)",
                file=sys.stderr,
                flush=True,
            )
            return await bridge(f"http://127.0.0.1:{port}{PATH}")
        finally:
            server.should_exit = True
