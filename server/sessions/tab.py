"""A tab session: a system booted in the owner's tab, shared by relaying through the server.

`POST /api/tabs` makes one and answers its id, the owner's secret like a QEMU
session's id. The owner's tab then holds `WS /api/tabs/{id}/relay` (server/relay.py):

Tab to server (JSON text frames):
  {"type": "output", "offset": N, "data": "..."}  the tab terminal's output; N counts
                                                  UTF-8 bytes since the tab's system began
  {"type": "size", "cols": C, "rows": R}          the owner's terminal size
  {"type": "keys", "data": "..."}                 the owner's keystrokes, only while the
                                                  server asks for them (below): they are
                                                  typed in the tab, the server only records
  {"type": "agent-reply", "id": N,                the tab's shell answered agent request N:
   "response": {"caps": [...]} | {"json": "..."}  an AgentResponse without its id (checked:
               | {"error": {"kind", "type",       server/sessions/tabagent.py); a bad one
                            "message"}}}          fails that call and is answered `error`
  {"type": "monitor", "snapshot": {...}}          the tab's MonitorSnapshot, only while the
                                                  server asks (below): a recording keeps it
                                                  (server/monitortimeline.py)
Server to tab:
  {"type": "resume", "offset": N}   first: the server has everything before N; send from N
  {"type": "input", "data": "..."}  keystrokes from drive links and agents' terminal_write
  {"type": "keys", "record": B}     whether to send the owner's keystrokes: true while a
                                    recording that keeps keystrokes runs (its owner opted in)
  {"type": "monitor", "record": B}  whether to send monitor snapshots: true while a
                                    recording runs
  {"type": "exit", "reason": "..."} the owner ended the session through the API
  {"type": "agent", "id": N, "request": R}
                                    an outside agent's request through an agent link: R is
                                    an AgentRequest without its id ({"listCaps": null},
                                    {"describeCap": name}, {"call": {...}}, {"spawn": {...}},
                                    schema/capos.capnp); the tab's own shell serves it and
                                    the tab answers `agent-reply` with the same N. At most
                                    16 wait at once; one unanswered within the call's
                                    timeout, or whose link is revoked, is refused to the
                                    agent and its late answer is an unknown id; a relay
                                    that drops fails every one waiting
  {"type": "agent-call", "link": S, "tool": T, "target": "...", "outcome": O}
                                    what an agent did through agent link S (the share's
                                    id), for the page to show: T an MCP tool's name, O
                                    "ok" or the kind of error it was answered
  {"type": "error", "message": "..."}  a frame refused (at most 64 Ki chars; monitor 512 Ki)

The server keeps the tab's output in an `OutputStream`, so viewers get the
same protocol as for a QEMU session (offsets, resume, reset). Output the
server already has is skipped; a gap (the tab lost what the server missed)
is bridged with a terminal reset so viewers redraw rather than show a torn
screen. A tab that closes (close code 1001, "going away") ends the session
with that reason at once; a connection that just drops has a grace period
to come back, which the session's own task (`serve`) keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.websockets import WebSocket, WebSocketDisconnect

from server.jsonbody import is_int
from server.monitorfeed import PushedFeed
from server.monitortimeline import BadSnapshot, normalize
from server.sessions.live import LiveSession, SessionError
from server.sessions.tabagent import BadReply, TabAgents
from server.settings import TabLimits
from server.stream import DEFAULT_SCROLLBACK, OutputStream
from server.supervise import any_set, race
from server.terminal import (
    MAX_COLS_ROWS,
    MAX_FRAME,
    MAX_INPUT,
    BadFrame,
    is_size,
    parse_frame,
    send_frame,
)

TERMINAL_RESET = "\x1bc"
CLOSED_TAB = "the owner closed the tab"
WENT_AWAY = "the owner's tab went away and did not come back"
_TICK_S = 1.0
RELAY_FRAME = 512 * 1024  # characters: a monitor frame carries a whole snapshot
# Checking a snapshot against the schema costs the server about 1 ms for 8 KiB, so a tab
# gets this many characters of snapshots checked a second (a burst of RELAY_FRAME); past
# that its snapshots are ignored until the budget refills. A tab's kernel sends one at
# most every 250 ms (or at once when a process starts or ends), far less than this.
MONITOR_CHARS_PER_S = 1024 * 1024


class TabSession(LiveSession):
    backend = "tab"

    def __init__(
        self, limits: TabLimits, client: str = "", scrollback: int = DEFAULT_SCROLLBACK
    ) -> None:
        super().__init__(OutputStream(scrollback), client=client)
        self.limits = limits
        self.owner_since: float | None = None  # the owner's relay is connected since
        self.owner_left = time.monotonic()  # when the owner's relay last went away
        self._to_owner: asyncio.Queue[dict] | None = None
        self._keys_wanted = False
        self.agents = TabAgents(self._deliver)  # agent links' requests (tabagent.py)
        self.monitor: PushedFeed = PushedFeed(self, self._want_monitor)
        self._monitor_wanted = False
        self._monitor_budget = float(RELAY_FRAME)  # characters of snapshots it may send now
        self._monitor_counted = time.monotonic()  # when the budget was last refilled

    def info(self) -> dict:
        return {
            **super().info(),
            "relay": f"/api/tabs/{self.id}/relay",
            "owner_connected": self.owner_since is not None,
        }

    def input(self, data: bytes) -> None:
        self.observe("i", data.decode(errors="replace"))
        self._deliver({"type": "input", "data": data.decode(errors="replace")}, "this input")

    def _deliver(self, frame: dict, what: str) -> None:
        """Queue a frame for the owner's tab; SessionError (503) saying why it cannot."""
        queue = self._to_owner
        if queue is None:
            raise SessionError(
                f"the owner's tab is not connected (it may be reconnecting), so {what} "
                "cannot reach it",
                503,
            )
        try:
            queue.put_nowait(frame)
        except asyncio.QueueFull:
            raise SessionError(f"the owner's tab is not keeping up; {what} was dropped") from None

    def want_keys(self, wanted: bool) -> None:
        if wanted != self._keys_wanted:
            self._keys_wanted = wanted
            self._send_owner({"type": "keys", "record": wanted})

    def _send_owner(self, frame: dict) -> None:
        """Queue a frame for the owner's tab if it is connected and keeping up."""
        with contextlib.suppress(SessionError):
            self._deliver(frame, "it")

    def agent_called(self, link: str, tool: str, target: str, outcome: str) -> None:
        """Show the owner's page what an agent did through agent link `link`."""
        frame = {"type": "agent-call", "link": link, "tool": tool, "target": target}
        self._send_owner({**frame, "outcome": outcome})

    def _want_monitor(self, wanted: bool) -> None:
        self._monitor_wanted = wanted
        self._send_owner({"type": "monitor", "record": wanted})

    def end(self, reason: str) -> None:
        first = self.reason is None
        super().end(reason)
        if first:
            self._send_owner({"type": "exit", "reason": self.reason})
            self.agents.fail(f"the session ended: {self.reason}", 410)

    async def serve(self) -> None:
        """Keep the owner's grace period: a relay that dropped may come back this soon."""
        while self.reason is None:
            gone_for = time.monotonic() - self.owner_left
            if self.owner_since is None and gone_for >= self.limits.reconnect_grace_s:
                self.end(WENT_AWAY)
            else:
                await any_set(self.ending, timeout=_TICK_S)

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

    # --- the owner's relay ----------------------------------------------------------------

    async def relay(self, websocket: WebSocket) -> None:
        """Serve the owner's tab until it closes; one relay at a time (a new one replaces it)."""
        queue: asyncio.Queue[dict] = asyncio.Queue(self.limits.input_queue)
        if self._to_owner is not None:  # the tab reconnected: the old relay's sender ends
            with contextlib.suppress(asyncio.QueueFull):
                self._to_owner.put_nowait({"type": "replaced"})
        self._to_owner = queue
        self.owner_since = time.time()
        await send_frame(websocket, {"type": "resume", "offset": self.stream.end})
        if self._keys_wanted:
            queue.put_nowait({"type": "keys", "record": True})
        if self._monitor_wanted:
            queue.put_nowait({"type": "monitor", "record": True})
        closed_by_tab: list[bool] = []
        try:
            await race(self._receive(websocket, closed_by_tab), _send_to_owner(websocket, queue))
        finally:
            if self._to_owner is queue:
                self._to_owner = None
                self.agents.fail("the owner's tab disconnected before it answered", 503)
                self.owner_since = None
                self.owner_left = time.monotonic()
                if closed_by_tab:
                    self.end(CLOSED_TAB)

    async def _receive(self, websocket: WebSocket, closed_by_tab: list[bool]) -> None:
        """Take the tab's frames; notes in `closed_by_tab` when the tab closed itself."""
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                if message.get("code") in (1000, 1001):
                    closed_by_tab.append(True)
                return
            try:
                self._take(parse_frame(message, RELAY_FRAME), len(message.get("text") or ""))
            except BadFrame as exc:
                await send_frame(websocket, {"type": "error", "message": str(exc)})
            if self.reason is not None:
                return

    def _afford(self, size: int) -> bool:
        """Whether the tab's snapshot budget covers `size` characters more (then spent)."""
        now = time.monotonic()
        refill = (now - self._monitor_counted) * MONITOR_CHARS_PER_S
        self._monitor_budget = min(float(RELAY_FRAME), self._monitor_budget + refill)
        self._monitor_counted = now
        if size > self._monitor_budget:
            return False
        self._monitor_budget -= size
        return True

    def _take(self, frame: dict, size: int) -> None:
        """One frame from the tab, of `size` characters."""
        kind = frame["type"]
        if kind != "monitor" and size > MAX_FRAME:
            raise BadFrame(f"a frame may be at most {MAX_FRAME} characters (a monitor frame more)")
        if kind == "output":
            offset, data = frame.get("offset"), frame.get("data")
            if not is_int(offset) or offset < 0 or not isinstance(data, str):
                raise BadFrame(
                    'output needs "offset", a non-negative integer, and "data", a string'
                )
            if len(data.encode(errors="replace")) > MAX_INPUT * 4:
                raise BadFrame(f"output may be at most {MAX_INPUT * 4} bytes a frame")
            self.take_output(offset, data)
        elif kind == "size":
            cols, rows = frame.get("cols"), frame.get("rows")
            if not (is_size(cols) and is_size(rows)):
                raise BadFrame(f'size needs "cols" and "rows", integers 1..{MAX_COLS_ROWS}')
            self.observe("r", f"{cols}x{rows}")
        elif kind == "keys":
            data = frame.get("data")
            if not isinstance(data, str) or len(data.encode(errors="replace")) > MAX_INPUT:
                raise BadFrame(f'keys needs "data", a string of at most {MAX_INPUT} bytes')
            if self._keys_wanted:  # else a recording that wanted them has just stopped
                self.observe("i", data)
        elif kind == "agent-reply":
            try:
                self.agents.take_reply(frame)
            except BadReply as exc:
                raise BadFrame(str(exc)) from None
        elif kind == "monitor":
            if not self._monitor_wanted or not self._afford(size):
                return  # unasked (a recording just stopped), or past the tab's budget
            try:
                snapshot = normalize(frame.get("snapshot"))
            except BadSnapshot as exc:
                raise BadFrame(f'monitor needs "snapshot", a MonitorSnapshot: {exc}') from None
            self.monitor.publish(snapshot)
        else:
            raise BadFrame(
                f"unknown frame type {kind!r}; expected output, size, keys, agent-reply or monitor"
            )


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
