"""The gate in front of every route and socket: the Host must name this server, and what a
browser page can make change here must come from this server's own pages.

- A Host not on the allow-list (server/origin.py) is refused, 421, naming the Host and
  `--public-host`; a websocket handshake gets the same answer (or, where the ASGI server
  cannot send one, a refused handshake). This is what stops DNS rebinding.
- A websocket handshake, or a POST, PUT, PATCH or DELETE, whose `Origin` is another
  site's is refused, 403 (no Origin: not a browser, allowed).
- Such a request is refused, 415, unless its body is JSON: `Content-Type:
  application/json` is required whenever there is a body, and any other Content-Type is
  refused even on an empty one. text/plain, forms and multipart are what a page on another
  site may send without asking first (CORS "simple" requests); nothing here parses them.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketClose

from server.apierror import error
from server.origin import HostAllowList, split_host

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = "application/json"


class Guard:
    """ASGI middleware: refuses what the module's docstring lists, before any route runs."""

    def __init__(self, app: ASGIApp, allow: HostAllowList) -> None:
        self.app = app
        self.allow = allow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await refusal(scope, receive, send)
        elif "websocket.http.response" in scope.get("extensions", {}):
            await WebSocket(scope, receive, send).send_denial_response(refusal)
        else:
            await WebSocketClose(code=1008)(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        """The answer that refuses this request, or None when it may go on."""
        headers = Headers(scope=scope)
        host = headers.get("host")
        server = scope.get("server")
        if not self.allow.allows_host(host, server[1] if server else None):
            name = split_host(host)[0] if host else "NAME"
            return error(
                421,
                f"this server does not answer to Host {host!r}: start it with "
                f"--public-host {name} to serve that name",
            )
        websocket = scope["type"] == "websocket"
        if not websocket and scope["method"] not in STATE_CHANGING:
            return None
        origin = headers.get("origin")
        if not self.allow.allows_origin(origin, host):
            what = "websocket" if websocket else "request"
            return error(403, f"cross-origin {what} refused: Origin {origin!r} is not {host!r}")
        if websocket:
            return None
        content_type = headers.get("content-type")
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if (content_type or has_body) and _media_type(content_type) != JSON:
            return error(
                415,
                f"a {scope['method']} body must be JSON (Content-Type: {JSON}), "
                f"not {content_type or 'untyped'}",
            )
        return None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()
