"""The shell never dies of its input: a bad argument gets an error naming its field.

Hypothesis draws arguments for every method of every interface in the schema
bundle: values shaped like each field's type and arbitrary ones (wrong types,
huge numbers, NaN, lone surrogates, nesting, caps of the wrong interface or
none). Converting them must succeed or refuse with an InputError that names
the field. Through a live shell, on the agent port and typed at its
terminal, every such refusal comes back to the caller and the next request
is served.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kernel.codec import Bundle, EnumType, InterfaceType, ListType, Method, StructType, encode
from kernel.codec.bundle import INT_RANGES
from kernel.hosts.inproc import InProcessHost
from kernel.manifest import default_manifest, encode_document, load_document
from kernel.programs.shell import commands, gateway
from kernel.programs.shell.syntax import CapRef, Word, parse
from kernel.programs.shell.values import InputError, to_params
from kernel.runtime import Cap, Move
from tests.agentsystem import AgentSystem

BUNDLE = Bundle.default()
METHODS = [(i, m) for i in BUNDLE.interfaces for m in i.methods]
_ids = itertools.count(1)


# --- what a caller may send -----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Form:
    """How values can be written: as agent-port JSON, or as literals typed at the prompt."""

    text: st.SearchStrategy[str]
    key: st.SearchStrategy[str]  # a parameter or struct field name that is not in the schema
    ints: st.SearchStrategy[int]
    floats: st.SearchStrategy[float]
    extra: st.SearchStrategy[Any]  # leaves only this form has (bytes, bare words)
    enum: Callable[[str], Any]  # an enumerant as this form writes it


_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True).filter(
    lambda w: w not in ("true", "false", "null", "move")
)
JSON = Form(
    # Any code point, and lone surrogates (JSON writes them as "\ud800") more often than chance.
    text=st.text(st.characters(exclude_categories=()), max_size=6) | st.just("a\udfff"),
    key=st.text(st.characters(exclude_categories=()), max_size=4).filter(lambda k: k != "$cap"),
    ints=st.integers() | st.sampled_from([2**64, -(2**63) - 1, 10**400]),
    floats=st.floats() | st.sampled_from([3.5e38, -1e300]),  # past Float32 either way
    extra=st.nothing(),
    enum=str,
)
LINE = Form(
    # What can be typed: any byte-range character (as \xNN) and printable others.
    text=st.text(
        st.characters(max_codepoint=0xFF) | st.characters(exclude_categories=("C", "Z")),
        max_size=6,
    ),
    key=_NAME,
    ints=st.integers(-(10**60), 10**60),
    floats=st.floats(allow_nan=False),  # the syntax has no NaN; 1e999 is infinity
    extra=st.binary(max_size=4) | _NAME.map(Word),
    enum=Word,
)


def caps_named(names: tuple[str, ...]) -> st.SearchStrategy[CapRef]:
    """@name for a cap of `names` or for one nobody holds, copied or moved."""
    return st.builds(CapRef, st.sampled_from([*names, "nosuch"]), move=st.booleans())


@cache  # building strategies costs more than drawing from them
def anything(form: Form, caps: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Any value the form can write, nested a little, whatever the type it is for."""
    leaves = st.one_of(
        st.none(), st.booleans(), form.ints, form.floats, form.text, form.extra, caps_named(caps)
    )
    return st.recursive(
        leaves,
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(form.key, kids, max_size=3),
        max_leaves=6,
    )


@cache
def args_for(
    struct: StructType, form: Form, caps: tuple[str, ...], depth: int = 0
) -> st.SearchStrategy[dict[str, Any]]:
    """Some of the struct's fields, each shaped like its type or not, and maybe a stranger."""
    fields = {f.name: value_for(f.group or f.type, form, caps, depth) for f in struct.fields}
    known = st.fixed_dictionaries({}, optional=fields)
    strangers = st.dictionaries(form.key, anything(form, caps), max_size=1)
    return st.tuples(strangers, known).map(lambda pair: {**pair[0], **pair[1]})


def value_for(kind: Any, form: Form, caps: tuple[str, ...], depth: int) -> st.SearchStrategy[Any]:
    unshaped = anything(form, caps)
    if depth >= 3:  # recursive structs: stop shaping
        return unshaped
    if isinstance(kind, StructType):
        shaped = args_for(kind, form, caps, depth + 1)
    elif isinstance(kind, ListType):
        shaped = st.lists(value_for(kind.element, form, caps, depth + 1), max_size=3)
    elif isinstance(kind, EnumType):
        shaped = st.sampled_from(kind.enumerants).map(form.enum)
    elif isinstance(kind, InterfaceType) or kind == "capability":
        shaped = caps_named(caps)
    elif kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        shaped = st.integers(low - 1, high + 1)
    else:
        shaped = {
            "float32": form.floats,
            "float64": form.floats,
            "bool": st.booleans(),
            "text": form.text,
            "data": form.text | form.extra,
            "void": st.none(),
        }[kind]
    return st.one_of(shaped, unshaped)


# --- writing them down ------------------------------------------------------------------


def as_json(value: Any) -> Any:
    if isinstance(value, CapRef):
        return {"$cap": value.name, "move": True} if value.move else {"$cap": value.name}
    if isinstance(value, dict):
        return {key: as_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_json(item) for item in value]
    return value


def literal(value: Any) -> str:
    """`value` in the shell's syntax (kernel/programs/shell/syntax.py)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, float) and math.isinf(value):
        return "-1e999" if value < 0 else "1e999"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_char(c) for c in value) + '"'
    if isinstance(value, bytes):
        return 'b"' + "".join(f"\\x{b:02x}" for b in value) + '"'
    if isinstance(value, Word):
        return value.text
    if isinstance(value, CapRef):
        return f"move @{value.name}" if value.move else f"@{value.name}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    return "{" + ", ".join(f"{key}: {literal(item)}" for key, item in value.items()) + "}"


def _char(c: str) -> str:
    if c in '"\\':
        return "\\" + c
    return c if " " <= c <= "~" or ord(c) > 0xFF else f"\\x{ord(c):02x}"


def call_line(target: str, method: str, args: dict[str, Any]) -> str:
    return f"{target}.{method}(" + ", ".join(f"{k}={literal(v)}" for k, v in args.items()) + ")"


# --- what must come back ----------------------------------------------------------------


def holding(names: dict[str, InterfaceType]) -> Callable[[CapRef], Cap]:
    """A resolver as the shell's: a cap for each name it holds, InputError for any other."""
    runtime = SimpleNamespace(bundle=BUNDLE)  # all a Cap needs to know its interface
    caps = {
        name: Cap(runtime, slot, i.id, owned=False)
        for slot, (name, i) in enumerate(names.items(), 1)
    }

    def resolve(ref: CapRef) -> Cap:
        if ref.name not in caps:
            raise InputError(f"no cap named {ref.name!r} in this shell")
        return caps[ref.name]

    return resolve


def refusal(method: Method, args: dict, resolve: Callable, where: str) -> str | None:
    """Why `to_params` refuses these arguments, or None when what it gives encodes;
    any other exception fails the test."""
    try:
        params = to_params(method.params, args, resolve, where)
    except InputError as exc:
        return str(exc)
    encode(method.params, _cap_indices(params))
    return None


def _cap_indices(value: Any) -> Any:
    """Params as the runtime sends them: each cap an index into the call's cap table."""
    if isinstance(value, Cap | Move):
        return 0
    if isinstance(value, dict):
        return {key: _cap_indices(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cap_indices(item) for item in value]
    return value


def names_a_field(message: str, where: str, struct: StructType, args: dict) -> bool:
    """The message says which parameter is wrong (a given one, a missing one, a stranger)."""
    patterns = [
        *(re.escape(f"{where}: {name}") + r"[ :\[]" for name in args),
        *(re.escape(f"{where} has no parameter {name!r}") for name in args),
        *(re.escape(f"{where}: missing parameter {f.name!r}") for f in struct.fields),
        re.escape(f"{where}: give ") + "(only )?one of",
    ]
    return any(re.match(pattern, message) for pattern in patterns)


# --- the conversion itself, over the whole bundle -----------------------------------------

EVERY_CAP = tuple(i.name for i in BUNDLE.interfaces)
HOLDS_EVERY_INTERFACE = holding({i.name: i for i in BUNDLE.interfaces})


@pytest.mark.parametrize(("interface", "method"), METHODS, ids=lambda x: x.name)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_any_json_arguments_convert_or_name_the_field(interface, method, data):
    args = data.draw(args_for(method.params, JSON, EVERY_CAP))
    where = f"x.{method.name}"
    message = refusal(method, args, HOLDS_EVERY_INTERFACE, where)
    assert message is None or names_a_field(message, where, method.params, args), message


@pytest.mark.parametrize(("interface", "method"), METHODS, ids=lambda x: x.name)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_any_typed_arguments_convert_or_name_the_field(interface, method, data):
    args = data.draw(args_for(method.params, LINE, EVERY_CAP))
    call = parse(call_line("x", method.name, args))
    assert call.args == args  # the literal says what was drawn
    where = f"x.{method.name}"
    message = refusal(method, call.args, HOLDS_EVERY_INTERFACE, where)
    assert message is None or names_a_field(message, where, method.params, args), message


# --- a live shell -------------------------------------------------------------------------


@dataclass
class Live:
    """A booted system whose shell serves the agent port and a script terminal."""

    host: InProcessHost
    held: dict[str, InterfaceType]  # what the shell holds, by name

    @property
    def methods(self) -> list[tuple[str, Method]]:
        return [(name, m) for name, i in sorted(self.held.items()) for m in i.methods]

    def ask(self, **request: Any) -> dict:
        return self.host.ask_agent({"id": next(_ids), **request})

    def call(self, cap: str, method: str, params: Any) -> dict:
        text = params if isinstance(params, str) else json.dumps(params)
        call = {"cap": cap, "method": method, "paramsJson": text, "bind": ""}
        answer = self.ask(call=call)
        return json.loads(answer["json"]) if "json" in answer else answer["error"]

    def still_serves(self) -> None:
        echoed = self.call("echo", "echo", {"data": "still here"})
        assert echoed == {"results": {"data": "still here"}}

    def type_line(self, line: str) -> str:
        """What the shell shows for `line`, then proof it reads the next (an echo call)."""
        start = len(self.host.screen)
        mark = f"mark-{next(_ids)}"
        self.host.type(f'{line}\necho.echo(data="{mark}")\n'.encode())
        answer = f"data = b'{mark}'\n"
        deadline = time.monotonic() + 10
        while answer not in (screen := self.host.screen[start:].decode(errors="replace")):
            assert time.monotonic() < deadline, f"the shell stopped answering:\n{screen}"
            time.sleep(0.002)
        return screen[: screen.index(answer)]


@pytest.fixture(scope="module")
def live():
    host = InProcessHost(encode_document(load_document(default_manifest())), terminal=False)
    host.boot()
    try:
        running = Live(host, {})
        caps = running.ask(guest=None)["caps"]  # the guest bundle: the demo services
        running.held = {c["name"]: BUNDLE.interface(c["interface"]) for c in caps}
        yield running
        assert host.crashes == {}
        assert host.kernel.faults == []
    finally:
        host.shutdown()


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_the_agent_port_refuses_bad_arguments_and_serves_on(live, data):
    name, method = data.draw(st.sampled_from(live.methods))
    args = data.draw(args_for(method.params, JSON, tuple(live.held)))
    where = f"{name}.{method.name}"
    assume(refusal(method, args, holding(live.held), where) is not None)  # never run a call
    error = live.call(name, method.name, json.dumps(as_json(args)))
    assert error["kind"] == "input", error
    assert names_a_field(error["message"], where, method.params, args), error
    live.still_serves()


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_typed_lines_with_bad_arguments_are_refused_and_the_shell_reads_on(live, data):
    name, method = data.draw(st.sampled_from(live.methods))
    args = data.draw(args_for(method.params, LINE, tuple(live.held)))
    where = f"{name}.{method.name}"
    line = call_line(name, method.name, args)
    assume(refusal(method, parse(line).args, holding(live.held), where) is not None)
    shown = live.type_line(line)
    assert names_a_field(shown, where, method.params, args), shown


# --- the report that started this, and the limits of what can be sent ------------------------


@pytest.fixture(scope="module")
def person():
    """The default system with an interactive terminal, as a person at it sees it."""
    with AgentSystem(model=None) as running:
        yield running
        assert running.host.crashes == {}


LEVELS = "debug, info, warn, error"


def test_a_list_for_an_enum_at_the_prompt_is_refused_and_the_prompt_returns(person):
    screen = person.exchange('logger.write(level=[], text="x")', "> ")
    assert f"logger.write: level expects one of {LEVELS}, got a list" in screen
    assert "ns = " in person.exchange("timer.now()", "> ")


def test_a_list_for_an_enum_from_an_agent_is_refused_and_the_shell_serves_on(live):
    error = live.call("logger", "write", {"level": [], "text": "x"})
    assert error == {
        "kind": "input",
        "type": "",
        "message": f"logger.write: level expects one of {LEVELS}, got a list",
    }
    live.still_serves()


def test_a_cap_both_copied_and_moved_in_one_call_is_refused(live):
    grants = '[{name: "a", source: {cap: @echo}}, {name: "b", source: {cap: move @echo}}]'
    shown = live.type_line(f'launcher.spawn(name="k", binaryName="ping", grants={grants})')
    assert shown == (
        "launcher.spawn: grants[1]: source: cap: @echo is both copied and moved in this call\n"
    )
    assert "echo" in {c["name"] for c in live.ask(listCaps=None)["caps"]}  # nothing moved


def test_agent_arguments_nested_past_the_limit_are_refused(live):
    deep = "[" * 65 + "]" * 65
    error = live.call("echo", "echo", '{"data": ' + deep + "}")
    assert error == {
        "kind": "input",
        "type": "",
        "message": "echo.echo: data: lists and objects nest at most 64 deep",
    }
    # a name no UTF-8 can carry comes back escaped, not as a lost answer
    stranger = live.call("echo", "echo", '{"\\ud800": ' + deep + "}")
    assert stranger["message"] == "echo.echo: \\ud800: lists and objects nest at most 64 deep"
    live.still_serves()


def test_a_spawn_grant_name_no_utf8_can_carry_is_refused(live):
    grants = json.dumps({"\udfff": {"client": "stdio"}})  # JSON escapes it: the port takes it
    error = live.ask(spawn={"binary": "counter", "grantsJson": grants})["error"]
    assert error["kind"] == "input"
    assert "grants[0].name: Text is not encodable as UTF-8" in error["message"]
    live.still_serves()


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("echo.echo(data=" + "[" * 100 + "]" * 100 + ")", "lists and structs nest at most 64 deep"),
        ("counter.increment(by=" + "9" * 5000 + ")", "a number of 5000 characters is too long"),
        ("help 0x" + "f" * 5000, "a number of 5002 characters is too long"),
    ],
)
def test_lines_past_the_syntax_limits_are_syntax_errors(live, line, says):
    assert live.type_line(line) == f"syntax error: {says}\n"


# --- the last resort: a bug costs one request or one line, never the session ----------------


def _broken(*args: object) -> None:
    raise RuntimeError("a bug in the shell")


def test_a_bug_serving_an_agent_answers_that_agent_and_the_shell_serves_on(live, monkeypatch):
    monkeypatch.setattr(gateway, "to_params", _broken)
    error = live.call("echo", "echo", {"data": "x"})
    assert error["kind"] == "internal"
    assert "RuntimeError: a bug in the shell" in error["message"]
    monkeypatch.undo()
    live.still_serves()


def test_a_bug_running_a_line_is_reported_and_the_prompt_returns(person, monkeypatch):
    monkeypatch.setattr(commands, "to_params", _broken)
    screen = person.exchange('echo.echo(data="x")', "> ")
    assert "shell: this line failed (RuntimeError: a bug in the shell); carrying on" in screen
    monkeypatch.undo()
    assert "ns = " in person.exchange("timer.now()", "> ")
