"""The agent REST API: a session's caps, typed calls, spawns and terminal, over HTTP.

The same operations as the MCP tools (server/agents.py), documented by the
OpenAPI page at /docs. A REST caller holds a session by its id, the secret
POST /api/sessions returned, or a tab session by an agent link's token in its
place (server/agents.py). Errors are `{"error": message, "kind": ...,
"type": ...}` with the status `AgentError.kind` maps to, and Retry-After
where waiting helps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from server.admission import client_of
from server.agentanswers import (
    CallAnswer,
    CapDescription,
    CapsAnswer,
    GenerateAnswer,
    InputAnswer,
    OutputAnswer,
    SpawnAnswer,
)
from server.agents import STATUS, AgentError, Agents, Caller
from server.apierror import NO_STORE, error
from server.jsonbody import BadBody, read_unparsed

MAX_BODY = 16 * 1024


class CallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cap: str = Field(description="a cap's name, from GET .../caps", examples=["counter"])
    method: str = Field(description="one of its methods", examples=["increment"])
    arguments: dict[str, Any] = Field(
        default_factory=dict,
        description='the params, checked against the schema; a cap is {"$cap": "name"}',
        examples=[{"by": 1}],
    )
    bind: str = Field("", description="keep caps in the results under this name")


class SpawnRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    binary: str = Field(examples=["counter"])
    grants: dict[str, Any] = Field(
        default_factory=dict,
        description='"capName" copies, {"move": n} moves, {"client": n} a client facet '
        '({"client": "stdio"}: the terminal), {"new": "Interface"} a fresh endpoint',
        examples=[{"stdio": {"client": "stdio"}, "counter": {"client": "counter"}}],
    )


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(max_length=4096, examples=["Say hello in five words."])
    system: str = Field("", max_length=4096, description="a system message")
    max_tokens: int = Field(256, ge=1, le=1024)
    cap: str = Field("model", description="a LanguageModel cap the shell holds")


class InputRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str = Field(description='keystrokes; end a line with "\\r"', examples=["help\r"])


class ErrorBody(BaseModel):
    error: str = Field(description="what went wrong, and what to do")
    kind: str = Field(description="how it failed: " + ", ".join(STATUS))
    type: str | None = Field(None, description="a CapException's type, or a transport code")
    retry_after: int | None = Field(None, description="seconds to wait before trying again")


def _errors() -> dict[int | str, dict[str, Any]]:
    """Every error status, documented with the kinds that answer it."""
    kinds: dict[int, list[str]] = {}
    for kind, status in STATUS.items():
        kinds.setdefault(status, []).append(kind)
    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": "kind: " + " or ".join(names)}
        for status, names in sorted(kinds.items())
    }
    errors[413] = {"model": ErrorBody, "description": f"the body is over {MAX_BODY} bytes"}
    return errors


class BoundedRoute(APIRoute):
    """Refuses a body over MAX_BODY (413) while it streams in, and JSON nested too deep
    (400), before FastAPI parses it."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            try:
                body = await read_unparsed(request, MAX_BODY)
            except BadBody as exc:
                return _error(exc.status, "input", str(exc))
            request._body = body  # what FastAPI's handler reads
            return await handler(request)

        return bounded


def _error(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    retry = extra.get("retry_after")
    headers = {"retry-after": str(retry)} if retry is not None else None
    return error(status, message, headers, kind=kind, **extra)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body or query that does not fit the model: 400, naming each field."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
        for e in exc.errors()
    )
    return _error(400, "input", f"the request does not fit: {problems}")


def agents_of(request: Request) -> Agents:
    """The running server's agent operations (the lifespan's state); 503 before and after."""
    agents = getattr(request.state, "agents", None)
    if agents is None:
        raise AgentError("unavailable", "the server is starting or stopping; try again shortly")
    return agents


def router() -> APIRouter:
    api = APIRouter(
        prefix="/api/sessions/{session_id}",
        tags=["agents"],
        route_class=BoundedRoute,
        responses=_errors(),
    )

    def caller(request: Request) -> Caller:
        client = client_of(request)
        return Caller(f"rest:{client}", owns_sessions=False, client=client)

    async def answer(request: Request, operation: Callable[[Agents], Awaitable[dict]]) -> Response:
        try:
            return JSONResponse(await operation(agents_of(request)), headers=NO_STORE)
        except AgentError as exc:
            extra = {k: v for k, v in exc.as_dict().items() if k not in ("kind", "message")}
            return _error(exc.status, exc.kind, exc.message, **extra)

    @api.get("/caps", summary="The caps the session's shell holds", response_model=CapsAnswer)
    async def list_caps(session_id: str, request: Request) -> Response:
        return await answer(request, lambda agents: agents.list_caps(caller(request), session_id))

    @api.post(
        "/guest",
        summary="Log the session's shell in as guest: the demo bundle",
        response_model=CapsAnswer,
    )
    async def guest(session_id: str, request: Request) -> Response:
        """A session's shell starts anonymous, holding its terminal, its session, the system's
        info and manual; as guest it holds a launcher, the demo services and a monitor too."""
        return await answer(request, lambda agents: agents.guest(caller(request), session_id))

    @api.get(
        "/caps/{name}",
        summary="A held cap's methods, as JSON Schema",
        response_model=CapDescription,
    )
    async def describe_cap(session_id: str, name: str, request: Request) -> Response:
        return await answer(
            request, lambda agents: agents.describe_cap(caller(request), session_id, name)
        )

    @api.post("/calls", summary="Call a method on a held cap", response_model=CallAnswer)
    async def call_method(session_id: str, call: CallRequest, request: Request) -> Response:
        return await answer(
            request,
            lambda agents: agents.call_method(
                caller(request), session_id, call.cap, call.method, call.arguments, call.bind
            ),
        )

    @api.post(
        "/processes",
        summary="Spawn a process with exactly the grants named",
        response_model=SpawnAnswer,
    )
    async def spawn(session_id: str, spawn: SpawnRequest, request: Request) -> Response:
        return await answer(
            request,
            lambda agents: agents.spawn(caller(request), session_id, spawn.binary, spawn.grants),
        )

    @api.post(
        "/generate",
        summary="Ask the session's language model, and read the whole completion",
        response_model=GenerateAnswer,
    )
    async def generate(session_id: str, body: GenerateRequest, request: Request) -> Response:
        return await answer(
            request,
            lambda agents: agents.generate(
                caller(request), session_id, body.prompt, body.system, body.max_tokens, body.cap
            ),
        )

    @api.post(
        "/terminal/input", summary="Type into the session's terminal", response_model=InputAnswer
    )
    async def terminal_write(session_id: str, body: InputRequest, request: Request) -> Response:
        return await answer(
            request, lambda agents: agents.terminal_write(caller(request), session_id, body.data)
        )

    @api.get(
        "/terminal/output", summary="Terminal output from an offset", response_model=OutputAnswer
    )
    async def terminal_read(
        session_id: str,
        request: Request,
        offset: int | None = None,
        max_bytes: int = 16 * 1024,
        wait_ms: int = 0,
    ) -> Response:
        """Output from `offset` (omitted: the oldest byte kept); read on from `next_offset`.
        Waits up to `wait_ms` (at most 10,000) for output, and returns at most `max_bytes`
        (at most 65,536)."""
        return await answer(
            request,
            lambda agents: agents.terminal_read(
                caller(request), session_id, offset, max_bytes, wait_ms
            ),
        )

    return api
