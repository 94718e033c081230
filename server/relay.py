"""Tab sessions over HTTP: create, inspect and end one, and the owner's relay socket.

POST   /api/tabs               -> 201 {"id", "relay", ...}; the id is the owner's secret
GET    /api/tabs/{id}          the tab session's state (an ended one says why)
DELETE /api/tabs/{id}          end it: the owner's tab is told (`exit`)
WS     /api/tabs/{id}/relay    the owner's tab: its protocol is in server/sessions/tab.py
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from server.admission import Admission, Refused
from server.apierror import NO_STORE, error, needing, part
from server.sessions.directory import SessionDirectory
from server.sessions.live import SessionError
from server.sessions.tab import TabSession
from server.settings import Settings
from server.terminal import send_frame


def routes(settings: Settings) -> list[Route | WebSocketRoute]:
    limits = settings.tab_limits
    needs_directory = needing("directory", "the server is starting or stopping")

    def find(request: Request, directory: SessionDirectory) -> TabSession | None:
        return directory.get(request.path_params["tab_id"], TabSession)

    @needs_directory
    async def create(request: Request, directory: SessionDirectory) -> Response:
        tabs = directory.live(TabSession)
        if len(tabs) >= limits.max_tabs:
            return error(
                503,
                f"this server relays its maximum of {limits.max_tabs} tab sessions",
                {"retry-after": "30"},
            )
        admission: Admission = part(request, "admission")
        client = admission.client(request)
        try:
            mine = sum(1 for tab in tabs if tab.client == client)
            end_one = "end one (DELETE /api/tabs/{id}, or close its tab) first"
            admission.check("shared tab sessions", mine, admission.limits.tab_sessions, end_one)
            tab = directory.add(TabSession(limits, client))
        except Refused as exc:
            return error(exc.status, str(exc), exc.headers)
        except SessionError as exc:
            return error(exc.status, str(exc))
        return JSONResponse(tab.info(), 201, headers=NO_STORE)

    @needs_directory
    async def show(request: Request, directory: SessionDirectory) -> Response:
        tab = find(request, directory)
        if tab is None:
            return error(404, "no such tab session")
        return JSONResponse(tab.info(), headers=NO_STORE)

    @needs_directory
    async def delete(request: Request, directory: SessionDirectory) -> Response:
        tab = find(request, directory)
        if tab is None:
            return error(404, "no such tab session")
        tab.end("ended by its owner")
        return Response(status_code=204, headers=NO_STORE)

    async def relay(websocket: WebSocket) -> None:
        directory: SessionDirectory | None = part(websocket, "directory")
        tab_id = websocket.path_params["tab_id"]
        tab = directory.get(tab_id, TabSession) if directory is not None else None
        await websocket.accept()
        if tab is None or tab.reason is not None:
            why = "no such tab session" if tab is None else f"the session ended: {tab.reason}"
            await send_frame(websocket, {"type": "error", "message": why})
            await websocket.close(code=4404)
            return
        await tab.relay(websocket)

    return [
        Route("/api/tabs", create, methods=["POST"]),
        Route("/api/tabs/{tab_id}", show, methods=["GET"]),
        Route("/api/tabs/{tab_id}", delete, methods=["DELETE"]),
        WebSocketRoute("/api/tabs/{tab_id}/relay", relay),
    ]
