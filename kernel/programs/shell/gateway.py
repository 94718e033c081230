"""Serving outside agents: AgentPort requests run as this shell's own calls.

An MCP client or a REST caller drives a session through its shell, which
answers with the caps it holds and through the same checks a typed line
gets: the same name resolution, the same schema conversion
(`values.to_params`), the same spawn grants. Calls run in the background
of the shell's reactor, so a slow target never freezes the terminal; the
names an agent binds show up in `caps` for the person at it. No request
ends the shell: whatever goes wrong while serving one is that request's
answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from kernel.abi import Err
from kernel.codec import EncodeError, Method
from kernel.programs.shell.commands import Commands
from kernel.programs.shell.shell import CALL_RESULT_SIZE, CommandError
from kernel.programs.shell.syntax import MAX_NESTING, CapRef, Launch
from kernel.programs.shell.tools import json_schema, plain
from kernel.programs.shell.values import InputError, caps_in, to_params
from kernel.runtime import Cap, Pending, RemoteError, TransportFailure
from kernel.runtime.buffers import BufferExhausted

# A process's buffers total 56 KiB, shared by everything the shell has in flight.
MAX_JSON = 16 * 1024  # of an answer
REQUEST_SIZE = 8 * 1024  # the result buffer `next` answers into (the port sends <= 6 KiB)
_BIND_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


class Refused(Exception):
    """A request answered with an AgentError instead of results."""

    def __init__(self, kind: str, message: str, type_: str = "") -> None:
        super().__init__(message)
        self.kind, self.type, self.message = kind, type_, message


class Gateway:
    def __init__(self, commands: Commands, port: Cap) -> None:
        self.commands = commands
        self.shell = commands.shell
        self.rt = commands.rt
        self.port = port
        self._next: Pending | None = None

    def start(self) -> None:
        """Take the first request; each one taken asks for the next."""
        self._next = self.rt.begin(self.port, "next", result_size=REQUEST_SIZE)
        self.shell.watch(self._next.user_data, self._on_request)

    def _on_request(self, _user_data: int) -> None:
        assert self._next is not None  # the `next` this handler watches
        try:
            request = self.rt.result(self._next)["request"]
        except (RemoteError, TransportFailure) as exc:
            # The port refused this one (the kernel answers the agent); a port that
            # is gone refuses every `next`, so stop asking rather than spin.
            if isinstance(exc, RemoteError) and exc.type == "disconnected":
                self.shell.say(f"outside agents can no longer reach this shell: {exc}")
                return
            self.start()
            return
        self.start()
        self._answer(request["id"], lambda: self._serve(request))

    def _answer(self, request_id: int, serve: Callable[[], dict | None]) -> None:
        """Reply with what `serve` returns (None: it replies later), or with why it failed."""
        try:
            answer = serve()
        except Refused as exc:
            answer = _error(exc.kind, exc.message, exc.type)
        except Exception as exc:  # a bug must cost this request, never the session
            why = f"{type(exc).__name__}: {exc}"
            answer = _error("internal", f"the shell failed serving this request ({why})")
            self.shell.say(f"an outside agent's request failed in the shell ({why})")
        if answer is not None:
            self._reply(request_id, answer)

    def _reply(self, request_id: int, answer: dict) -> None:
        if "json" in answer and len(answer["json"].encode()) > MAX_JSON:
            size = len(answer["json"].encode())
            answer = _error("input", f"the answer is {size} bytes, over the {MAX_JSON} allowed")
        # Not waited for: the reactor's next cap_enter carries it to the kernel, which
        # hands it to the host at once, so the agent does not wait on our wake-up.
        try:
            pending = self.rt.begin(self.port, "reply", {"response": {"id": request_id, **answer}})
        except (EncodeError, BufferExhausted) as exc:  # the agent sees its request time out
            self.shell.say(f"an outside agent's answer was lost: {exc}")
            return
        self.shell.watch(pending.user_data, lambda _: self._replied(pending))

    def _replied(self, pending: Pending) -> None:
        try:
            self.rt.result(pending)
        except (RemoteError, TransportFailure) as exc:  # the agent sees its request time out
            self.shell.say(f"an outside agent's answer was lost: {exc}")

    # --- the requests ------------------------------------------------------------------

    def _serve(self, request: dict) -> dict | None:
        """The answer, or None when a call will answer from its completion."""
        try:
            if "listCaps" in request:
                return {"caps": self._held()}
            if "describeCap" in request:
                return {"json": _compact(self._describe(request["describeCap"]))}
            if "call" in request:
                self._call(request["id"], request["call"])
                return None
            if "spawn" in request:
                return self._spawn(request["id"], request["spawn"])
            if "guest" in request:  # the same broker grant `guest` typed at the prompt gets
                self.commands.guest([])
                return {"caps": self._held()}
        except (CommandError, InputError) as exc:
            raise Refused("input", str(exc)) from None
        except EncodeError as exc:  # a spawn's binary or grant name that is not Unicode
            raise Refused("input", f"the request does not encode: {exc}") from None
        except RemoteError as exc:
            raise Refused("capException", exc.message, exc.type) from None
        except TransportFailure as exc:
            raise Refused("transport", str(exc), _code_name(exc.code)) from None
        except BufferExhausted:
            raise Refused("busy", "too many calls in flight in this shell; retry shortly") from None
        raise Refused("input", "unknown request: this shell does not serve it")

    def _held(self) -> list[dict]:
        return [
            {"name": name, "interface": binding.cap.interface.name, "origin": binding.origin}
            for name, binding in sorted(self.shell.names.items())
            if binding.cap is not None and binding.cap.interface is not None
        ]

    def _describe(self, name: str) -> dict:
        cap = self.commands.resolve(name)
        if cap.interface is None:
            raise CommandError(f"{name}: its interface is not in the schema")
        interface = cap.interface
        return {
            "name": name,
            "interface": interface.name,
            "methods": [
                {
                    "name": method.name,
                    "description": method.doc or "",
                    "params": json_schema(method.params),
                    "results": json_schema(method.results),
                }
                for method in interface.methods
            ],
        }

    def _call(self, request_id: int, call: dict) -> None:
        cap, method = self.commands.method(call["cap"], call["method"])
        where = f"{call['cap']}.{call['method']}"
        args = _json_object(call["paramsJson"] or "{}", f"{where}: the params")
        args = {key: _cap_refs(value, f"{where}: {key}", 1) for key, value in args.items()}
        params = to_params(method.params, args, self.commands.cap_value, where)
        bind = call["bind"]
        if bind:
            if not _BIND_NAME.fullmatch(bind):
                raise InputError(f"bind: {bind!r} is not a name (letters, digits, _ and -)")
            self.commands.check_bindable(bind)
        pending = self.rt.begin(cap, method.name, params, result_size=CALL_RESULT_SIZE)
        self.shell.watch(
            pending.user_data,
            lambda _: self._answer(request_id, lambda: self._results(pending, method, bind)),
        )

    def _results(self, pending: Pending, method: Method, bind: str) -> dict:
        """A finished call's answer: its results, caps in them bound or released."""
        try:
            results = self.rt.result(pending)
        except RemoteError as exc:
            raise Refused("capException", exc.message, exc.type) from None
        except TransportFailure as exc:
            raise Refused("transport", str(exc), _code_name(exc.code)) from None
        self.commands.forget_moved()
        found = caps_in(method.results, results)
        kept: dict[int, str] = {}
        if bind and found:
            self.commands.bind(bind, method.results, results, found)
            kept = {id(c): bind if len(found) == 1 else f"{bind}.{p}" for p, c in found}
        else:
            for _path, held in found:
                held.release()
        answer = {"results": plain(_caps_out(results, kept))}
        if found and not bind:
            answer["note"] = "caps in the results were released: pass bind to keep them"
        return {"json": _compact(answer)}

    def _spawn(self, request_id: int, spawn: dict) -> dict | None:
        """The child's job; with `wait`, None now and the answer once it exits."""
        grants = _json_object(spawn["grantsJson"] or "{}", "spawn: the grants")
        launch = Launch("spawn", spawn["binary"], [_grant(n, g) for n, g in grants.items()])
        job, kept = self.commands.spawn_job(launch)
        self.shell.say(f"[{job.number}] {job.binary} (pid {job.pid}), spawned by an agent")
        for line in kept:
            self.shell.say(line)
        started = {"job": job.number, "pid": job.pid, "binary": job.binary, "kept": kept}

        def ended() -> dict:
            return {
                "json": _compact({**started, "exit_code": job.exit_code, "exit": job.status_text})
            }

        if not spawn.get("wait"):
            return {"json": _compact(started)}
        if job.done:
            return ended()
        job.exited.append(lambda: self._answer(request_id, ended))
        return None


def _json_object(text: str, what: str) -> dict:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{what} are not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object")
    return value


def _cap_refs(value: Any, where: str, depth: int) -> Any:
    """A JSON argument with each {"$cap": "name"} (optionally "move": true) as a CapRef;
    no deeper than a typed line may nest, so a deep one is refused, not a RecursionError."""
    if isinstance(value, dict | list) and depth > MAX_NESTING:
        raise InputError(f"{where}: lists and objects nest at most {MAX_NESTING} deep")
    if isinstance(value, dict):
        if "$cap" in value and set(value) <= {"$cap", "move"}:
            if not isinstance(value["$cap"], str) or not isinstance(value.get("move", False), bool):
                raise InputError(
                    f'{where}: a cap is written {{"$cap": "name"}} (and "move": true to move it)'
                )
            return CapRef(value["$cap"], move=value.get("move", False))
        return {key: _cap_refs(item, where, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_cap_refs(item, where, depth + 1) for item in value]
    return value


def _grant(name: str, source: Any) -> tuple[str, CapRef]:
    if isinstance(source, str):
        return name, CapRef(source)
    if isinstance(source, dict) and len(source) == 1:
        ((how, what),) = source.items()
        if how in ("move", "client", "new") and isinstance(what, str):
            return name, CapRef(what, **{how: True})
    raise InputError(
        f'grant {name!r}: write "capName", {{"move": "capName"}}, {{"client": "capName"}} '
        'or {"new": "Interface"}'
    )


def _caps_out(value: Any, kept: dict[int, str]) -> Any:
    """Results with each cap as {"$cap": the name it is kept under, or null}."""
    if isinstance(value, Cap):
        interface = value.interface.name if value.interface else "?"
        return {"$cap": kept.get(id(value)), "interface": interface}
    if isinstance(value, dict):
        return {key: _caps_out(item, kept) for key, item in value.items()}
    if isinstance(value, list):
        return [_caps_out(item, kept) for item in value]
    return value


def _error(kind: str, message: str, type_: str = "") -> dict:
    # A message may quote the request, lone surrogates and all: escape them so it encodes.
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return {"error": {"kind": kind, "type": type_, "message": text}}


def _code_name(code: int) -> str:
    try:
        return Err(code).name
    except ValueError:
        return str(code)


def _compact(value: Any) -> str:
    """JSON without spaces: an answer must fit MAX_JSON, and a whole-system monitor
    snapshot nearly fills it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
