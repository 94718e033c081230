"""AgentPort: how outside agents (MCP, the REST API) reach the shell of a session.

The host submits requests; the shell holding this cap takes them with
`next` and answers each with `reply`, which the kernel hands back to the
host. The port is a queue and nothing more: what a request can do is
decided by the caps of the process that serves it. Everything is bounded:
requests waiting, the time one may wait (an agent that gave up must not
see its call run later), and each answer must come from the process that
took the request.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel.capobject import PENDING, CallContext, Deferred, KernelService, Pending
from kernel.codec import EncodeError, encode
from kernel.errors import CapError

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.process import Process

MAX_WAITING = 32  # requests queued and not yet taken
MAX_REQUEST = 6 * 1024  # encoded; a server takes each into an 8 KiB result buffer
MAX_WAIT_NS = 20 * 10**9  # a request not taken by then is answered `busy`, never run


@dataclass
class _Queued:
    request: dict
    since_ns: int


class AgentPort(KernelService):
    interface_name = "AgentPort"

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self.kernel = kernel
        self._waiting: deque[_Queued] = deque()
        self._readers: deque[tuple[Deferred, Process]] = deque()
        self._taken: dict[int, Process] = {}  # request id -> the process answering it
        self._watched: set[int] = set()  # pids whose end answers their requests
        self._next_results = self.interface.method("next").results

    # --- the interface ---------------------------------------------------------------

    def next(self, ctx: CallContext, params: dict) -> dict | Pending:
        self._expire()
        if self._waiting:
            return self._hand(self._waiting.popleft().request, ctx.caller)
        self._readers.append((self.defer(ctx), ctx.caller))
        return PENDING

    def reply(self, ctx: CallContext, params: dict) -> dict:
        response = params["response"]
        if self._taken.get(response["id"]) is not ctx.caller:
            raise CapError.invalid_argument(
                f"no request {response['id']} is waiting for this process's answer"
            )
        del self._taken[response["id"]]
        self.kernel.host.agent_reply(response)
        return {}

    # --- the host's side --------------------------------------------------------------

    def submit(self, request: dict) -> None:
        """Queue a request (an AgentRequest dict); its answer comes by `host.agent_reply`."""
        self._expire()
        if len(self._waiting) >= MAX_WAITING:
            self._refuse(request["id"], "busy", f"{MAX_WAITING} requests are already waiting")
            return
        try:
            size = len(encode(self._next_results, {"request": request}))
        except EncodeError as exc:
            self._refuse(request["id"], "input", f"the request does not encode: {exc}")
            return
        if size > MAX_REQUEST:
            self._refuse(request["id"], "input", f"the request is {size} bytes, over {MAX_REQUEST}")
            return
        while self._readers:
            reader, proc = self._readers.popleft()
            if reader.live:
                reader.resolve(self._hand(request, proc))
                return
        self._waiting.append(_Queued(request, self.kernel.uptime_ns()))

    # --- inside ------------------------------------------------------------------------

    def _hand(self, request: dict, proc: Process) -> dict:
        self._taken[request["id"]] = proc
        if proc.pid not in self._watched:
            self._watched.add(proc.pid)
            proc.on_end.append(self._server_ended)
        return {"request": request}

    def _expire(self) -> None:
        deadline = self.kernel.uptime_ns() - MAX_WAIT_NS
        while self._waiting and self._waiting[0].since_ns < deadline:
            stale = self._waiting.popleft().request
            why = f"the shell did not take it within {MAX_WAIT_NS // 10**9} s"
            self._refuse(stale["id"], "busy", why)

    def _refuse(self, request_id: int, kind: str, why: str) -> None:
        self.kernel.host.agent_reply(
            {"id": request_id, "error": {"kind": kind, "type": "", "message": why}}
        )

    def _server_ended(self, proc: Process) -> None:
        self._watched.discard(proc.pid)
        for request_id, server in list(self._taken.items()):
            if server is proc:
                del self._taken[request_id]
                self._refuse(request_id, "gone", "the shell serving this session ended first")
