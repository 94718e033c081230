"""Reading a small JSON object from a request body, with a clear error for anything else."""

from __future__ import annotations

import json
from typing import TypeGuard

from starlette.requests import Request

MAX_BODY = 4096


class BadBody(Exception):
    """The body is not what the endpoint takes; `status` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def is_int(value: object) -> TypeGuard[int]:
    """A JSON integer (Python's bool is an int, JSON's true is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


async def read_object(request: Request, accepted: set[str]) -> dict:
    """The body as a JSON object with only `accepted` fields (an empty body is {})."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadBody(f"the body may be at most {MAX_BODY} bytes", 413)
    try:
        params = json.loads(body or b"{}")
    except ValueError as exc:
        raise BadBody(f"the body must be JSON: {exc}") from None
    if not isinstance(params, dict):
        raise BadBody("the body must be a JSON object")
    unknown = set(params) - accepted
    if unknown:
        raise BadBody(f"unknown fields {sorted(unknown)}; accepted: {sorted(accepted)}")
    return params
