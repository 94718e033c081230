"""A native session's system monitor: `GET /api/sessions/{id}/monitor` and its websocket.

The guest kernel's SystemMonitor answers over the VM's control channel
(server/control.py); the page's monitoring views and tour checks read the
same MonitorSnapshot JSON the tab's kernel worker sends. The websocket
pushes a snapshot whenever the guest's change counter moved, polling at
most every POLL_S, so a view costs the VM nothing while nothing happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.control import ControlError
from server.sessions import Session, SessionRegistry

POLL_S = 0.5
_NO_STORE = {"cache-control": "no-store"}


def _session(registry_of: Callable[[], SessionRegistry | None], session_id: str):
    registry = registry_of()
    return registry.get(session_id) if registry is not None else None


async def _snapshot(session: Session) -> dict:
    vm = session.vm
    if session.state != "running" or vm is None:
        raise ControlError(
            f"the session is {session.state}: attach its terminal to wake it, then ask again"
        )
    return await vm.control.monitor()


def routes(registry_of: Callable[[], SessionRegistry | None]) -> list[Route | WebSocketRoute]:
    async def snapshot(request: Request) -> Response:
        session = _session(registry_of, request.path_params["session_id"])
        if session is None:
            return JSONResponse({"error": "no such session"}, 404, headers=_NO_STORE)
        try:
            return JSONResponse(await _snapshot(session), headers=_NO_STORE)
        except (ControlError, TimeoutError) as exc:
            return JSONResponse({"error": str(exc) or "the guest did not answer"}, 409)

    async def stream(websocket: WebSocket) -> None:
        session = _session(registry_of, websocket.path_params["session_id"])
        await websocket.accept()
        if session is None:
            await websocket.send_text(json.dumps({"type": "error", "message": "no such session"}))
            await websocket.close(code=4404)
            return
        seen = None
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            async with session.attached():  # a watcher keeps the session awake
                while session.state != "ended":
                    try:
                        current = await _snapshot(session)
                    except (ControlError, TimeoutError):
                        await asyncio.sleep(POLL_S)  # suspended or restoring: try again
                        continue
                    if current["seq"] != seen:
                        seen = current["seq"]
                        await websocket.send_text(
                            json.dumps({"type": "snapshot", "snapshot": current})
                        )
                    await asyncio.sleep(POLL_S)
                await websocket.send_text(json.dumps({"type": "exit", "reason": session.reason}))
                await websocket.close(code=1000)

    return [
        Route("/api/sessions/{session_id}/monitor", snapshot, methods=["GET"]),
        WebSocketRoute("/api/sessions/{session_id}/monitor/stream", stream),
    ]
