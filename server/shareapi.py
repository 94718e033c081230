"""Share links over HTTP and the viewer's page and socket.

POST   /api/sessions/{id}/shares           {"mode": "view"|"drive"|"agent", "expires_in": s}
                                           ("agent": tab sessions only, see server/agents.py)
                                           -> 201 {"id", "url", "mode", "expires_at"}
                                           (the url only here: its token is not kept)
GET    /api/sessions/{id}/shares           the links, each with who is watching
DELETE /api/sessions/{id}/shares/{share}   revoke: its viewers are cut off at once
DELETE /api/sessions/{id}/viewers/{viewer} end one viewer
GET    /s/{token}                          the viewer's page (410 once gone, 404 if unknown)
GET    /s/{token}/info                     {"mode", "expires_at"} for that page
WS     /s/{token}/terminal                 the terminal protocol (server/terminal.py)
                                           through the link's facet (server/facets.py)

The session id in the path is the owner's proof (see server/shares.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from server.apierror import NO_STORE, error, needing, part
from server.facets import facet_for
from server.jsonbody import BadBody, read_object
from server.metrics import Metrics
from server.notice import notice
from server.sessions.live import SessionError
from server.sessions.tab import TabSession
from server.settings import Settings
from server.shares import Share, ShareError, Viewer
from server.sharing import Sharing
from server.supervise import race
from server.terminal import send_frame, serve

GONE_CLOSE = 4410  # the websocket close code for a link that stopped working
CLOSE_CODES = {410: GONE_CLOSE, 503: 4503}  # else 4429: a limit


def _retry(status: int) -> dict | None:
    return {"retry-after": "5"} if status == 503 else None


def client_ip(connection: Request | WebSocket) -> str:
    return connection.client.host if connection.client else "unknown"


def routes(settings: Settings, metrics: Metrics) -> list:
    needs_hub = needing("hub", "the server is starting or stopping")

    @needs_hub
    async def create(request: Request, hub: Sharing) -> Response:
        session_id = request.path_params["session_id"]
        try:
            session = await hub.live(session_id)
            if session is None:
                return error(404, "no such live session (it never existed, or it has ended)")
            params = await read_object(request, {"mode", "expires_in"})
            if params.get("mode") == "agent" and not isinstance(session, TabSession):
                return error(
                    400,
                    "agent links are for tab sessions; an agent drives a server session "
                    "with the owner token create_session gave it",
                )
            share, token = await hub.share(
                session, params.get("mode"), params.get("expires_in"), client_ip(request)
            )
        except (BadBody, ShareError, SessionError) as exc:
            return error(exc.status, str(exc), _retry(exc.status))
        body = {
            "id": share.id,
            "url": str(request.base_url).rstrip("/") + f"/s/{token}",  # only now: not kept
            "mode": share.mode,
            "expires_at": share.expires_at,
        }
        return JSONResponse(body, 201, headers=NO_STORE)

    @needs_hub
    async def listing(request: Request, hub: Sharing) -> Response:
        session_id = request.path_params["session_id"]
        if not await hub.known(session_id):
            return error(404, "no such session")
        return JSONResponse({"shares": await hub.share_infos(session_id)}, headers=NO_STORE)

    @needs_hub
    async def revoke(request: Request, hub: Sharing) -> Response:
        share = hub.shares.get(request.path_params["session_id"], request.path_params["share_id"])
        if share is None:
            return error(404, "no such share link on this session")
        try:
            await hub.shares.revoke(share)
        except ShareError as exc:  # its viewers here are cut off already; say what is left
            return error(exc.status, f"revoked on this server, but: {exc}", _retry(exc.status))
        return Response(status_code=204, headers=NO_STORE)

    @needs_hub
    async def end_viewer(request: Request, hub: Sharing) -> Response:
        try:
            ended = await hub.end_viewer(
                request.path_params["session_id"], request.path_params["viewer_id"]
            )
        except SessionError as exc:
            return error(exc.status, str(exc), _retry(exc.status))
        if ended:
            return Response(status_code=204, headers=NO_STORE)
        return error(404, "no such viewer on this session (it may have left)")

    async def why_gone(hub: Sharing, share: Share) -> str | None:
        """Why the link shows nothing now; SessionError (503) when that cannot be told."""
        why = share.gone()
        if why is None and await hub.live(share.session_id) is None:
            why = "the session this link showed has ended"
        return why

    async def page(request: Request) -> Response:
        hub: Sharing | None = part(request, "hub")
        if hub is None:
            return notice("Starting", "The server is starting or stopping; try again.", 503)
        try:
            share = await hub.find_share(request.path_params["token"])
            if share is None:
                return notice(
                    "No such link", "This share link does not exist; check the address.", 404
                )
            why = await why_gone(hub, share)
        except SessionError as exc:
            return notice("Try again shortly", str(exc)[0].upper() + str(exc)[1:] + ".", 503)
        if why is not None:
            return notice("This link no longer works", why[0].upper() + why[1:] + ".", 410)
        return FileResponse(
            settings.web_dir / "share.html",
            media_type="text/html; charset=utf-8",
            headers=NO_STORE,
        )

    @needs_hub
    async def about(request: Request, hub: Sharing) -> Response:
        """What the viewer's page shows about its link: its mode and expiry."""
        try:
            share = await hub.find_share(request.path_params["token"])
            if share is None:
                return error(404, "no such share link")
            why = await why_gone(hub, share)
        except SessionError as exc:
            return error(exc.status, str(exc), _retry(exc.status))
        if why is not None:
            return error(410, why)
        return JSONResponse({"mode": share.mode, "expires_at": share.expires_at}, headers=NO_STORE)

    async def terminal(websocket: WebSocket) -> None:
        hub: Sharing | None = part(websocket, "hub")
        await websocket.accept()
        try:
            share = await hub.find_share(websocket.path_params["token"]) if hub else None
        except SessionError as exc:
            await send_frame(websocket, {"type": "error", "message": str(exc)})
            await websocket.close(code=CLOSE_CODES[503])
            return
        if hub is None or share is None:
            await send_frame(websocket, {"type": "error", "message": "no such share link"})
            await websocket.close(code=4404)
            return
        try:
            why = share.gone()
            session = await hub.live(share.session_id)
            if why is not None or session is None:
                raise ShareError(why or "the session this link showed has ended", 410)
            agent = websocket.headers.get("user-agent", "")
            viewer = hub.shares.join(share, client_ip(websocket), agent)
        except (ShareError, SessionError) as exc:
            await send_frame(websocket, {"type": "error", "message": str(exc)})
            await websocket.close(code=CLOSE_CODES.get(exc.status, 4429))
            return
        clients = metrics.websocket_clients.labels(role=f"{share.mode}-link")
        clients.inc()
        try:
            if hub.replicas is not None:
                await hub.replicas.joined(viewer)
            facet = facet_for(share.mode, session)
            await _watch(websocket, viewer, facet, metrics, settings.output_times)
        finally:
            clients.dec()
            hub.shares.leave(viewer)
            if hub.replicas is not None:
                await asyncio.shield(hub.replicas.left(viewer))

    return [
        Route("/api/sessions/{session_id}/shares", create, methods=["POST"]),
        Route("/api/sessions/{session_id}/shares", listing, methods=["GET"]),
        Route("/api/sessions/{session_id}/shares/{share_id}", revoke, methods=["DELETE"]),
        Route("/api/sessions/{session_id}/viewers/{viewer_id}", end_viewer, methods=["DELETE"]),
        Route("/s/{token}", page, methods=["GET", "HEAD"]),
        Route("/s/{token}/info", about, methods=["GET"]),
        WebSocketRoute("/s/{token}/terminal", terminal),
    ]


async def _watch(
    websocket: WebSocket, viewer: Viewer, facet, metrics: Metrics, output_times: bool
) -> None:
    """Serve the viewer until it leaves, or is cut off (revoked, expired, ended by the owner)."""
    await race(serve(websocket, facet, metrics, output_times), _until_cut_off(viewer))
    if viewer.reason is not None:
        with contextlib.suppress(Exception):  # the socket may be gone already
            await send_frame(websocket, {"type": "exit", "reason": viewer.reason})
            await websocket.close(code=GONE_CLOSE, reason=viewer.reason[:120])


async def _until_cut_off(viewer: Viewer) -> None:
    left = viewer.share.expires_at - time.time()
    try:
        async with asyncio.timeout(max(0.0, left)):
            await viewer.ended.wait()
    except TimeoutError:
        viewer.end("this share link has expired")
