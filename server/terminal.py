"""`WS /api/sessions/{id}/terminal`: a session's terminal over a websocket.

Client to server (JSON text frames):
  {"type": "resume", "offset": N}     first, to say where to start (a new client: 0)
  {"type": "input", "data": "..."}    keystrokes
  {"type": "resize", "cols": C, "rows": R}
Server to client:
  {"type": "output", "offset": N, "data": "..."}   N: the stream offset of data's first byte
                                       (with --output-times also "appended_at": when the
                                       server appended that byte, in time.monotonic())
  {"type": "reset", "offset": N}      what was asked for fell out of the scrollback:
                                       clear the screen, output continues from N
  {"type": "exit", "reason": "..."}   the session ended; the socket then closes
  {"type": "error", "message": "..."} a bad frame, refused and reported; nothing is lost

A client that sends no `resume` within a second gets the scrollback from
its oldest byte. Offsets count UTF-8 bytes: after an output frame the next
offset is N plus the UTF-8 length of data. Each client reads at its own
pace from the session's stream, so a slow one only falls behind (and is
reset) and never slows the session; the owner's socket is served before
the viewers' (server/stream.py), so viewers do not delay the owner's echo.

`appended_at` is for measuring lag on the server's own host (`bench share`): it is
off by default because a monotonic clock tells how long the host has been up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import Any, Protocol, TypeGuard

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.admission import Refused, held_by, refuse
from server.apierror import part
from server.jsonbody import is_int, loads_bounded
from server.metrics import Metrics
from server.sessions.live import SessionError
from server.sessions.qemu import QemuSession
from server.stream import Chunk, Ended, OutputStream, Reset
from server.supervise import race

MAX_FRAME = 64 * 1024  # a client frame, in characters
MAX_INPUT = 16 * 1024  # the data of one input frame, in UTF-8 bytes
OUTPUT_CHUNK = 16 * 1024  # the most output one frame carries, in bytes
RESUME_GRACE_S = 1.0  # a loaded server may take a while to read a prompt client's resume
CLOSE_ONE = "close one (another tab or window) first"
MAX_COLS_ROWS = 1000


class BadFrame(Exception):
    """A client frame this protocol does not accept; the message says why."""


class Terminal(Protocol):
    """What the protocol serves: a session, or a share link's narrower facet of one."""

    stream: OutputStream

    def attached(self) -> contextlib.AbstractAsyncContextManager[None]: ...
    def input(self, data: bytes) -> None: ...
    async def resize(self, cols: int, rows: int) -> None: ...


def routes(metrics: Metrics, output_times: bool) -> list[WebSocketRoute]:
    async def terminal(websocket: WebSocket) -> None:
        directory = part(websocket, "directory")
        session_id = websocket.path_params["session_id"]
        session = directory.get(session_id, QemuSession) if directory is not None else None
        await websocket.accept()
        if session is None:
            await send_frame(websocket, {"type": "error", "message": f"no session {session_id!r}"})
            await websocket.close(code=4404)
            return
        clients = metrics.websocket_clients.labels(role="owner")
        try:
            with held_by(websocket, "terminal connections", "owner_sockets", CLOSE_ONE):
                clients.inc()
                try:
                    await serve(websocket, session, metrics, output_times, owner=True)
                finally:
                    clients.dec()
        except Refused as refused:
            await refuse(websocket, refused)

    return [WebSocketRoute("/api/sessions/{session_id}/terminal", terminal)]


async def serve(
    websocket: WebSocket,
    session: Terminal,
    metrics: Metrics,
    output_times: bool,
    owner: bool = False,
) -> None:
    """Serve a terminal: a session, or a share link's narrower facet of one (server/facets.py).
    The `owner`'s output is sent before any viewer's; `output_times` stamps output frames."""
    start: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
    async with session.attached():
        await race(
            _read(websocket, session, start),
            _write(websocket, session.stream, start, metrics, output_times, owner),
        )


async def _read(websocket: WebSocket, session: Terminal, start: asyncio.Future) -> None:
    first = True
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            if first:
                try:
                    async with asyncio.timeout(RESUME_GRACE_S):
                        message = await websocket.receive()
                except TimeoutError:
                    _settle(start, None)
                    message = await websocket.receive()
            else:
                message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                await _handle(session, parse_frame(message), start, first)
            except (BadFrame, SessionError) as exc:
                await send_frame(websocket, {"type": "error", "message": str(exc)})
            finally:
                _settle(start, None)
                first = False


def _settle(start: asyncio.Future, offset: int | None) -> None:
    if not start.done():
        start.set_result(offset)


def parse_frame(message: Mapping[str, Any], limit: int = MAX_FRAME) -> dict:
    """A client's JSON frame, of at most `limit` characters; BadFrame says what is wrong."""
    text = message.get("text")
    if text is None:
        raise BadFrame("binary frames are not accepted: send JSON text frames")
    if len(text) > limit:
        raise BadFrame(f"a frame may be at most {limit} characters, this one is {len(text)}")
    try:
        frame = loads_bounded(text)
    except ValueError as exc:
        raise BadFrame(f"a frame must be a JSON object: {exc}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise BadFrame('a frame must be a JSON object with a "type"')
    return frame


async def _handle(session: Terminal, frame: dict, start: asyncio.Future, first: bool) -> None:
    kind = frame["type"]
    if kind == "input":
        data = frame.get("data")
        if not isinstance(data, str):
            raise BadFrame('input needs "data", a string')
        encoded = data.encode(errors="replace")
        if len(encoded) > MAX_INPUT:
            raise BadFrame(f"input may be at most {MAX_INPUT} bytes a frame, not {len(encoded)}")
        session.input(encoded)
    elif kind == "resize":
        cols, rows = frame.get("cols"), frame.get("rows")
        if not (is_size(cols) and is_size(rows)):
            raise BadFrame(f'resize needs "cols" and "rows", integers 1..{MAX_COLS_ROWS}')
        await session.resize(cols, rows)
    elif kind == "resume":
        offset = frame.get("offset")
        if not is_int(offset) or offset < 0:
            raise BadFrame('resume needs "offset", a non-negative integer')
        if not first:
            raise BadFrame("resume must be the first frame on a connection")
        if start.done():
            raise BadFrame(
                f"resume came over {RESUME_GRACE_S:g} s after connecting: output already "
                "began from the oldest byte kept"
            )
        _settle(start, offset)
    else:
        raise BadFrame(f"unknown frame type {kind!r}; expected input, resize or resume")


async def _write(
    websocket: WebSocket,
    stream: OutputStream,
    start: asyncio.Future,
    metrics: Metrics,
    output_times: bool,
    owner: bool,
) -> None:
    offset = await start
    if offset is None:
        offset = stream.start
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            item = await stream.next(offset, OUTPUT_CHUNK, first=owner)
            if isinstance(item, Chunk):
                frame: dict = {"type": "output", "offset": item.offset, "data": item.data}
                if output_times and (at := stream.appended_at(item.offset)) is not None:
                    frame["appended_at"] = at
                await send_frame(websocket, frame)
                size = len(item.data.encode())
                metrics.bytes_streamed.inc(size)
                offset = item.offset + size
            elif isinstance(item, Reset):
                await send_frame(websocket, {"type": "reset", "offset": item.offset})
                offset = item.offset
            elif isinstance(item, Ended):
                await send_frame(websocket, {"type": "exit", "reason": item.reason})
                await websocket.close(code=1000)
                return


def is_size(value: object) -> TypeGuard[int]:
    """A terminal's column or row count."""
    return is_int(value) and 1 <= value <= MAX_COLS_ROWS


async def send_frame(websocket: WebSocket, frame: dict) -> None:
    await websocket.send_text(json.dumps(frame))
