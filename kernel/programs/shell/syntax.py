"""The shell's command language: tokens, then a small recursive-descent parser.

capOS launch syntax, exactly as its book writes it:

    run "chat-client" with { stdio: client @stdio, chat: client @chat }
    spawn "chat-bot" with { chat: client @chat }

plus playground extensions that make capabilities visible:

    timer.now()                          a typed call, checked against the schema
    let h = launcher.spawn(name="x", binaryName="counter", grants=[])
    release h

Everything else is a builtin word followed by plain arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class ParseError(Exception):
    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True)
class Token:
    kind: str  # "name", "string", "bytes", "number", "punct", "end"
    value: Any
    column: int


@dataclass(frozen=True)
class CapRef:
    """`@name` (or `client @name`): a cap the shell holds, as a value or grant source.

    As a grant, `new Interface` is a fresh endpoint the child serves (`name`
    is then the interface); the shell keeps a client of it. `move @name`
    sends the cap itself: the shell no longer holds it once the call succeeds.
    """

    name: str
    client: bool = False
    new: bool = False
    move: bool = False


@dataclass(frozen=True)
class Launch:
    mode: str  # "run" or "spawn"
    binary: str
    grants: list[tuple[str, CapRef]] = field(default_factory=list)


@dataclass(frozen=True)
class Call:
    target: str
    method: str
    args: dict[str, Any]
    column: int  # where the method name starts, for error carets


@dataclass(frozen=True)
class Let:
    name: str
    value: Call | Launch | CapRef


@dataclass(frozen=True)
class Builtin:
    word: str
    args: list[str]


Command = Launch | Call | Let | Builtin | None

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*")
_NUMBER = re.compile(r"-?(?:0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?)")
_JOB = re.compile(r"%\d+")  # a job, as in wait %1
_PUNCT = set("{}()[],:=@")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
MAX_NESTING = 64  # lists and structs inside one another, as Cap'n Proto's default limit
_MAX_NUMBER = 100  # characters in a number: far past any Cap'n Proto type, and always printable


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "\"'" or (ch == "b" and text[i + 1 : i + 2] in ('"', "'")):
            is_bytes = ch == "b"
            value, i_end = _string(text, i + 1 if is_bytes else i)
            tokens.append(
                Token(
                    "bytes" if is_bytes else "string",
                    value.encode("latin-1") if is_bytes else value,
                    i,
                )
            )
            i = i_end
        elif m := _NUMBER.match(text, i):
            tokens.append(Token("number", _number(m.group(), i), i))
            i = m.end()
        elif (m := _JOB.match(text, i)) or (m := _NAME.match(text, i)):
            tokens.append(Token("name", m.group(), i))
            i = m.end()
        elif ch in _PUNCT:
            tokens.append(Token("punct", ch, i))
            i += 1
        else:
            raise ParseError(f"unexpected character {ch!r}", i)
    tokens.append(Token("end", None, len(text)))
    return tokens


def _number(text: str, column: int) -> int | float:
    raw = text.replace("_", "")
    if len(raw) > _MAX_NUMBER:  # Python's int() and str() refuse over 4300 digits
        raise ParseError(f"a number of {len(raw)} characters is too long", column)
    is_hex = raw.lower().lstrip("-").startswith("0x")
    return float(raw) if not is_hex and any(c in raw for c in ".eE") else int(raw, 0)


def _string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2 : i + 4]):
                out.append(chr(int(text[i + 2 : i + 4], 16)))
                i += 4
                continue
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
        out.append(ch)
        i += 1
    raise ParseError("unterminated string", start)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0  # of the list or struct literal being read

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.pos += 1
        return token

    def is_punct(self, ch: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token.kind == "punct" and token.value == ch

    def expect_punct(self, ch: str, what: str = "") -> Token:
        token = self.take()
        if token.kind != "punct" or token.value != ch:
            raise ParseError(f"expected '{ch}'{what}, found {_describe(token)}", token.column)
        return token

    def expect(self, kind: str, what: str) -> Token:
        token = self.take()
        if token.kind != kind:
            raise ParseError(f"expected {what}, found {_describe(token)}", token.column)
        return token

    def end(self) -> None:
        token = self.peek()
        if token.kind != "end":
            raise ParseError(f"unexpected {_describe(token)}", token.column)

    # --- grammar --------------------------------------------------------------------------

    def command(self) -> Command:
        first = self.peek()
        if first.kind == "end":
            return None
        if (
            first.kind == "name"
            and first.value in ("run", "spawn")
            and self.peek(1).kind == "string"
        ):
            result: Command = self.launch()
        elif first.kind == "name" and first.value == "let":
            result = self.let()
        elif first.kind == "name" and "." in first.value and self.is_punct("(", 1):
            result = self.call()
        else:
            return self.builtin()
        self.end()
        return result

    def launch(self) -> Launch:
        mode = self.take().value
        binary = self.expect("string", 'a quoted binary name, as in run "counter"').value
        grants: list[tuple[str, CapRef]] = []
        if self.peek().kind == "name" and self.peek().value == "with":
            self.take()
            self.expect_punct("{", " after with")
            seen: set[str] = set()
            while not self.is_punct("}"):
                name_token = self.expect("name", "a grant name (the name the child will see)")
                if name_token.value in seen:
                    raise ParseError(
                        f"grant {name_token.value!r} is named twice", name_token.column
                    )
                seen.add(name_token.value)
                self.expect_punct(":", f" after the grant name {name_token.value!r}")
                grants.append((name_token.value, self.cap_ref(grant=True)))
                if not self.is_punct(","):
                    break
                self.take()
            self.expect_punct("}", " to close the grants")
        return Launch(mode, binary, grants)

    def cap_ref(self, *, grant: bool) -> CapRef:
        client = False
        token = self.peek()
        if grant and token.kind == "name" and token.value == "new":
            self.take()
            interface = self.expect("name", "an interface after new, as in new Counter")
            return CapRef(interface.value, new=True)
        move = token.kind == "name" and token.value == "move"
        if grant and token.kind == "name" and token.value == "client":
            self.take()
            client = True
        elif move:
            self.take()
        at = self.take()
        if at.kind != "punct" or at.value != "@":
            hint = "@name, client @name, move @name or new Interface" if grant else "@name"
            raise ParseError(f"expected {hint}, found {_describe(at)}", at.column)
        name = self.expect("name", "a cap name after '@'")
        return CapRef(name.value, client, move=move)

    def let(self) -> Let:
        self.take()
        name = self.expect("name", "a name to bind, as in let t = timer.now()")
        if "." in name.value:
            raise ParseError("a let name cannot contain '.'", name.column)
        self.expect_punct("=", f" after let {name.value}")
        token = self.peek()
        if token.kind == "punct" and token.value == "@":
            value: Call | Launch | CapRef = self.cap_ref(grant=False)
        elif (
            token.kind == "name"
            and token.value in ("run", "spawn")
            and self.peek(1).kind == "string"
        ):
            value = self.launch()
        elif token.kind == "name" and "." in token.value and self.is_punct("(", 1):
            value = self.call()
        else:
            raise ParseError(
                'let takes a call (x.method(...)), spawn "...", or @name', token.column
            )
        return Let(name.value, value)

    def call(self) -> Call:
        token = self.take()
        target, _, method = token.value.rpartition(".")
        column = token.column + len(target) + 1
        self.expect_punct("(")
        args: dict[str, Any] = {}
        while not self.is_punct(")"):
            key = self.expect("name", 'a parameter name, as in text="hi"')
            if key.value in args:
                raise ParseError(f"parameter {key.value!r} given twice", key.column)
            self.expect_punct("=", f" after {key.value}")
            args[key.value] = self.value()
            if not self.is_punct(","):
                break
            self.take()
        self.expect_punct(")", " to close the call")
        return Call(target, method, args, column)

    def value(self) -> Any:
        token = self.peek()
        if token.kind in ("string", "bytes", "number"):
            return self.take().value
        if token.kind == "name" and token.value in ("true", "false", "null"):
            self.take()
            return {"true": True, "false": False, "null": None}[token.value]
        moved = token.kind == "name" and token.value == "move" and self.is_punct("@", 1)
        if moved or self.is_punct("@"):  # @name, or move @name (given away)
            return self.cap_ref(grant=False)
        if token.kind == "name":  # a bare word: an enum name
            return Word(self.take().value)
        if self.is_punct("[") or self.is_punct("{"):
            if self.depth == MAX_NESTING:
                raise ParseError(f"lists and structs nest at most {MAX_NESTING} deep", token.column)
            self.depth += 1
            value = self.list_literal() if self.is_punct("[") else self.struct_literal()
            self.depth -= 1
            return value
        raise ParseError(f"expected a value, found {_describe(token)}", token.column)

    def list_literal(self) -> list[Any]:
        self.take()
        items = []
        while not self.is_punct("]"):
            items.append(self.value())
            if not self.is_punct(","):
                break
            self.take()
        self.expect_punct("]", " to close the list")
        return items

    def struct_literal(self) -> dict[str, Any]:
        self.take()
        fields: dict[str, Any] = {}
        while not self.is_punct("}"):
            key = self.expect("name", "a field name")
            self.expect_punct(":", f" after field {key.value}")
            fields[key.value] = self.value()
            if not self.is_punct(","):
                break
            self.take()
        self.expect_punct("}", " to close the struct")
        return fields

    def builtin(self) -> Builtin:
        word = self.take()
        if word.kind != "name":
            raise ParseError(f"expected a command, found {_describe(word)}", word.column)
        args = []
        while self.peek().kind != "end":
            token = self.take()
            args.append(str(token.value) if token.kind != "punct" else token.value)
        return Builtin(word.value, args)


@dataclass(frozen=True)
class Word:
    """A bare word in a value position: an enum name such as `operator`."""

    text: str


def parse(text: str) -> Command:
    """One command line; raises ParseError with the column of the problem."""
    return _Parser(text).command()


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "the end of the line"
    if token.kind == "string":
        return f'"{token.value}"'
    return repr(token.value) if token.kind != "punct" else f"'{token.value}'"
