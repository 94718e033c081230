"""The server's model for tabs: `GET /api/model` and `WS /api/model/stream`.

A tab's kernel runs in the visitor's browser and has no model of its own;
its LanguageModel kernel cap reaches the server's model through this socket
(web/static/model-relay.js opens it for the kernel's worker). The page asks
`GET /api/model` before the kernel boots, so the shell can say which model
answers: {"info": ModelInfo} or {"info": null, "reason": "..."}.

Client to server (JSON text frames):
  {"type": "generate", "stream": N, "request": {"messages", "tools", "params"}}
  {"type": "cancel", "stream": N}
Server to client:
  {"type": "event", "stream": N, "event": CompletionEvent}
      every generate ends with exactly one event holding `done` or `error`
      (a refused request too, and a cancelled one with done "cancelled")
  {"type": "error", "message": "..."}  a frame refused with no stream to answer on

N is the tab's own number for a generation (1..2^53-1), unique among those
it has under way; streams from other tabs are out of its reach. Nothing a
tab sends costs more than the limits in server/modelhub.py.
"""

from __future__ import annotations

import contextlib

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from kernel.hosts.models.settings import ModelSettings
from server.admission import Refused, client_of, held_by, refuse
from server.jsonbody import is_int
from server.modelhub import MAX_LINES, Line, ModelHub, Overrun, no_model_reason
from server.modelrequest import BadRequest, check_request
from server.supervise import race
from server.terminal import CLOSE_ONE, BadFrame, parse_frame, send_frame

MAX_STREAM_ID = 2**53 - 1  # what a JavaScript number holds exactly
GENERATE_FIELDS = {"type", "stream", "request"}
CANCEL_FIELDS = {"type", "stream"}


def routes(settings: ModelSettings) -> list[Route | WebSocketRoute]:
    async def info(request: Request) -> Response:
        hub: ModelHub | None = getattr(request.state, "model", None)
        body = {"info": hub.info} if hub else {"info": None, "reason": no_model_reason(settings)}
        return JSONResponse(body, headers={"cache-control": "no-store"})

    async def stream(websocket: WebSocket) -> None:
        hub: ModelHub | None = getattr(websocket.state, "model", None)
        await websocket.accept()
        if hub is None:
            await send_frame(websocket, {"type": "error", "message": no_model_reason(settings)})
            await websocket.close(code=4404)
            return
        if hub.lines >= MAX_LINES:
            await websocket.close(code=4429, reason="too many tabs use the model; try later")
            return
        try:
            with (
                held_by(websocket, "connections to the model", "model_sockets", CLOSE_ONE),
                hub.line(client_of(websocket)) as line,  # leaving it cancels what it started
            ):
                await race(_read(websocket, line), _write(websocket, line))
        except Refused as refused:
            await refuse(websocket, refused)

    return [
        Route("/api/model", info, methods=["GET"]),
        WebSocketRoute("/api/model/stream", stream),
    ]


async def _read(websocket: WebSocket, line: Line) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while (message := await websocket.receive())["type"] != "websocket.disconnect":
            try:
                handle(line, parse_frame(message))
            except BadFrame as exc:
                line.reply_error(str(exc))
            except Overrun as exc:
                await websocket.close(code=1008, reason=str(exc))
                return


def handle(line: Line, frame: dict) -> None:
    """One client frame; a refused generate answers on its stream, so it still ends."""
    kind, stream = frame["type"], frame.get("stream")
    if kind not in ("generate", "cancel"):
        raise BadFrame(f"unknown frame type {kind!r}; expected generate or cancel")
    if not is_int(stream) or not 1 <= stream <= MAX_STREAM_ID:
        raise BadFrame(f'{kind} needs "stream", an integer 1..{MAX_STREAM_ID}')
    if kind == "cancel":
        if set(frame) != CANCEL_FIELDS:
            raise BadFrame(f"cancel takes only the fields {sorted(CANCEL_FIELDS)}")
        line.cancel(stream)
        return
    try:
        if set(frame) != GENERATE_FIELDS:
            raise BadRequest(f"generate takes exactly the fields {sorted(GENERATE_FIELDS)}")
        request = check_request(frame["request"])
    except BadRequest as exc:
        line.reply(stream, {"error": f"the server refused the request: {exc}"})
        return
    line.generate(stream, request)


async def _write(websocket: WebSocket, line: Line) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client went away
        while True:
            await send_frame(websocket, await line.outbox.get())
