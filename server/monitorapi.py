"""A native session's system monitor: `GET /api/sessions/{id}/monitor` and its websocket.

The guest kernel's SystemMonitor answers over the VM's control channel
(server/control.py); the page's monitoring views and tour checks read the
same MonitorSnapshot JSON the tab's kernel worker sends. The websocket
pushes a snapshot whenever the guest's change counter moved, from the
session's one feed (server/monitorfeed.py): however many sockets watch, the
guest is asked once.
"""

from __future__ import annotations

import contextlib
import json

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server import monitorfeed
from server.admission import Refused, held_by, refuse
from server.apierror import NO_STORE, error, part
from server.control import ControlError
from server.sessions.qemu import QemuSession
from server.supervise import race
from server.terminal import CLOSE_ONE


def _session(connection: HTTPConnection) -> QemuSession | None:
    directory = part(connection, "directory")
    session_id = connection.path_params["session_id"]
    return directory.get(session_id, QemuSession) if directory is not None else None


async def _push(websocket: WebSocket, session: QemuSession) -> None:
    """A snapshot whenever the guest's change counter moved; then `exit` when it ends."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client went away
        feed = session.monitor
        async with feed.watching():
            seen = None
            while (current := await feed.next(seen)) is not None:
                seen = current["seq"]
                await websocket.send_text(json.dumps({"type": "snapshot", "snapshot": current}))
        await websocket.send_text(json.dumps({"type": "exit", "reason": session.reason}))
        await websocket.close(code=1000)


async def _until_closed(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # whatever a client sends here is ignored


def routes() -> list[Route | WebSocketRoute]:
    async def snapshot(request: Request) -> Response:
        session = _session(request)
        if session is None:
            return error(404, "no such session")
        try:
            return JSONResponse(await monitorfeed.snapshot(session), headers=NO_STORE)
        except (ControlError, TimeoutError) as exc:
            return error(409, str(exc) or "the guest did not answer")

    async def stream(websocket: WebSocket) -> None:
        session = _session(websocket)
        await websocket.accept()
        if session is None:
            await websocket.send_text(json.dumps({"type": "error", "message": "no such session"}))
            await websocket.close(code=4404)
            return
        try:
            with held_by(websocket, "monitor streams", "monitor_streams", CLOSE_ONE):
                async with session.attached():
                    # the client sends nothing; reading is how its going away is noticed
                    # (or the server's shutdown closing it), which ends the pushing too
                    await race(_push(websocket, session), _until_closed(websocket))
        except Refused as refused:
            await refuse(websocket, refused)

    return [
        Route("/api/sessions/{session_id}/monitor", snapshot, methods=["GET"]),
        WebSocketRoute("/api/sessions/{session_id}/monitor/stream", stream),
    ]
