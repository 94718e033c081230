"""How the JSON APIs refuse: `{"error": message}`, never cached, and a plain 503 from
every route whose part of the server (the share hub, the QEMU sessions) is not running.

The running parts are the lifespan's state (server/app.py): `part(connection, name)`
reads one, None while the app is not running or the part is off."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

NO_STORE = {"cache-control": "no-store"}


def error(status: int, message: str, headers: dict | None = None, **fields: Any) -> JSONResponse:
    return JSONResponse(
        {"error": message, **fields}, status, headers={**NO_STORE, **(headers or {})}
    )


def part(connection: HTTPConnection, name: str) -> Any:
    """A running part of the server (`directory`, `hosting`, `hub`, `model`, ...), or None."""
    return getattr(connection.state, name, None)


def needing(
    name: str, missing: str
) -> Callable[[Callable[[Request, Any], Awaitable[Response]]], Callable[..., Awaitable[Response]]]:
    """A decorator for handlers that take the running part `name` as their second argument;
    while it is not there, they answer 503 with `missing`."""

    def wrap(
        handler: Callable[[Request, Any], Awaitable[Response]],
    ) -> Callable[..., Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            running = part(request, name)
            if running is None:
                return error(503, missing)
            return await handler(request, running)

        # Not functools.wraps: FastAPI reads the signature, which must stay (request).
        endpoint.__name__, endpoint.__doc__ = handler.__name__, handler.__doc__
        return endpoint

    return wrap
