"""Tools for agent mode: the caps the shell holds, as typed tool descriptors.

Each method of a held cap whose params and results carry plain data becomes
a tool named `cap.method`, with a JSON Schema derived from its capnp params
struct. The model sees names and schemas, never a CapId, and methods that
move caps are left out (a model cannot hold one). A proposed call is checked
twice before it runs: its name must be a tool of this set, and its arguments
must convert to the params struct through the same checks a typed call
typed at the prompt gets (`values.to_params`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kernel.codec import EnumType, InterfaceType, ListType, StructType
from kernel.codec.bundle import INT_RANGES, Method
from kernel.programs.shell.shell import Binding
from kernel.programs.shell.values import InputError, required, to_params
from kernel.runtime import Cap

MAX_RESULT_JSON = 2048  # a tool result the model reads back is cut here
# Interfaces whose methods are the shell's own machinery, never tools.
NOT_TOOLS = {"LanguageModel", "TerminalSession", "StdIO", "Endpoint", "ClientEndpoint"}


@dataclass(frozen=True)
class Tool:
    name: str  # "counter.increment"
    cap_name: str
    cap: Cap
    method: Method
    schema: dict

    def descriptor(self) -> dict:
        """The LanguageModel ToolDescriptor: what the model sees."""
        interface = self.cap.interface
        assert interface is not None  # tools_for takes only caps of a known interface
        return descriptor(self.cap_name, interface, self.method)


def descriptor(cap_name: str, interface: InterfaceType, method: Method) -> dict:
    """The ToolDescriptor of `cap_name.method`: a name, a description and a JSON Schema."""
    doc = method.doc or f"{method.name} on {interface.name}"
    return {
        "name": f"{cap_name}.{method.name}",
        "description": f"{interface.name}: {doc}",
        "parametersJson": json.dumps(json_schema(method.params), separators=(",", ":")),
    }


def tools_for(names: dict[str, Binding], only: list[str] | None = None) -> dict[str, Tool]:
    """Tools from the caps in `names` (or only those named in `only`), by tool name."""
    out: dict[str, Tool] = {}
    for cap_name, binding in sorted(names.items()):
        cap = binding.cap
        if cap is None or cap.interface is None or cap.interface.name in NOT_TOOLS:
            continue
        if only is not None and cap_name not in only:
            continue
        for method in cap.interface.methods:
            if _carries_caps(method.params) or _carries_caps(method.results):
                continue
            name = f"{cap_name}.{method.name}"
            out[name] = Tool(name, cap_name, cap, method, json_schema(method.params))
    return out


def json_schema(struct: StructType) -> dict:
    """The JSON Schema of a params struct: what `to_params` accepts, as data. A struct
    with a union is a choice (`oneOf`) of objects, each naming exactly one member."""
    properties: dict[str, Any] = {}
    needed: list[str] = []
    members: dict[str, dict] = {}
    for field in struct.fields:
        kind = field.group if field.group is not None else field.type
        if field.discriminant is not None:
            members[field.name] = _type_schema(kind)
            continue
        properties[field.name] = _type_schema(kind)
        if field.group is None and required(field.type, field.had_explicit_default):
            needed.append(field.name)
    if not members:
        return _object(properties, needed)
    return {
        "oneOf": [
            _object({**properties, name: schema}, [*needed, name])
            for name, schema in members.items()
        ]
    }


def _object(properties: dict[str, Any], needed: list[str]) -> dict:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if needed:
        schema["required"] = needed
    return schema


def _type_schema(kind: Any) -> dict:
    if isinstance(kind, StructType):
        return json_schema(kind)
    if isinstance(kind, InterfaceType) or kind in ("capability", "anyPointer"):
        what = kind.name if isinstance(kind, InterfaceType) else "any interface"
        return {
            "type": "object",
            "description": f"a cap this session holds, by name ({what})",
            "properties": {"$cap": {"type": "string"}},
            "required": ["$cap"],
            "additionalProperties": False,
        }
    if isinstance(kind, ListType):
        return {"type": "array", "items": _type_schema(kind.element)}
    if isinstance(kind, EnumType):
        return {"type": "string", "enum": list(kind.enumerants)}
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        return {"type": "integer", "minimum": low, "maximum": high}
    if kind in ("float32", "float64"):
        return {"type": "number"}
    if kind == "bool":
        return {"type": "boolean"}
    if kind in ("text", "data"):
        return {"type": "string"}
    return {"type": "null"}  # void


def _carries_caps(struct: StructType, seen: frozenset[int] = frozenset()) -> bool:
    if struct.id in seen:
        return False
    for field in struct.fields:
        kind = field.group if field.group is not None else field.type
        while isinstance(kind, ListType):
            kind = kind.element
        if isinstance(kind, InterfaceType) or kind in ("capability", "anyPointer"):
            return True
        if isinstance(kind, StructType) and _carries_caps(kind, seen | {struct.id}):
            return True
    return False


def arguments(tool: Tool, arguments_json: str) -> dict:
    """The params a proposed call's JSON arguments convert to; InputError says what is wrong."""
    try:
        args = json.loads(arguments_json or "{}")
        json.dumps(args, ensure_ascii=False).encode()
    except (ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise InputError(f"{tool.name}: the arguments are not valid JSON ({exc})") from None
    if not isinstance(args, dict):
        raise InputError(f"{tool.name}: the arguments must be a JSON object")
    return to_params(tool.method.params, args, _no_caps, tool.name)


def _no_caps(ref: object) -> Cap:
    raise InputError("a tool call cannot pass a cap")


def result_json(results: dict) -> str:
    """A call's results as JSON for the model (bytes as text): `{"ok": ...}`, or past
    MAX_RESULT_JSON characters, that text cut, as a string under `cut`."""
    text = json.dumps({"ok": plain(results)}, ensure_ascii=False)
    if len(text) <= MAX_RESULT_JSON:
        return text
    return json.dumps({"cut": text[:MAX_RESULT_JSON], "note": "the result was too long"})


def plain(value: Any) -> Any:
    """A decoded value as JSON-ready data: Data as text (UTF-8, invalid bytes replaced)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return value
