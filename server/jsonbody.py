"""Reading JSON from outside (request bodies, websocket frames) within bounds.

A body is read as a stream and refused (413) as soon as it passes its limit, so a
visitor cannot make the server hold more than that; a declared Content-Length past it is
refused before anything is read. JSON nesting is bounded before `json.loads` sees it:
the parser recurses once per level, and `"[" * 100000` would end in a RecursionError
(a 500, or a websocket closed with 1011) instead of a clear answer.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeGuard

from starlette.requests import Request

MAX_BODY = 4096
MAX_DEPTH = 64  # far more than any request here needs; far less than the parser's recursion
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')  # a string (skipped) or a bracket


class BadBody(Exception):
    """The body is not what the endpoint takes; `status` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def is_int(value: object) -> TypeGuard[int]:
    """A JSON integer (Python's bool is an int, JSON's true is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise ValueError when `text` nests arrays and objects deeper than `max_depth`."""
    depth = 0
    for token in _TOKEN.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(f"nested deeper than {max_depth} levels, the most accepted")
        elif bracket in "]}":
            depth -= 1


def loads_bounded(data: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing (ValueError) text that is not UTF-8 or nests too deep."""
    text = data.decode() if isinstance(data, bytes) else data
    check_depth(text, max_depth)
    return json.loads(text)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read no further than `limit` bytes: past it, BadBody (413)."""
    too_big = BadBody(f"the body may be at most {limit} bytes", 413)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


async def read_unparsed(request: Request, limit: int) -> bytes:
    """The body, within `limit` and nested no deeper than MAX_DEPTH, for a JSON parser
    that comes later (FastAPI's, the MCP SDK's); BadBody when it is not."""
    body = await read_body(request, limit)
    try:
        check_depth(body.decode(errors="replace"))
    except ValueError as exc:
        raise BadBody(f"the body must be JSON: {exc}") from None
    return body


async def read_object(request: Request, accepted: set[str]) -> dict:
    """The body as a JSON object with only `accepted` fields (an empty body is {})."""
    body = await read_body(request, MAX_BODY)
    try:
        params = loads_bounded(body or b"{}")
    except ValueError as exc:
        raise BadBody(f"the body must be JSON: {exc}") from None
    if not isinstance(params, dict):
        raise BadBody("the body must be a JSON object")
    unknown = set(params) - accepted
    if unknown:
        raise BadBody(f"unknown fields {sorted(unknown)}; accepted: {sorted(accepted)}")
    return params
