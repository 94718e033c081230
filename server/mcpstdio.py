"""`capos-playground mcp`: the MCP server over stdio, for agents that start their tools.

The tools live once, in the server's `/mcp` (server/mcpserver.py). This
command joins the SDK's two transports: JSON-RPC messages from stdin go
to a server's streamable HTTP endpoint and its answers go to stdout,
unchanged. With `--url` that is a running server; without, it starts one
in this process (the QEMU pool included) on a free loopback port, and
stops it when stdin closes. stdout carries MCP only: everything for a
person goes to stderr.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import anyio
import httpx
import uvicorn
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

from server.mcpserver import PATH
from server.settings import Settings

START_TIMEOUT_S = 120.0  # the first start may build the guest image


class ServerFailed(Exception):
    """The server's endpoint cannot be reached, or broke off: the bridge ends."""


async def bridge(url: str) -> int:
    """Relay MCP between stdio and `url` until stdin closes; the command's exit status."""
    try:  # fail now, plainly, rather than once the agent's first message is stuck
        async with httpx.AsyncClient(timeout=10) as client:
            await client.get(url, headers={"accept": "text/event-stream"})
    except httpx.HTTPError as exc:
        return _failed(f"cannot reach {url}: {exc or type(exc).__name__}")
    failures: list[BaseException] = []
    try:
        async with (
            stdio_server() as (from_agent, to_agent),
            streamable_http_client(url) as (from_server, to_server, _session_id),
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(_relay, from_server, to_agent, "the server", True)
            await _relay(from_agent, to_server, "the agent", False)
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


async def _relay(
    source: ObjectReceiveStream[SessionMessage | Exception],
    sink: ObjectSendStream[SessionMessage],
    who: str,
    fatal: bool,
) -> None:
    """Pass messages on. A transport error from the server ends the bridge; one from the
    agent (a line that is not JSON-RPC) is reported, and the bridge goes on."""
    async for message in source:
        if isinstance(message, Exception):
            if fatal:
                raise ServerFailed(str(message))
            print(f"capos-playground mcp: unusable message from {who}: {message}", file=sys.stderr)
            continue
        await sink.send(message)


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
