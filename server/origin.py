"""The websocket `Origin` check: a page from another site may not open our sockets.

Browsers always send `Origin` on a websocket handshake, and CORS does not
apply to websockets, so without this check any site a viewer visits could
open a socket with a link it had learned. A client that is not a browser
(the API, the benchmark) sends no `Origin` and is not affected.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.websockets import WebSocket


def allowed(origin: str | None, host: str | None) -> bool:
    """True when there is no Origin, or it names the host the request came to."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host


async def same_origin(websocket: WebSocket) -> bool:
    """Refuse a cross-origin handshake (HTTP 403); True when it may go on."""
    if allowed(websocket.headers.get("origin"), websocket.headers.get("host")):
        return True
    await websocket.close(code=1008, reason="cross-origin websocket refused")
    return False
