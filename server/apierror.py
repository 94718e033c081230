"""How the JSON APIs refuse: `{"error": message}`, never cached, and a plain 503 from
every route whose part of the server (the share hub, the QEMU sessions) is not running."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

NO_STORE = {"cache-control": "no-store"}
Part = TypeVar("Part")


def error(status: int, message: str, headers: dict | None = None, **fields: Any) -> JSONResponse:
    return JSONResponse(
        {"error": message, **fields}, status, headers={**NO_STORE, **(headers or {})}
    )


def needing(
    part_of: Callable[[], Part | None], missing: str
) -> Callable[[Callable[[Request, Part], Awaitable[Response]]], Callable[..., Awaitable[Response]]]:
    """A decorator for handlers that take the running part as their second argument;
    while it is not there, they answer 503 with `missing`."""

    def wrap(
        handler: Callable[[Request, Part], Awaitable[Response]],
    ) -> Callable[..., Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            part = part_of()
            if part is None:
                return error(503, missing)
            return await handler(request, part)

        # Not functools.wraps: FastAPI reads the signature, which must stay (request).
        endpoint.__name__, endpoint.__doc__ = handler.__name__, handler.__doc__
        return endpoint

    return wrap
