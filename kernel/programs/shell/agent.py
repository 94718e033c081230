"""Agent mode: the shell is the runner of a tool-use loop with a LanguageModel.

The model proposes; the shell disposes. Each turn the model sees the
conversation and the tools (the shell's caps, as typed descriptors); each
call it proposes is checked against the tools the shell holds and their
schemas, gated by the tool's permission mode (deny, ask each time, allow
for this session), run as an ordinary typed call, shown, and its result
goes back to the model. Text and tool results stream to the terminal as
they come; Ctrl-C stops the loop wherever it is (a generation, a question,
a call) and `exit` leaves agent mode.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from kernel.programs.shell.lineedit import EndOfInput, Line
from kernel.programs.shell.shell import Shell
from kernel.programs.shell.tools import Tool, arguments, result_json
from kernel.programs.shell.values import InputError, caps_in, show
from kernel.runtime import Cap, RemoteError, TransportFailure

MODES = ("deny", "ask", "allow")  # allow: for this session of agent mode
MAX_STEPS = 6  # model turns per prompt: a loop that keeps calling tools stops here
MAX_CALLS_PER_TURN = 8
MAX_REQUEST_BYTES = 24 * 1024  # the conversation is trimmed, oldest turns first, to fit
NEXT_RESULT_SIZE = 16 * 1024
MAX_REPLY_CHARS = 16 * 1024  # a model turn's text past this is cut off (an endless stream)
GENERATE_PARAMS = {"maxTokens": 256, "temperature": 0.0}
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.:-]")

SYSTEM_PROMPT = (
    "You are the agent of a capOS shell. Each tool is a method of a capability the user "
    "holds; call one when the user asks for something it can do, one call at a time, "
    "then answer briefly with what it returned. If no tool fits, answer briefly."
)

HELP = """\
Agent mode: type a request; the model may propose tool calls, which this shell
checks and runs with its own caps. Commands:
  tools              the tools and their permission modes
  allow TOOL|all     run TOOL without asking, for this session of agent mode
  ask TOOL|all       ask before each call (the default)
  deny TOOL|all      never run TOOL (the model no longer sees it)
  exit               leave agent mode
Ctrl-C stops the model or the running call.
"""


class Interrupted(Exception):
    """The user pressed Ctrl-C (or input ended): the loop stops here."""


@dataclass
class Outcome:
    """What the runner sends back for one proposed call."""

    content: str  # JSON for the model
    audit: str  # one line for the log: what became of the call


class Agent:
    def __init__(
        self, shell: Shell, model: Cap, tools: dict[str, Tool], log: Cap | None = None
    ) -> None:
        """`log`: a Log cap the shell holds, if any: each proposed call is recorded there."""
        self.shell = shell
        self.log = log
        self.rt = shell.rt
        self.model = model
        self.tools = tools
        self.modes = dict.fromkeys(tools, "ask")
        self.messages: list[dict] = [_message("system", SYSTEM_PROMPT)]
        self.info = model.info()["info"]
        self.name = self.info["modelId"]
        self.ended = False  # input ended: leave agent mode and let the shell see it

    # --- the mode's own prompt -----------------------------------------------------------

    def run(self) -> None:
        info = self.info
        where = "on this machine, no network" if info["local"] else "remote"
        self.shell.say(f"agent: {self.name} is answering ({info['provider']}; {where}).")
        if info["note"]:
            self.shell.say(f"agent: {info['note']}")
        self.shell.say(
            f"agent: {len(self.tools)} tools from this shell's caps; each call asks first. "
            "help lists the commands, exit leaves."
        )
        shell_completer, self.shell.completer = self.shell.completer, self._complete
        try:
            self._prompt_loop()
        finally:
            self.shell.completer = shell_completer

    def _prompt_loop(self) -> None:
        while not self.ended:
            try:
                line = self._line("agent> ")
            except Interrupted:
                continue
            words = line.split()
            if not words:
                continue
            if words == ["exit"]:
                return
            if words == ["help"]:
                self.shell.out(HELP)
            elif words == ["tools"]:
                self._list_tools()
            elif words[0] in MODES and len(words) == 2:
                self._set_mode(words[0], words[1])
            else:
                self.turn(line)

    def _complete(self, before_cursor: str) -> list[str]:
        """Tab in agent mode: its commands, then tool names after allow, ask or deny."""
        words = before_cursor.split()
        current = "" if before_cursor.endswith(" ") or not words else words[-1]
        previous = words[:-1] if current else words
        if not previous:
            candidates = ["tools", "help", "exit", *MODES]
        elif len(previous) == 1 and previous[0] in MODES:
            candidates = [*self.tools, "all"]
        else:
            return []
        return [c for c in candidates if c.startswith(current)]

    def _line(self, prompt: str) -> str:
        self.shell.events.extend(self.shell.editor.prompt(prompt))
        event = self.shell.next_event()
        if isinstance(event, Line):
            return event.text
        if isinstance(event, EndOfInput):
            self.ended = True
        raise Interrupted

    def _list_tools(self) -> None:
        if not self.tools:
            self.shell.say("no tools: this shell holds no cap with plain-data methods")
        width = max((len(n) for n in self.tools), default=0)
        for name, tool in self.tools.items():
            self.shell.say(
                f"{name:<{width}}  {self.modes[name]:<5}  {tool.descriptor()['description']}"
            )

    def _set_mode(self, mode: str, target: str) -> None:
        names = list(self.tools) if target == "all" else [target]
        for name in names:
            if name not in self.tools:
                known = ", ".join(self.tools) or "none"
                self.shell.say(f"agent: no tool {name!r} (tools: {known})")
                return
            self.modes[name] = mode
        self.shell.say(f"agent: {target}: {mode}")

    # --- the loop ---------------------------------------------------------------------------

    def turn(self, text: str) -> None:
        """One request: model turns and tool calls until the model answers, or Ctrl-C."""
        self.messages.append(_message("user", text))
        try:
            for _ in range(MAX_STEPS):
                reply, calls = self._generate()
                self.messages.append(_message("assistant", reply, calls))
                if not calls:
                    return
                for index, call in enumerate(calls):
                    try:
                        outcome = self._execute(call)
                    except Interrupted:
                        self._audit(call, "interrupted")
                        for later in calls[index:]:  # every proposed call gets an answer
                            self.messages.append(_tool_message(later, _error("interrupted")))
                        raise
                    self._audit(call, outcome.audit)
                    self.messages.append(_tool_message(call, outcome.content))
            self.shell.say(f"agent: stopped after {MAX_STEPS} model turns; ask again to go on")
        except Interrupted:
            self.shell.say("agent: interrupted")
        except RemoteError as exc:
            self.shell.say(f"agent: the model refused: {exc.type}: {exc.message}")
        except TransportFailure as exc:
            self.shell.say(f"agent: the model cannot be reached: {exc}")

    def _generate(self) -> tuple[str, list[dict]]:
        """Stream one model turn to the terminal; returns its text and proposed calls."""
        self._trim()
        tools = [t.descriptor() for n, t in self.tools.items() if self.modes[n] != "deny"]
        # generate answers at once (the model runs behind it), so it is not interruptible:
        # a Ctrl-C now waits in the events and cancels the stream at the first `next`.
        stream = self.rt.call(
            self.model,
            "generate",
            {"messages": self.messages, "tools": tools, "params": GENERATE_PARAMS},
        )["stream"]
        text: list[str] = []
        calls: list[dict] = []
        while True:
            pending = self.rt.begin(
                self.model, "next", {"stream": stream}, result_size=NEXT_RESULT_SIZE
            )
            got = self.shell.wait_call(pending)
            if got is None:
                self._cancel(stream)
                self._end_text(text)
                raise Interrupted
            for event in got["events"]:
                if "textDelta" in event:
                    if not text:
                        self.shell.out(f"{self.name}> ")
                    text.append(event["textDelta"])
                    self.shell.out(_terminal_text(event["textDelta"]))
                    if sum(map(len, text)) > MAX_REPLY_CHARS:
                        self._cancel(stream, drain=True)
                        self._end_text(text)
                        self.shell.say(
                            f"agent: the model's answer ran past {MAX_REPLY_CHARS} characters; "
                            "it was stopped"
                        )
                        return "".join(text)[:MAX_REPLY_CHARS], []
                elif "toolCall" in event:
                    calls.append(event["toolCall"])
                elif "error" in event:
                    self._end_text(text)
                    self.shell.say(f"agent: the model failed: {event['error']}")
                    return "".join(text), []
                elif "done" in event:
                    self._end_text(text)
                    return "".join(text), self._accept(calls)

    def _accept(self, calls: list[dict]) -> list[dict]:
        """Proposed calls with safe, unique ids; past the per-turn limit they are dropped."""
        if len(calls) > MAX_CALLS_PER_TURN:
            self.shell.say(
                f"agent: the model proposed {len(calls)} calls at once; "
                f"only the first {MAX_CALLS_PER_TURN} are considered"
            )
        seen: set[str] = set()
        out = []
        for index, call in enumerate(calls[:MAX_CALLS_PER_TURN], 1):
            call_id = _SAFE_ID.sub("", call["id"])[:40] or f"call_{index}"
            while call_id in seen:
                call_id += "_"
            seen.add(call_id)
            out.append({**call, "id": call_id, "name": call["name"][:128]})
        return out

    def _end_text(self, text: list[str]) -> None:
        if text and not "".join(text).endswith("\n"):
            self.shell.out("\n")

    def _cancel(self, stream: int, *, drain: bool = False) -> None:
        """Stop a generation; `drain`: read it to its end (when no `next` is in flight),
        so the model service can let it go at once."""
        with contextlib.suppress(RemoteError, TransportFailure):  # it ended meanwhile
            self.model.cancel(stream=stream)
            while drain:
                events = self.rt.call(
                    self.model, "next", {"stream": stream}, result_size=NEXT_RESULT_SIZE
                )["events"]
                drain = not any("done" in e or "error" in e for e in events)

    # --- one proposed call -------------------------------------------------------------------

    def _execute(self, call: dict) -> Outcome:
        name, tag = call["name"], f"[{call['id']}]"
        tool = self.tools.get(name)
        if tool is None:
            shown = _printable(name)
            self.shell.say(f"{tag} refused: {shown} is not a tool of this shell (no such cap held)")
            return Outcome(
                _error(f"no tool named {shown}: use one of the tools listed"), "refused: not a tool"
            )
        if self.modes[name] == "deny":
            self.shell.say(f"{tag} refused: {name} is denied")
            return Outcome(_error(f"{name} is denied by the user"), "refused: denied")
        try:
            params = arguments(tool, call["argumentsJson"])
        except InputError as exc:
            self.shell.say(f"{tag} refused: {_printable(str(exc))}")
            return Outcome(_error(str(exc)), "refused: arguments do not fit the schema")
        self.shell.say(f"{tag} {name}({_printable(_show_args(call['argumentsJson']))})")
        if self.modes[name] == "ask" and not self._allowed(name):
            self.shell.say(f"{tag} not run: the user said no")
            return Outcome(_error("the user did not allow this call"), "not allowed by the user")
        pending = self.rt.begin(tool.cap, tool.method.name, params)
        try:
            results = self.shell.wait_call(pending)
        except (RemoteError, TransportFailure) as exc:
            text = f"{exc.type}: {exc.message}" if isinstance(exc, RemoteError) else str(exc)
            self.shell.say(f"{tag} error: {text}")
            return Outcome(_error(text), f"ran: failed: {text}")
        if results is None:
            self.shell.say(f"{tag} interrupted (its answer will be dropped)")
            raise Interrupted
        for line in show(tool.method.results, results):
            self.shell.say(f"{tag} {line}")
        for _path, cap in caps_in(tool.method.results, results):
            cap.release()  # tools carry no caps; a service that sends one anyway loses it
        return Outcome(result_json(results), "ran")

    def _audit(self, call: dict, what: str) -> None:
        if self.log is None:
            return
        level = "info" if what == "ran" else "warn"
        text = f"agent ({self.name}) [{call['id']}] {_printable(call['name'])}: {what}"
        with contextlib.suppress(RemoteError, TransportFailure):
            self.log.write(level=level, text=text[:1000])

    def _allowed(self, name: str) -> bool:
        while True:
            answer = self._line("allow? [y]es [n]o [a]lways [d]eny always: ").strip().lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("a", "always"):
                self.modes[name] = "allow"
                return True
            if answer in ("d", "deny"):
                self.modes[name] = "deny"
                return False
            if answer in ("n", "no"):
                return False

    def _trim(self) -> None:
        """Drop the oldest whole turns (after the system prompt) while the request is too big."""
        while len(json.dumps(self.messages)) > MAX_REQUEST_BYTES:
            starts = [i for i, m in enumerate(self.messages) if m["role"] == "user"]
            if len(starts) < 2:
                self.messages[-1]["content"] = self.messages[-1]["content"][
                    : MAX_REQUEST_BYTES // 2
                ]
                return
            del self.messages[1 : starts[1]]


def _message(role: str, content: str, calls: Iterable[dict] = ()) -> dict:
    return {"role": role, "content": content, "toolCalls": list(calls), "toolCallId": ""}


def _tool_message(call: dict, content: str) -> dict:
    return {"role": "tool", "content": content, "toolCalls": [], "toolCallId": call["id"]}


def _error(text: str) -> str:
    return json.dumps({"error": text})


def _show_args(arguments_json: str) -> str:
    try:
        args = json.loads(arguments_json or "{}")
    except (ValueError, RecursionError):
        return arguments_json[:80]
    if not isinstance(args, dict):
        return arguments_json[:80]
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in args.items())[:200]


def _terminal_text(text: str) -> str:
    """Streamed model text: line breaks and tabs kept, other control characters dropped
    (a hostile endpoint must not drive the terminal with escape sequences)."""
    return "".join(c for c in text if c.isprintable() or c in "\n\t")


def _printable(text: str) -> str:
    """Model output shown on a terminal: no escape sequences, bounded."""
    return "".join(c if c.isprintable() else "?" for c in text)[:200]
