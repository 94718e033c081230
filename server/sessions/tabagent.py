"""An outside agent's requests to a tab session, carried over the owner's relay.

A tab's kernel runs in the owner's browser, so the server cannot reach its
shell as it reaches a VM's (the control channel). Instead each AgentRequest
goes to the tab as an `agent` frame; the page hands it to its kernel's
AgentPort, the tab's own shell serves it exactly as in a VM
(kernel/programs/shell/gateway.py), and the page sends the AgentResponse
back as an `agent-reply` frame (the protocol is in server/sessions/tab.py).
The server never touches the tab's kernel: it only matches answers to the
requests it sent, and checks that each answer is one an AgentPort gives.

Everything is bounded: requests waiting for the tab, the time each may wait,
and the shape and size of each answer. A tab that goes away, an owner who
revokes the link and a call that times out each fail the call with a reason.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from server.jsonbody import is_int
from server.sessions.live import SessionError

T = TypeVar("T")
MAX_PENDING = 16  # requests sent to one tab and not yet answered
MAX_JSON = 16 * 1024  # an answer's `json`, in UTF-8 bytes: the shell's own limit
MAX_CAPS = 512  # names in a listCaps answer
MAX_TEXT = 1024  # a cap's name, interface or origin, or an error's message, in UTF-8 bytes
REVOKED = "the session's owner revoked this agent link"
ERROR_KINDS = ("input", "capException", "transport", "busy", "gone", "internal")


class BadReply(Exception):
    """An agent-reply frame the server does not accept; the message says why."""


class TabAgents:
    """The agent requests one tab has not answered yet; `send(frame, what)` queues a frame
    to the tab, or raises SessionError saying why it cannot."""

    def __init__(self, send: Callable[[dict, str], None]) -> None:
        self._send = send
        self._pending: dict[int, asyncio.Future[dict]] = {}
        # Ids start anywhere: the tab's kernel outlives a relay, and an answer it still
        # owes a request from before must not match one of ours.
        self._ids = itertools.count(secrets.randbits(32))

    async def ask(
        self, request: dict[str, Any], timeout: float, cut: asyncio.Event, expires_at: float
    ) -> dict:
        """Send `request` (an AgentRequest without its id) and wait for the tab's answer:
        at most `timeout` seconds, until the link expires, or until `cut` (revoked).
        SessionError when it cannot be sent or is cut off; TimeoutError when unanswered."""
        if len(self._pending) >= MAX_PENDING:
            raise SessionError(
                f"{MAX_PENDING} requests are already waiting for this tab: wait for some", 503
            )
        request_id = next(self._ids) & 0xFFFFFFFF
        answer: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        self._send({"type": "agent", "id": request_id, "request": request}, "the request")
        self._pending[request_id] = answer
        try:
            return await unless_cut(answer, cut, min(timeout, expires_at - time.time()))
        except TimeoutError:
            if time.time() >= expires_at:
                raise SessionError("this agent link has expired", 410) from None
            raise
        finally:
            self._pending.pop(request_id, None)

    def take_reply(self, frame: dict) -> None:
        """An agent-reply frame from the tab; BadReply when it is not one we can take."""
        request_id = frame.get("id")
        if not is_int(request_id):
            raise BadReply('agent-reply needs "id", the integer of the agent frame it answers')
        answer = self._pending.get(request_id)
        if answer is None or answer.done():
            raise BadReply(
                f"no agent request {request_id} is waiting (it timed out, was cut off, "
                "or was never sent)"
            )
        try:
            response = checked_response(frame.get("response"))
        except BadReply as exc:  # the call fails now, not when it times out
            answer.set_exception(SessionError(f"the tab sent a malformed answer: {exc}", 502))
            raise
        answer.set_result(response)

    def fail(self, reason: str, status: int) -> None:
        """End every request waiting for the tab (its relay went away, or it ended)."""
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(SessionError(reason, status))


async def unless_cut(work: Awaitable[T], cut: asyncio.Event, timeout: float | None) -> T:
    """What `work` comes to, unless `cut` is set first (SessionError: the link was revoked)
    or `timeout` seconds pass first (TimeoutError); either way `work` is cancelled."""
    task = asyncio.ensure_future(work)
    revoked = asyncio.ensure_future(cut.wait())
    wait = None if timeout is None else max(0.0, timeout)
    try:
        await asyncio.wait((task, revoked), timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        revoked.cancel()
        await asyncio.gather(task, revoked, return_exceptions=True)
    if not task.cancelled():
        return task.result()
    if cut.is_set():
        raise SessionError(REVOKED, 410)
    raise TimeoutError


def checked_response(response: object) -> dict:
    """An AgentResponse (without its id) as the tab's AgentPort gives one, or BadReply."""
    if not isinstance(response, dict) or len(response) != 1:
        raise BadReply('"response" must be an object with one of "caps", "json" or "error"')
    if "json" in response:
        text = response["json"]
        if not isinstance(text, str) or len(text.encode(errors="replace")) > MAX_JSON:
            raise BadReply(f'"json" must be a string of at most {MAX_JSON} bytes')
        return {"json": text}
    if "caps" in response:
        caps = response["caps"]
        if not isinstance(caps, list) or len(caps) > MAX_CAPS:
            raise BadReply(f'"caps" must be a list of at most {MAX_CAPS} held caps')
        fields = ("name", "interface", "origin")
        if not all(isinstance(cap, dict) and set(cap) == set(fields) for cap in caps) or not all(
            _text(cap[field]) for cap in caps for field in fields
        ):
            raise BadReply('each held cap must be {"name", "interface", "origin"}, short strings')
        return {"caps": caps}
    if "error" in response:
        error = response["error"]
        if (
            not isinstance(error, dict)
            or error.get("kind") not in ERROR_KINDS
            or not _text(error.get("type"))
            or not _text(error.get("message"))
        ):
            kinds = ", ".join(ERROR_KINDS)
            raise BadReply(f'"error" must be {{"kind" (one of {kinds}), "type", "message"}}')
        return {"error": {k: error[k] for k in ("kind", "type", "message")}}
    raise BadReply('"response" must be an object with one of "caps", "json" or "error"')


def _text(value: object) -> bool:
    return isinstance(value, str) and len(value.encode(errors="replace")) <= MAX_TEXT
