"""What outside agents do with server-hosted sessions: one place for MCP and the REST API.

Every operation on a session's capabilities is an AgentRequest that the
session's own shell serves over the VM's control channel
(kernel/programs/shell/gateway.py). The server never touches a kernel
object, so an agent holds exactly what that shell holds and meets the
same checks. A tab session is reached the same way through an agent link
(server/shares.py): the link's token is the session argument, and each
request crosses the owner's relay to the tab's own shell
(server/sessions/tabagent.py). What the server decides lives here: who
may use which session, how fast a client may call, how long a call may
take, and what each failure is called (`AgentError.kind`, with the HTTP
status that fits).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

from server.admission import Refused
from server.control import ControlClient, ControlError
from server.hosting import QemuHosting
from server.metrics import Metrics
from server.pool import PoolFull
from server.ratelimit import RateLimiter
from server.sessions.directory import SessionDirectory
from server.sessions.live import SessionError
from server.sessions.qemu import QemuSession
from server.sessions.tab import TabSession
from server.sessions.tabagent import unless_cut
from server.settings import AgentLimits
from server.shares import Share, ShareError
from server.sharing import Sharing
from server.stream import Chunk, Ended, OutputStream, Reset

MAX_INPUT = 16 * 1024  # UTF-8 bytes a terminal_write may send
MAX_READ = 64 * 1024
MAX_WAIT_MS = 10_000  # the longest terminal_read waits for output
MAX_NAME = 48  # a cap, method, binary or bind name (the CapSet's limit)
MAX_RECORDS = 50  # recent calls or logs in a monitor snapshot (the shell answers <= 16 KiB)
MAX_PROMPT = 4 * 1024  # characters of a generate prompt or system message
MAX_GENERATED = 64 * 1024  # characters of text one generation returns (the model stops sooner)
# An agent link, as its token or its whole address (…/s/TOKEN): the session argument.
LINK = re.compile(r"(?:.*/s/)?([A-Za-z0-9_-]{43})/?")
NO_OWNER = (
    "no owner token: pass `owner`, the token create_session returned "
    "(leave it out of create_session to get a new one)"
)
NOT_FOR_LINKS = (
    "an agent link cannot end the tab's session: only its owner can, by closing the tab; "
    "the owner revokes the link to cut the agent off"
)

# What each kind of failure is, as an HTTP status.
STATUS = {
    "input": 400,  # refused before anything was sent: nothing happened
    "forbidden": 403,  # another client's session
    "notFound": 404,
    "gone": 410,  # the session ended
    "capException": 422,  # the target raised a CapException (`type` names it)
    "rateLimited": 429,
    "limit": 429,  # sessions per client
    "transport": 502,  # the kernel refused the call, or the VM's channel failed
    "busy": 503,  # no VM free, or the shell did not take the request in time
    "unavailable": 503,  # this server runs no sessions
    "timeout": 504,
    "model": 502,  # the session's model failed (its message says why)
    "internal": 500,  # the shell failed serving the request (a bug); it serves on
}


class AgentError(Exception):
    """An operation failed; `kind` says how (see STATUS), the message what to do."""

    def __init__(
        self, kind: str, message: str, *, type_: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind, self.type, self.message = kind, type_, message
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return STATUS.get(self.kind, 500)

    def as_dict(self) -> dict:
        error: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if self.type:
            error["type"] = self.type
        if self.retry_after is not None:
            error["retry_after"] = math.ceil(self.retry_after)
        return error


@dataclass(frozen=True)
class Caller:
    """Who asks. An MCP client holds an owner token (owner_caller): it owns the sessions it
    created with that token and may use no other. A REST caller holds a session by its
    id, which is a 128-bit secret. Either may hold an agent link to a tab session instead,
    which is the credential then (no owner token needed)."""

    key: str  # "owner:<its token's digest>" ("" without a token), "rest:<address>"
    owns_sessions: bool
    client: str  # its address (server/admission.py): the per-client limits and call rate
    new_owner: bool = False  # a token minted for this call: it owns nothing yet


def new_owner_token() -> str:
    """A fresh owner token: 192 random bits, the credential a client's sessions bind to."""
    return secrets.token_urlsafe(24)


def owner_caller(token: str, client: str, new: bool = False) -> Caller:
    """The client holding `token`, from `client` (its address). The server keeps only
    the token's digest, so its memory and logs hold nothing a caller could present.
    Without a token it reaches only tab sessions, through agent links."""
    if not token:
        return Caller("", owns_sessions=True, client=client)
    digest = hashlib.sha256(token.encode(errors="replace")).hexdigest()
    return Caller(f"owner:{digest}", owns_sessions=True, client=client, new_owner=new)


class Agents:
    def __init__(
        self,
        hosting: QemuHosting | None,
        directory: SessionDirectory,
        hub: Sharing,
        metrics: Metrics,
        limits: AgentLimits | None = None,
    ) -> None:
        """`hosting`: None when this server runs no QEMU sessions. `hub` makes the view link
        each new session is watched through."""
        self.hosting, self.directory, self.hub, self.metrics = hosting, directory, hub, metrics
        self.limits = limits or AgentLimits()
        self._owners: dict[str, str] = {}  # session id -> the key of the client that made it
        self._rate = RateLimiter(self.limits.calls_per_s, self.limits.burst)

    # --- sessions -------------------------------------------------------------------------

    async def create_session(self, caller: Caller, backend: str = "qemu") -> dict:
        self._admit(caller)
        if caller.owns_sessions and not caller.key:
            raise AgentError("forbidden", NO_OWNER)
        hosting = self._hosting()
        if caller.owns_sessions:
            self._forget_forgotten()
            if not caller.new_owner and caller.key not in self._owners.values():
                raise AgentError(
                    "forbidden",
                    "unknown owner token (its sessions have all ended, or it was never "
                    "given out): leave `owner` out of create_session to get a new one",
                )
            mine = [
                session_id
                for session_id, owner in self._owners.items()
                if owner == caller.key and self._live(session_id)
            ]
            if len(mine) >= self.limits.sessions_per_client:
                raise AgentError(
                    "limit",
                    f"this client already has {len(mine)} sessions, the most it may hold: "
                    "end one (end_session) first",
                )
        try:
            session = await self._create(hosting, backend, caller.client)
        except PoolFull as exc:
            raise AgentError("busy", str(exc), retry_after=exc.retry_after) from None
        except Refused as exc:
            raise AgentError("limit", str(exc), retry_after=exc.retry_after) from None
        except SessionError as exc:
            kind = "input" if exc.status == 400 else "busy"
            raise AgentError(kind, str(exc), retry_after=None if kind == "input" else 30) from None
        if caller.owns_sessions:
            self._owners[session.id] = caller.key
        try:  # as a visitor's first step: the demo bundle comes with the guest profile
            await self._ask_session(session, self.limits.call_timeout_s, guest=None)
        except AgentError:
            session.end("its shell did not take the guest profile")
            raise
        return {**session.info(), **await self._watch_link(caller, session)}

    async def _watch_link(self, caller: Caller, session: QemuSession) -> dict:
        """{"watch": a view link's path} for a person to watch the session by. Never the id:
        that is the owner's credential, and a watch link gets passed around. A session works
        without one, so a link the hub cannot make now is a reason, not a failure."""
        try:
            share, token = await self.hub.share(session, "view", None, caller.client)
        except (ShareError, SessionError) as exc:
            return {"watch_error": f"no view link to watch it by: {exc}"}
        return {"watch": f"/s/{token}", "watch_expires_at": share.expires_at}

    async def _create(self, hosting: QemuHosting, backend: str, client: str) -> QemuSession:
        """A session on a warm VM, waiting for one while the pool is booting it (an agent
        would only ask again); PoolFull at once when every VM is taken."""
        deadline = time.monotonic() + self.limits.boot_wait_s
        waiting = False
        try:
            while True:
                try:
                    return hosting.create(backend, client)
                except PoolFull:
                    if not hosting.pool.filling() or time.monotonic() > deadline:
                        raise
                if not waiting:
                    waiting = True
                    self.metrics.pool_waiting.inc()
                await asyncio.sleep(0.1)
        finally:
            if waiting:
                self.metrics.pool_waiting.dec()

    async def fork_session(self, caller: Caller, session_id: str) -> dict:
        """A new session on a copy of this one's VM, under a new owner token of its own
        (`owner` in the answer); it counts against the caller's limits."""
        hosting = self._hosting()
        async with self._running(caller, session_id) as source:
            try:
                fork, cost = await hosting.fork(source.live)
            except PoolFull as exc:
                raise AgentError("busy", str(exc), retry_after=exc.retry_after) from None
            except Refused as exc:
                raise AgentError("limit", str(exc), retry_after=exc.retry_after) from None
            except SessionError as exc:  # it ended, or its VM could not be copied now
                if exc.status == 410:
                    raise AgentError("gone", str(exc)) from None
                raise AgentError("busy", str(exc), retry_after=5) from None
        token = new_owner_token()
        if caller.owns_sessions:
            self._owners[fork.id] = owner_caller(token, caller.client).key
        watch = await self._watch_link(caller, fork)
        return {**fork.info(), **watch, "owner": token, "fork": cost}

    async def end_session(self, caller: Caller, session_id: str) -> dict:
        link = await self._link(caller, session_id, "end_session")
        if link is not None:
            link.called("end_session", "", "forbidden")
            raise AgentError("forbidden", NOT_FOR_LINKS)
        session = self._session(caller, session_id)
        session.end("ended by its owner")
        return {"id": session_id, "ended": True}

    # --- capabilities, through the session's shell ------------------------------------------

    async def list_caps(self, caller: Caller, session_id: str) -> dict:
        """{"caps": [{name, interface, origin}]}: what the session's shell holds."""
        answer = await self._ask(caller, session_id, listCaps=None)
        return {"caps": answer["caps"]}

    async def guest(self, caller: Caller, session_id: str) -> dict:
        """{"caps": ...}: the shell takes the guest profile, as `guest` typed at it does, and
        holds the broker's guest bundle (a launcher, the demo services, a monitor)."""
        answer = await self._ask(caller, session_id, guest=None)
        return {"caps": answer["caps"]}

    async def describe_cap(self, caller: Caller, session_id: str, cap: str) -> dict:
        _check_name("cap", cap)
        return json.loads((await self._ask(caller, session_id, describeCap=cap))["json"])

    async def call_method(
        self,
        caller: Caller,
        session_id: str,
        cap: str,
        method: str,
        arguments: dict[str, Any] | None = None,
        bind: str = "",
    ) -> dict:
        for what, name in (("cap", cap), ("method", method)):
            _check_name(what, name)
        if bind:
            _check_name("bind", bind)
        return await self._call(caller, session_id, cap, method, arguments or {}, bind)

    async def _call(
        self,
        caller: Caller,
        session_id: str,
        cap: str,
        method: str,
        arguments: dict[str, Any],
        bind: str = "",
        admit: bool = True,
    ) -> dict:
        params = self._json(arguments, "arguments")
        call = {"cap": cap, "method": method, "paramsJson": params, "bind": bind}
        answer = await self._ask(caller, session_id, call=call, admit=admit)
        return json.loads(answer["json"])

    async def spawn(
        self,
        caller: Caller,
        session_id: str,
        binary: str,
        grants: dict[str, Any] | None = None,
        wait: bool = False,
    ) -> dict:
        """The child's job and pid; with `wait`, once it has exited, with its exit code."""
        _check_name("binary", binary)
        spawn = {"binary": binary, "grantsJson": self._json(grants or {}, "grants"), "wait": wait}
        timeout = self.limits.spawn_wait_s if wait else self.limits.call_timeout_s
        answer = await self._ask(caller, session_id, timeout, spawn=spawn)
        return json.loads(answer["json"])

    async def generate(
        self,
        caller: Caller,
        session_id: str,
        prompt: str,
        system: str = "",
        max_tokens: int = 256,
        cap: str = "model",
    ) -> dict:
        """One completion from the shell's LanguageModel cap `cap` (the model its agent mode
        uses), read to its end: {"text", "stop", "usage"}. The shell makes every call, as
        agent mode does; the reads belong to this one admitted call, and a caller that
        gives up (a cancelled task, a closed request) cancels the generation."""
        for what, given in (("prompt", prompt), ("system", system)):
            if len(given) > MAX_PROMPT:
                raise AgentError("input", f"{what} may be at most {MAX_PROMPT} characters")
        if not prompt.strip():
            raise AgentError("input", "prompt is empty: say what the model should answer")
        said = [("system", system)] if system else []
        messages = [
            {"role": role, "content": content, "toolCalls": [], "toolCallId": ""}
            for role, content in [*said, ("user", prompt)]
        ]
        params = {"maxTokens": max_tokens, "temperature": 0.0}
        request = {"messages": messages, "tools": [], "params": params}
        started = await self.call_method(caller, session_id, cap, "generate", request)
        stream = {"stream": started["results"]["stream"]}
        text: list[str] = []
        usage: dict[str, int] = {}
        try:
            async with asyncio.timeout(self.limits.generate_s):
                while True:
                    read = await self._call(caller, session_id, cap, "next", stream, admit=False)
                    for event in read["results"]["events"]:
                        if "error" in event:
                            raise AgentError("model", event["error"])
                        if "done" in event:
                            return {"text": "".join(text), "stop": event["done"], "usage": usage}
                        if sum(map(len, text)) < MAX_GENERATED:
                            text.append(event.get("textDelta", ""))
                        usage = event.get("usage", usage)
        except TimeoutError:
            await self._cancel_generation(caller, session_id, cap, stream)
            message = f"the model did not finish within {self.limits.generate_s:g} s"
            raise AgentError("timeout", message) from None
        except asyncio.CancelledError:
            await self._cancel_generation(caller, session_id, cap, stream)
            raise

    async def _cancel_generation(
        self, caller: Caller, session_id: str, cap: str, stream: dict
    ) -> None:
        """Stop a generation nobody reads any more, so the model serves someone else."""
        with contextlib.suppress(AgentError, TimeoutError):
            async with asyncio.timeout(5):
                cancel = self._call(caller, session_id, cap, "cancel", stream, admit=False)
                await asyncio.shield(cancel)

    # --- the terminal and the monitor ------------------------------------------------------

    async def terminal_write(self, caller: Caller, session_id: str, data: str) -> dict:
        size = len(data.encode(errors="replace"))
        if size > MAX_INPUT:
            raise AgentError("input", f"at most {MAX_INPUT} bytes a write, not {size}")
        link = await self._link(caller, session_id, "terminal_write")
        if link is not None:
            async with link.call("terminal_write", f"{size} bytes"):
                try:
                    link.tab.input(data.encode(errors="replace"))
                except SessionError as exc:
                    raise AgentError("busy", str(exc), retry_after=1) from None
                return {"written": size, "output_offset": link.tab.stream.end}
        async with self._running(caller, session_id) as session:
            try:
                session.live.input(data.encode(errors="replace"))
            except SessionError as exc:
                raise AgentError("busy", str(exc), retry_after=1) from None
            return {"written": size, "output_offset": session.live.stream.end}

    async def terminal_read(
        self,
        caller: Caller,
        session_id: str,
        offset: int | None = None,
        max_bytes: int = 16 * 1024,
        wait_ms: int = 0,
    ) -> dict:
        """Output from `offset` (see `_read`)."""
        if not 1 <= max_bytes <= MAX_READ or not 0 <= wait_ms <= MAX_WAIT_MS:
            raise AgentError(
                "input", f"max_bytes must be 1..{MAX_READ} and wait_ms 0..{MAX_WAIT_MS}"
            )
        link = await self._link(caller, session_id, "terminal_read")
        if link is None:
            return await _read(self._session(caller, session_id).stream, offset, max_bytes, wait_ms)
        async with link.call("terminal_read", "" if offset is None else f"from {offset}"):
            return await link.guard(_read(link.tab.stream, offset, max_bytes, wait_ms))

    async def monitor_snapshot(
        self,
        caller: Caller,
        session_id: str,
        cap: str = "monitor",
        max_calls: int = 0,
        max_logs: int = 0,
    ) -> dict:
        """What the shell's SystemMonitor cap `cap` sees: by default the `monitor` its
        manifest gave it; a narrower one it made (monitor.subtree) sees less, and a shell
        that holds none shows nothing. The same authority as `top` typed at it."""
        if not 0 <= max_calls <= MAX_RECORDS or not 0 <= max_logs <= MAX_RECORDS:
            raise AgentError("input", f"max_calls and max_logs must be 0..{MAX_RECORDS}")
        params = {"maxCalls": max_calls, "maxLogs": max_logs}
        try:
            answer = await self.call_method(caller, session_id, cap, "snapshot", params)
        except AgentError as exc:
            if exc.kind != "input":
                raise
            raise AgentError(
                "input",
                f"{exc.message} (a snapshot comes through the shell, whose answers are at "
                "most 16 KiB: ask for fewer max_calls and max_logs, or narrow the view with "
                "monitor.subtree(pid=N) and `bind`, then pass that name as `cap`)",
            ) from None
        return answer["results"]["snapshot"]

    # --- inside ---------------------------------------------------------------------------------

    def _hosting(self) -> QemuHosting:
        if self.hosting is None:
            raise AgentError(
                "unavailable",
                "this server runs no sessions (start it with `capos-playground serve` "
                "and --max-vms above 0)",
            )
        return self.hosting

    def _live(self, session_id: str) -> bool:
        session = self.directory.get(session_id, QemuSession)
        return session is not None and session.reason is None

    def _admit(self, caller: Caller) -> None:
        wait = self._rate.wait_s(caller.client)
        if wait:
            raise AgentError(
                "rateLimited",
                f"too many calls: at most {self.limits.calls_per_s:g} a second "
                f"(bursts of {self.limits.burst}); retry in {wait:.2f} s",
                retry_after=wait,
            )

    def _session(self, caller: Caller, session_id: str, admit: bool = True) -> QemuSession:
        """The caller's live session; `admit`: count this against the caller's call rate."""
        if admit:
            self._admit(caller)
        if caller.owns_sessions and not caller.key:
            raise AgentError("forbidden", NO_OWNER)
        self._hosting()
        session = self.directory.get(session_id, QemuSession)
        owner = self._owners.get(session_id)
        if caller.owns_sessions and session is not None and owner != caller.key:
            raise AgentError(
                "forbidden",
                f"session {session_id[:40]!r} is not this owner token's: pass the `owner` "
                "token create_session gave with it, or make your own session",
            )
        if session is None:
            raise AgentError(
                "notFound", f"no session {session_id[:40]!r} (it never existed, or ended long ago)"
            )
        if session.reason is not None:  # ended, or ending
            raise AgentError("gone", f"the session ended: {session.reason}")
        return session

    @contextlib.asynccontextmanager
    async def _running(
        self, caller: Caller, session_id: str, admit: bool = True
    ) -> AsyncIterator[Running]:
        async with self._awake(self._session(caller, session_id, admit)) as running:
            yield running

    @contextlib.asynccontextmanager
    async def _awake(self, session: QemuSession) -> AsyncIterator[Running]:
        """The session with its VM running, kept awake (restored if it was suspended)."""
        async with session.attached():
            try:
                vm = await session.running_vm(self.limits.wake_timeout_s)
            except SessionError as exc:
                kind = "gone" if exc.status == 410 else "busy"
                raise AgentError(
                    kind, str(exc), retry_after=None if kind == "gone" else 5
                ) from None
            yield Running(session, vm.control)

    async def _link(
        self, caller: Caller, session_id: str, tool: str, admit: bool = True
    ) -> TabLink | None:
        """The tab session an agent link opens, when `session_id` is one; None when it
        is not a link's token (a session id). AgentError when the link does not work,
        which the tab's page is told when there is one (`tool` was refused)."""
        match = LINK.fullmatch(session_id)
        if match is None:
            return None
        if admit:
            self._admit(caller)
        try:
            share = await self.hub.find_share(match.group(1))
        except SessionError as exc:  # Redis is away and this replica does not know it
            raise AgentError("busy", str(exc), retry_after=5) from None
        if share is None:
            raise AgentError("notFound", "no such agent link (check it was copied whole)")
        if share.mode != "agent":
            raise AgentError(
                "forbidden", f"this is a {share.mode} link: an agent needs an agent link"
            )
        tab = self.directory.get(share.session_id, TabSession)
        why = share.gone()
        if tab is None or tab.reason is not None:
            why = why or f"the tab session this link reached has ended: {_reason(tab)}"
        if why is not None:
            if tab is not None:  # the owner's page shows what was refused, and why
                tab.agent_called(share.id, tool, "", "gone")
            raise AgentError("gone", why)
        assert tab is not None  # the check above
        return TabLink(tab, share)

    async def _ask(
        self,
        caller: Caller,
        session_id: str,
        timeout: float | None = None,
        admit: bool = True,
        **request: Any,
    ) -> dict:
        timeout = timeout or self.limits.call_timeout_s
        tool, target = _label(request)
        link = await self._link(caller, session_id, tool, admit)
        if link is not None:
            async with link.call(tool, target):
                return _answered(await link.ask(request, timeout))
        live = self._session(caller, session_id, admit)
        return await self._ask_session(live, timeout, **request)

    async def _ask_session(self, live: QemuSession, timeout: float, **request: Any) -> dict:
        """One request answered by the session's shell; an error answer as an AgentError."""
        async with self._awake(live) as session:
            try:
                answer = await session.control.agent(timeout, **request)
            except TimeoutError:
                message = f"the session did not answer within {timeout:g} s"
                raise AgentError("timeout", message) from None
            except ControlError as exc:
                raise AgentError("transport", str(exc)) from None
        return _answered(answer)

    def _json(self, value: Any, what: str) -> str:
        if not isinstance(value, dict):
            raise AgentError("input", f"{what} must be a JSON object")
        text = json.dumps(value, ensure_ascii=False)
        if len(text.encode()) > self.limits.max_params_json:
            raise AgentError(
                "input", f"{what} may be at most {self.limits.max_params_json} bytes of JSON"
            )
        return text

    def _forget_forgotten(self) -> None:
        """Owners of sessions the directory no longer knows (it keeps ended ones a while)."""
        for session_id in [s for s in self._owners if self.directory.get(s, QemuSession) is None]:
            del self._owners[session_id]


@dataclass(frozen=True)
class TabLink:
    """A tab session reached through an agent link, for one operation."""

    tab: TabSession
    share: Share

    async def ask(self, request: dict, timeout: float) -> dict:
        """The tab's shell's answer to `request`, over the owner's relay."""
        try:
            return await self.tab.agents.ask(
                request, timeout, self.share.cut, self.share.expires_at
            )
        except TimeoutError:
            raise AgentError("timeout", f"the tab did not answer within {timeout:g} s") from None
        except SessionError as exc:
            raise _tab_error(exc) from None

    async def guard(self, work: Awaitable[dict]) -> dict:
        """What `work` answers, unless the owner revokes the link first."""
        try:
            return await unless_cut(work, self.share.cut, None)
        except SessionError as exc:
            raise _tab_error(exc) from None

    @contextlib.asynccontextmanager
    async def call(self, tool: str, target: str) -> AsyncIterator[None]:
        """Tell the owner's page what the agent does and how it went."""
        try:
            yield
        except AgentError as exc:
            self.called(tool, target, exc.kind)
            raise
        self.called(tool, target, "ok")

    def called(self, tool: str, target: str, outcome: str) -> None:
        self.tab.agent_called(self.share.id, tool, target[: MAX_NAME * 2 + 1], outcome)


def _tab_error(exc: SessionError) -> AgentError:
    kind = {410: "gone", 502: "transport"}.get(exc.status, "busy")
    return AgentError(kind, str(exc), retry_after=1 if kind == "busy" else None)


def _answered(answer: dict) -> dict:
    """An AgentResponse's answer, or the AgentError it carries."""
    if "error" in answer:
        error = answer["error"]
        raise AgentError(error["kind"], error["message"], type_=error["type"])
    return answer


def _reason(tab: TabSession | None) -> str:
    return "it is no longer known here" if tab is None else str(tab.reason)


def _label(request: dict) -> tuple[str, str]:
    """The MCP tool an AgentRequest serves, and what it targets: for the owner's page."""
    if "describeCap" in request:
        return "describe_cap", request["describeCap"]
    if "call" in request:
        return "call_method", f"{request['call']['cap']}.{request['call']['method']}"
    if "spawn" in request:
        return "spawn", request["spawn"]["binary"]
    return "list_caps", ""


async def _read(stream: OutputStream, offset: int | None, max_bytes: int, wait_ms: int) -> dict:
    """Terminal output from `offset` (None: the oldest byte kept), as the terminal
    websocket sends it; waits up to `wait_ms` when there is none yet."""
    at = stream.start if offset is None else offset
    item = stream.read(at, max_bytes)
    if item is None and wait_ms:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_ms / 1000):
                item = await stream.next(at, max_bytes)
    reset = isinstance(item, Reset)
    if isinstance(item, Reset):  # what was asked for is gone: continue from the oldest
        at = item.offset
        item = stream.read(at, max_bytes)
    data = item.data if isinstance(item, Chunk) else ""
    return {
        "offset": at,
        "data": data,
        "next_offset": at + len(data.encode()),
        "reset": reset,
        "ended": item.reason if isinstance(item, Ended) else None,
    }


@dataclass(frozen=True)
class Running:
    """A session whose VM runs, and that VM's control channel, for one operation."""

    live: QemuSession
    control: ControlClient


def _check_name(what: str, name: str) -> None:
    if not name or len(name.encode()) > MAX_NAME:
        raise AgentError("input", f"{what} must be a name of 1..{MAX_NAME} bytes")
