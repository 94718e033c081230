"""Tab sessions: a system booted in the owner's tab, shared by relaying through the server.

`POST /api/tabs` makes one and answers its id, the owner's secret like a
native session's id. The owner's tab then holds `WS /api/tabs/{id}/relay`:

Tab to server (JSON text frames):
  {"type": "output", "offset": N, "data": "..."}  the tab terminal's output; N counts
                                                  UTF-8 bytes since the tab's system began
  {"type": "size", "cols": C, "rows": R}          the owner's terminal size
Server to tab:
  {"type": "resume", "offset": N}   first: the server has everything before N; send from N
  {"type": "input", "data": "..."}  keystrokes from drive links
  {"type": "exit", "reason": "..."} the owner ended the session through the API
  {"type": "error", "message": "..."}

The server keeps the tab's output in an `OutputStream`, so viewers get the
same protocol as for a native session (offsets, resume, reset). Output the
server already has is skipped; a gap (the tab lost what the server missed)
is bridged with a terminal reset so viewers redraw rather than show a torn
screen. A tab that closes (close code 1001, "going away") ends the session
with that reason at once; a connection that just drops has a grace period
to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.apierror import NO_STORE, error
from server.jsonbody import is_int
from server.origin import same_origin
from server.sessions import SessionError
from server.settings import TabLimits
from server.stream import DEFAULT_SCROLLBACK, OutputStream
from server.terminal import MAX_COLS_ROWS, MAX_INPUT, BadFrame, parse_frame, send_frame

TERMINAL_RESET = "\x1bc"
CLOSED_TAB = "the owner closed the tab"


class TabSession:
    def __init__(self, limits: TabLimits, scrollback: int = DEFAULT_SCROLLBACK) -> None:
        self.id = secrets.token_urlsafe(16)
        self.limits = limits
        self.stream = OutputStream(scrollback)
        self.created = time.time()
        self.reason: str | None = None  # why it ended
        self.clients = 0  # viewers attached
        self.observers: list[Callable[[str, str], None]] = []
        self.owner_since: float | None = None  # the owner's relay is connected since
        self.owner_left = time.monotonic()  # when the owner's relay last went away
        self.ended_at: float | None = None
        self._to_owner: asyncio.Queue[dict] | None = None

    @property
    def state(self) -> str:
        return "ended" if self.reason is not None else "running"

    def info(self) -> dict:
        info = {
            "id": self.id,
            "backend": "tab",
            "state": self.state,
            "relay": f"/api/tabs/{self.id}/relay",
            "created": self.created,
            "clients": self.clients,
            "owner_connected": self.owner_since is not None,
            "output_offset": self.stream.end,
        }
        if self.reason is not None:
            info["reason"] = self.reason
        return info

    @contextlib.asynccontextmanager
    async def attached(self) -> AsyncIterator[None]:
        self.clients += 1
        try:
            yield
        finally:
            self.clients -= 1

    def input(self, data: bytes) -> None:
        for observe in self.observers:
            observe("i", data.decode(errors="replace"))
        queue = self._to_owner
        if queue is None:
            raise SessionError("the owner's tab is not connected, so input cannot reach it", 503)
        try:
            queue.put_nowait({"type": "input", "data": data.decode(errors="replace")})
        except asyncio.QueueFull:
            raise SessionError(
                "the owner's tab is not keeping up; this input was dropped"
            ) from None

    async def resize(self, cols: int, rows: int) -> None:
        for observe in self.observers:
            observe("r", f"{cols}x{rows}")

    def end(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.ended_at = time.monotonic()
            self.stream.close(reason)
            if self._to_owner is not None:
                with contextlib.suppress(asyncio.QueueFull):
                    self._to_owner.put_nowait({"type": "exit", "reason": reason})

    def take_output(self, offset: int, data: str) -> None:
        """Output from the tab at `offset`: skip what the stream has, bridge a gap with a reset."""
        end = self.stream.end
        encoded = data.encode()
        if offset + len(encoded) <= end:
            return
        if offset < end:
            encoded = encoded[end - offset :]
        elif offset > end:
            self.stream.append(TERMINAL_RESET.encode())
        self.stream.append(encoded)


class TabRegistry:
    def __init__(self, limits: TabLimits | None = None) -> None:
        self.limits = limits or TabLimits()
        self.tabs: dict[str, TabSession] = {}

    def create(self) -> TabSession:
        live = [t for t in self.tabs.values() if t.reason is None]
        if len(live) >= self.limits.max_tabs:
            raise SessionError(
                f"this server relays its maximum of {self.limits.max_tabs} tab sessions"
            )
        tab = TabSession(self.limits)
        self.tabs[tab.id] = tab
        return tab

    def get(self, tab_id: str) -> TabSession | None:
        return self.tabs.get(tab_id)

    async def run(self) -> None:
        """End tabs whose owner went away and did not come back; forget long-ended ones."""
        while True:
            now = time.monotonic()
            for tab in list(self.tabs.values()):
                if tab.reason is None and tab.owner_since is None:
                    if now - tab.owner_left >= self.limits.reconnect_grace_s:
                        tab.end("the owner's tab went away and did not come back")
                elif tab.ended_at is not None and now - tab.ended_at >= self.limits.ended_kept_s:
                    del self.tabs[tab.id]
            await asyncio.sleep(1.0)

    async def relay(self, websocket: WebSocket, tab: TabSession) -> None:
        """Serve the owner's tab until it closes; one relay at a time (a new one replaces it)."""
        queue: asyncio.Queue[dict] = asyncio.Queue(self.limits.input_queue)
        if tab._to_owner is not None:  # the tab reconnected: the old relay's sender ends
            with contextlib.suppress(asyncio.QueueFull):
                tab._to_owner.put_nowait({"type": "replaced"})
        tab._to_owner = queue
        tab.owner_since = time.time()
        await send_frame(websocket, {"type": "resume", "offset": tab.stream.end})
        closed_by_tab = False
        try:
            async with asyncio.TaskGroup() as tasks:
                receiver = tasks.create_task(self._receive(websocket, tab))
                sender = tasks.create_task(_send_to_owner(websocket, queue))
                receiver.add_done_callback(lambda _: sender.cancel())
                sender.add_done_callback(lambda _: receiver.cancel())
            closed_by_tab = receiver.done() and not receiver.cancelled() and receiver.result()
        finally:
            if tab._to_owner is queue:
                tab._to_owner = None
                tab.owner_since = None
                tab.owner_left = time.monotonic()
                if closed_by_tab:
                    tab.end(CLOSED_TAB)

    async def _receive(self, websocket: WebSocket, tab: TabSession) -> bool:
        """Take the tab's frames; True when the tab closed itself (it is going away)."""
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return message.get("code") in (1000, 1001)
            try:
                _take(tab, parse_frame(message))
            except BadFrame as exc:
                await send_frame(websocket, {"type": "error", "message": str(exc)})
            if tab.reason is not None:
                return False


def _take(tab: TabSession, frame: dict) -> None:
    kind = frame["type"]
    if kind == "output":
        offset, data = frame.get("offset"), frame.get("data")
        if not is_int(offset) or offset < 0 or not isinstance(data, str):
            raise BadFrame('output needs "offset", a non-negative integer, and "data", a string')
        if len(data.encode(errors="replace")) > MAX_INPUT * 4:
            raise BadFrame(f"output may be at most {MAX_INPUT * 4} bytes a frame")
        tab.take_output(offset, data)
    elif kind == "size":
        cols, rows = frame.get("cols"), frame.get("rows")
        if not all(is_int(v) and 1 <= v <= MAX_COLS_ROWS for v in (cols, rows)):
            raise BadFrame(f'size needs "cols" and "rows", integers 1..{MAX_COLS_ROWS}')
        for observe in tab.observers:
            observe("r", f"{cols}x{rows}")
    else:
        raise BadFrame(f"unknown frame type {kind!r}; expected output or size")


async def _send_to_owner(websocket: WebSocket, queue: asyncio.Queue[dict]) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            frame = await queue.get()
            if frame["type"] == "replaced":
                await websocket.close(code=4409, reason="another relay for this tab took over")
                return
            await send_frame(websocket, frame)
            if frame["type"] == "exit":
                await websocket.close(code=1000)
                return


def routes(tabs_of: Callable[[], TabRegistry | None]) -> list[Route | WebSocketRoute]:
    def tab_orerror(request: Request) -> TabSession | JSONResponse:
        tabs = tabs_of()
        if tabs is None:
            return error(503, "the server is starting or stopping")
        tab = tabs.get(request.path_params["tab_id"])
        return tab if tab is not None else error(404, "no such tab session")

    async def create(request: Request) -> Response:
        tabs = tabs_of()
        if tabs is None:
            return error(503, "the server is starting or stopping")
        try:
            tab = tabs.create()
        except SessionError as exc:
            return error(exc.status, str(exc))
        return JSONResponse(tab.info(), 201, headers=NO_STORE)

    async def show(request: Request) -> Response:
        tab = tab_orerror(request)
        return tab if isinstance(tab, Response) else JSONResponse(tab.info(), headers=NO_STORE)

    async def delete(request: Request) -> Response:
        tab = tab_orerror(request)
        if isinstance(tab, Response):
            return tab
        tab.end("ended by its owner")
        return Response(status_code=204, headers=NO_STORE)

    async def relay(websocket: WebSocket) -> None:
        if not await same_origin(websocket):
            return
        tabs = tabs_of()
        tab = tabs.get(websocket.path_params["tab_id"]) if tabs is not None else None
        await websocket.accept()
        if tab is None or tab.reason is not None:
            why = "no such tab session" if tab is None else f"the session ended: {tab.reason}"
            await send_frame(websocket, {"type": "error", "message": why})
            await websocket.close(code=4404)
            return
        await tabs.relay(websocket, tab)

    return [
        Route("/api/tabs", create, methods=["POST"]),
        Route("/api/tabs/{tab_id}", show, methods=["GET"]),
        Route("/api/tabs/{tab_id}", delete, methods=["DELETE"]),
        WebSocketRoute("/api/tabs/{tab_id}/relay", relay),
    ]
