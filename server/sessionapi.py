"""The sessions API: create, inspect and end server-hosted sessions.

POST   /api/sessions         {"backend": "qemu"} -> 201 {"id", "terminal", ...}
                             503 + Retry-After when no VM is free (never waits)
GET    /api/sessions/{id}    the session's state (an ended one says why)
DELETE /api/sessions/{id}    end it: its VM is shut down
POST   /api/sessions/{id}/fork  -> 201 a new session whose VM is a copy of this one's as it
                             runs now (its id is the new session's own credential); 429 over
                             the owner's limits, 503 + Retry-After when no VM slot is free
GET    /api/pool             the warm pool's counts
"""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.admission import Refused
from server.apierror import NO_STORE, error, needing, part
from server.hosting import QemuHosting
from server.jsonbody import BadBody, read_object
from server.pool import PoolFull
from server.sessions.directory import SessionDirectory
from server.sessions.live import SessionError
from server.sessions.qemu import QemuSession


def routes() -> list[APIRoute]:
    needs_sessions = needing(
        "hosting",
        "server-hosted sessions are off on this server "
        "(start it with `capos-playground serve`, which runs the QEMU pool)",
    )

    @needs_sessions
    async def create(request: Request, hosting: QemuHosting) -> Response:
        admission = hosting.admission
        try:
            params = await read_object(request, {"backend"})
        except BadBody as exc:
            return error(exc.status, str(exc))
        if not isinstance(params.get("backend", "qemu"), str):
            return error(400, 'the body must be a JSON object like {"backend": "qemu"}')
        try:
            client = admission.client(request)
            session = hosting.create(params.get("backend", "qemu"), client)
        except PoolFull as exc:
            return error(503, str(exc), {"retry-after": str(exc.retry_after)})
        except Refused as exc:
            return error(exc.status, str(exc), exc.headers)
        except SessionError as exc:
            retry = {"retry-after": "30"} if exc.status == 503 else {}
            return error(exc.status, str(exc), retry)
        return JSONResponse(session.info(), 201, headers=NO_STORE)

    def find(request: Request, hosting: QemuHosting) -> QemuSession | None:
        directory: SessionDirectory = part(request, "directory")
        return directory.get(request.path_params["session_id"], QemuSession)

    @needs_sessions
    async def show(request: Request, hosting: QemuHosting) -> Response:
        session = find(request, hosting)
        if session is None:
            return error(404, "no such session (it never existed or was forgotten)")
        return JSONResponse(session.info(), headers=NO_STORE)

    @needs_sessions
    async def delete(request: Request, hosting: QemuHosting) -> Response:
        session = find(request, hosting)
        if session is None:
            return error(404, "no such session (it never existed or was forgotten)")
        session.end("ended by its owner")
        return Response(status_code=204, headers=NO_STORE)

    @needs_sessions
    async def fork(request: Request, hosting: QemuHosting) -> Response:
        source = find(request, hosting)
        if source is None:
            return error(404, "no such session (it never existed or was forgotten)")
        try:
            session, cost = await hosting.fork(source)
        except PoolFull as exc:
            return error(503, str(exc), {"retry-after": str(exc.retry_after)})
        except Refused as exc:
            return error(exc.status, str(exc), exc.headers)
        except SessionError as exc:
            return error(exc.status, str(exc))
        return JSONResponse({**session.info(), "fork": cost}, 201, headers=NO_STORE)

    @needs_sessions
    async def pool(request: Request, hosting: QemuHosting) -> Response:
        return JSONResponse(hosting.pool.stats(), headers=NO_STORE)

    # FastAPI routes (the handlers read the request themselves) so /docs lists them.
    def route(path: str, endpoint, method: str, summary: str, **extra) -> APIRoute:
        return APIRoute(
            path, endpoint, methods=[method], summary=summary, tags=["sessions"], **extra
        )

    return [
        route(
            "/api/sessions",
            create,
            "POST",
            "Create a session on a warm VM (503 and Retry-After when none is free)",
            status_code=201,
            openapi_extra={"requestBody": _CREATE_BODY},
        ),
        route("/api/sessions/{session_id}", show, "GET", "A session's state (why, once ended)"),
        route(
            "/api/sessions/{session_id}",
            delete,
            "DELETE",
            "End a session: its VM shuts down",
            status_code=204,
        ),
        route(
            "/api/sessions/{session_id}/fork",
            fork,
            "POST",
            "Fork a running session: a new session on a copy of its VM (the source pauses)",
            status_code=201,
        ),
        route("/api/pool", pool, "GET", "The warm pool's counts"),
    ]


_CREATE_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"backend": {"type": "string", "enum": ["qemu"], "default": "qemu"}},
                "additionalProperties": False,
            }
        }
    }
}
