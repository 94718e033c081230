"""Shell literals to schema values and back: typed calls are checked before sending.

`to_params` turns what the user typed into a params struct, refusing
(with a message that names the field) an unknown parameter, a wrong type,
an out-of-range number, or a missing required field. It is total: any
value whatsoever (typed at the prompt or sent as JSON by an outside agent)
either converts to something the codec encodes, or raises InputError;
nothing a caller sends may end the shell. `show` renders results for
people: one `name = value` line per field, caps as `<Interface cap>`.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import pack
from typing import Any

from kernel.codec import EnumType, InterfaceType, ListType, StructType
from kernel.codec.bundle import INT_RANGES, capnp_type_name
from kernel.programs.shell.syntax import CapRef, Word
from kernel.runtime import Cap, Move

# Generic capability types: any cap may go there.
_ANY_CAP = {"capability", "Capability", "ClientEndpoint"}
_FLOAT_FORMATS = {"float32": "<f", "float64": "<d"}
_SHOWN = 60  # characters of what the user typed that an error message repeats


class InputError(Exception):
    """What the user typed does not fit the schema; the message says where and how."""


def required(field_type: Any, has_default: bool) -> bool:
    """A parameter the user must give: no schema default, and no obvious empty value."""
    return not (has_default or field_type in ("bool", "void") or isinstance(field_type, ListType))


def to_params(
    struct: StructType, args: dict[str, Any], resolve: Callable[[CapRef], Cap], where: str
) -> dict[str, Any]:
    """`args` checked against `struct`; `resolve` raises InputError for a cap not held."""
    return _struct(struct, args, _copied_or_moved(resolve), where)


def _copied_or_moved(resolve: Callable[[CapRef], Cap]) -> Callable[[CapRef], Cap]:
    """`resolve`, refusing a cap that one call would both copy and move: no transfer does both."""
    moves: dict[int, bool] = {}

    def checked(ref: CapRef) -> Cap:
        cap = resolve(ref)
        if moves.setdefault(cap.cap_id, ref.move) != ref.move:
            raise InputError(f"{_show(ref)} is both copied and moved in this call")
        return cap

    return checked


def _struct(
    struct: StructType, args: dict[str, Any], resolve: Callable[[CapRef], Cap], where: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    union = [f.name for f in struct.fields if f.discriminant is not None]
    for name in args:
        if name not in struct.fields_by_name:
            takes = ", ".join(_describe_field(f) for f in struct.fields) or "nothing"
            raise InputError(f"{where} has no parameter {_clip(repr(name))} (it takes: {takes})")
    given_union = [n for n in union if n in args]
    if len(given_union) > 1:
        raise InputError(f"{where}: give only one of {', '.join(union)}")
    for field in struct.fields:
        if field.name in args:
            kind = field.group if field.group is not None else field.type
            out[field.name] = _convert(kind, args[field.name], resolve, f"{where}: {field.name}")
        elif (
            field.discriminant is None
            and field.group is None
            and required(field.type, field.had_explicit_default)
        ):
            raise InputError(
                f"{where}: missing parameter {field.name!r} ({capnp_type_name(field.type)})"
            )
    if union and not given_union and struct.discriminant_count:
        raise InputError(f"{where}: give one of {', '.join(union)}")
    return out


def _convert(kind: Any, value: Any, resolve: Callable[[CapRef], Cap], where: str) -> Any:
    """One value of type `kind`; every branch checks the Python type before using it."""
    expected = capnp_type_name(kind) if not isinstance(kind, StructType) else kind.name
    if isinstance(kind, StructType):
        if not isinstance(value, dict):
            raise InputError(f"{where} expects a {{ field: value }} struct, got {_show(value)}")
        return _struct(kind, value, resolve, where)
    if isinstance(kind, ListType):
        if not isinstance(value, list):
            raise InputError(
                f"{where} expects a list [..] of {capnp_type_name(kind.element)}, "
                f"got {_show(value)}"
            )
        return [_convert(kind.element, v, resolve, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(kind, EnumType):
        name = value.text if isinstance(value, Word) else value
        if not isinstance(name, str) or name not in kind.ordinals:
            raise InputError(
                f"{where} expects one of {', '.join(kind.enumerants)}, got {_show(value)}"
            )
        return name
    if isinstance(kind, InterfaceType) or kind == "capability":
        return _cap(kind, value, resolve, where)
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where} expects {expected} (a whole number), got {_show(value)}")
        if not low <= value <= high:
            raise InputError(f"{where}: {_show(value)} is outside {expected} ({low}..{high})")
        return value
    if kind in _FLOAT_FORMATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{where} expects {expected} (a number), got {_show(value)}")
        try:
            number = float(value)
            pack(_FLOAT_FORMATS[kind], number)
        except OverflowError:
            raise InputError(f"{where}: {_show(value)} is too large for {expected}") from None
        return number
    if kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"{where} expects true or false, got {_show(value)}")
        return value
    if kind == "text":
        if not isinstance(value, str):
            raise InputError(f'{where} expects Text ("..."), got {_show(value)}')
        _utf8(value, where)
        return value
    if kind == "data":
        if isinstance(value, str):
            return _utf8(value, where)
        if not isinstance(value, bytes):
            raise InputError(f'{where} expects Data (b"..." or "..."), got {_show(value)}')
        return value
    if kind == "void":
        if value is not None:
            raise InputError(f"{where} is Void: write null")
        return None
    raise InputError(f"{where}: values of type {expected} cannot be written in the shell")


def _cap(kind: Any, value: Any, resolve: Callable[[CapRef], Cap], where: str) -> Cap | Move:
    """A cap the shell holds, of the interface the field names (any, for generic caps)."""
    if not isinstance(value, CapRef):
        raise InputError(f"{where} expects a cap (@name), got {_show(value)}")
    try:
        cap = resolve(value)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    generic = not isinstance(kind, InterfaceType) or kind.name in _ANY_CAP
    if not generic and cap.interface_id != kind.id:
        actual = cap.interface.name if cap.interface else hex(cap.interface_id)
        raise InputError(f"{where} expects a {kind.name}, but {_show(value)} is a {actual}")
    return Move(cap) if value.move else cap


def _utf8(text: str, where: str) -> bytes:
    """`text` as UTF-8; a lone surrogate (JSON's "\\ud800") has no encoding."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{where}: {_show(text)} is not Unicode (a lone surrogate)") from None


def _describe_field(field: Any) -> str:
    if field.group is not None:
        return f"{field.name} :group"
    return f"{field.name} :{capnp_type_name(field.type)}"


def _show(value: Any) -> str:
    """What the user gave, as the shell writes it, short enough to repeat in a message."""
    if isinstance(value, CapRef):
        return f"@{_clip(value.name)}"
    if isinstance(value, Word):
        return _clip(value.text)
    if isinstance(value, str):
        return f'"{_clip(value)}"'
    if isinstance(value, dict):
        return "a struct"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value.bit_length() > 192:
        return f"a {value.bit_length()}-bit number"  # str() of a huge int is refused, and long
    return _clip(repr(value))


def _clip(text: str) -> str:
    """At most _SHOWN characters, with lone surrogates escaped so the message encodes."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= _SHOWN else safe[: _SHOWN - 3] + "..."


# --- showing results --------------------------------------------------------------------


def show(struct: StructType, value: dict[str, Any]) -> list[str]:
    """Result fields as readable lines; an empty result is `ok`."""
    lines = [f"{name} = {text}" for name, text in _fields(struct, value, 0)]
    return lines or ["ok"]


def _fields(struct: StructType, value: dict[str, Any], depth: int) -> list[tuple[str, str]]:
    out = []
    for field in struct.fields:
        if field.name not in value:
            continue
        kind = field.group if field.group is not None else field.type
        out.append((field.name, render(kind, value[field.name], depth)))
    return out


def render(kind: Any, value: Any, depth: int = 0) -> str:
    if value is None and kind != "void":
        return "null"
    if isinstance(value, Cap):
        name = value.interface.name if value.interface else f"{value.interface_id:#x}"
        return f"<{name} cap>"
    if isinstance(kind, StructType):
        inner = ", ".join(f"{k}: {v}" for k, v in _fields(kind, value, depth + 1))
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(kind, ListType):
        items = [render(kind.element, v, depth + 1) for v in value]
        text = "[" + ", ".join(items) + "]"
        if len(text) > 100 and depth == 0:
            return "[\n" + "".join(f"    {item},\n" for item in items) + "  ]"
        return text
    if kind == "void":
        return "(void)"
    if kind == "text":
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if kind == "data":
        if len(value) > 64:
            return f"<{len(value)} bytes: {value[:32].hex()}...>"
        return repr(bytes(value))
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def caps_in(struct: StructType, value: dict[str, Any]) -> list[tuple[str, Cap]]:
    """Every cap in a result with a dotted path naming it (`handle`, `clients.0`)."""
    found: list[tuple[str, Cap]] = []

    def walk(path: str, item: Any) -> None:
        if isinstance(item, Cap):
            found.append((path, item))
        elif isinstance(item, dict):
            for key, sub in item.items():
                walk(f"{path}.{key}" if path else key, sub)
        elif isinstance(item, list):
            for index, sub in enumerate(item):
                walk(f"{path}.{index}", sub)

    walk("", value)
    return found
