"""Compile `schema/*.capnp` into `schema/bundle.json` with pycapnp.

The kernel's codec is pure Python (it must run in Pyodide, where pycapnp is
not available), so the schema is compiled here once, on the host, into a
plain JSON bundle that `kernel.codec.Bundle` loads. The bundle is committed;
`schema build --check` catches a `.capnp` edited without a rebuild.

Bundle format (version 1)::

    {"version": 1, "files": ["capos.capnp", ...],
     "nodes": {"0x<16 hex>": node, ...}}

    node (struct): {"kind": "struct", "displayName", "name", "scopeId", "isGroup",
                    "dataWords", "pointers", "discriminantCount", "discriminantOffset",
                    "fields": [field, ...]}
    field: {"name", "codeOrder", "discriminantValue" (only inside a union),
            "offset", "type", "hadExplicitDefault", "default"}  (a slot)
        or {"name", "codeOrder", "discriminantValue"?, "group": "0x..."}
    node (enum): {"kind": "enum", "displayName", "name", "enumerants": [name, ...]}
    node (interface): {"kind": "interface", "displayName", "name", "superclasses",
                       "methods": [{"name", "ordinal", "params": "0x..", "results": "0x.."}]}
    type: "void" | "bool" | "int8".."uint64" | "float32" | "float64" | "text" | "data"
        | "capability" | "anyPointer" | {"list": type} | {"enum": id} | {"struct": id}
        | {"interface": id}

Defaults: primitives as JSON numbers/bools (floats that are not finite as the
strings "nan", "inf", "-inf"), enums as their ordinal, Text as a string, Data
as hex, struct and list defaults in the codec's value model (Data as hex,
enums by name). Pointer defaults are present only when the schema gave one.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kernel.codec.bundle import PRIMITIVE_TYPES

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = REPO_ROOT / "schema"
BUNDLE_PATH = SCHEMA_DIR / "bundle.json"
BUNDLE_VERSION = 1

_PRIMITIVES = PRIMITIVE_TYPES - {"capability", "anyPointer"}


def hex_id(node_id: int) -> str:
    """Ids are 64-bit: hex strings keep them exact for JavaScript readers too."""
    return f"0x{node_id:016x}"


def _type_json(t: Any) -> Any:
    """A schema.capnp Type reader as the bundle's compact type notation."""
    which = str(t.which())
    if which in _PRIMITIVES:
        return which
    if which == "list":
        return {"list": _type_json(t.list.elementType)}
    if which == "enum":
        return {"enum": hex_id(t.enum.typeId)}
    if which == "struct":
        return {"struct": hex_id(t.struct.typeId)}
    if which == "interface":
        return {"interface": hex_id(t.interface.typeId)}
    if which == "anyPointer":
        ap = t.anyPointer
        if str(ap.which()) == "unconstrained" and str(ap.unconstrained.which()) == "capability":
            return "capability"
        return "anyPointer"
    raise ValueError(f"unsupported schema type {which!r}")


def _float_json(v: float) -> Any:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def value_to_json(value: Any, t: Any, nodes: dict[str, dict]) -> Any:
    """A value in the codec's value model as JSON (type-directed: Data becomes hex)."""
    if value is None:
        return None
    if isinstance(t, str):
        if t == "data":
            return bytes(value).hex()
        if t in ("float32", "float64"):
            return _float_json(float(value))
        return value
    if "list" in t:
        return [value_to_json(v, t["list"], nodes) for v in value]
    if "struct" in t:
        return _struct_to_json(value, nodes[t["struct"]], nodes)
    return value  # enum name or ordinal, capability index


def _struct_to_json(value: dict, node: dict, nodes: dict[str, dict]) -> dict:
    out = {}
    for f in node["fields"]:
        if f["name"] not in value:
            continue
        v = value[f["name"]]
        if "group" in f:
            out[f["name"]] = _struct_to_json(v, nodes[f["group"]], nodes)
        else:
            out[f["name"]] = value_to_json(v, f["type"], nodes)
    return out


def reader_to_value(reader: Any, t: Any, nodes: dict[str, dict]) -> Any:
    """A pycapnp reader (or scalar) converted to the codec's value model.

    Type-directed, so it is exact where `to_dict()` is lossy: null struct
    pointers become None, capability pointers become True/None (a plain
    message has no capability table, so only presence is observable).
    """
    if isinstance(t, str):
        if t == "void":
            return None
        if t == "float32" or t == "float64":
            return float(reader)
        if t == "data":
            return bytes(reader)
        if t == "text":
            return str(reader)
        if t in ("capability", "anyPointer"):
            return None
        return reader
    if "list" in t:
        elem = t["list"]
        if elem == "capability" or (isinstance(elem, dict) and "interface" in elem):
            # pycapnp refuses to read capabilities without an RPC context: only
            # the length is observable.
            return [True] * len(reader)
        return [reader_to_value(reader[i], elem, nodes) for i in range(len(reader))]
    if "enum" in t:
        names = nodes[t["enum"]]["enumerants"]
        raw = reader.raw if hasattr(reader, "raw") else reader
        if isinstance(raw, int):
            return names[raw] if raw < len(names) else raw
        return str(reader)
    if "struct" in t:
        return struct_reader_to_value(reader, nodes[t["struct"]], nodes)
    return None


def struct_reader_to_value(reader: Any, node: dict, nodes: dict[str, dict]) -> dict:
    """A pycapnp struct reader as a dict: every non-union field, the active union member."""
    out: dict[str, Any] = {}
    active = str(reader.which()) if node["discriminantCount"] else None
    for f in node["fields"]:
        name = f["name"]
        if "discriminantValue" in f and name != active:
            continue
        if "group" in f:
            out[name] = struct_reader_to_value(getattr(reader, name), nodes[f["group"]], nodes)
            continue
        t = f["type"]
        is_cap = t == "capability" or (isinstance(t, dict) and "interface" in t)
        if is_cap:
            # Present or not: the index itself needs a capability table.
            out[name] = True if reader._has(name) else None
            continue
        if (
            isinstance(t, dict)
            and "struct" in t
            and f.get("default") is None
            and not reader._has(name)
        ):
            out[name] = None
            continue
        out[name] = reader_to_value(getattr(reader, name), t, nodes)
    return out


def _field_json(field: Any, schema_field: Any) -> tuple[dict, Any]:
    """One field as JSON, plus the pycapnp schema to visit next (group/struct) or None."""
    proto = field
    out: dict[str, Any] = {"name": proto.name, "codeOrder": proto.codeOrder}
    if proto.discriminantValue != 0xFFFF:
        out["discriminantValue"] = proto.discriminantValue
    if str(proto.which()) == "group":
        out["group"] = hex_id(proto.group.typeId)
        return out, schema_field.schema
    slot = proto.slot
    t = _type_json(slot.type)
    out["offset"] = slot.offset
    out["type"] = t
    out["hadExplicitDefault"] = bool(slot.hadExplicitDefault)
    dv = slot.defaultValue
    which = str(dv.which())
    if isinstance(t, str) and t in _PRIMITIVES:
        raw = getattr(dv, which)
        if t == "void":
            out["default"] = None
        elif t == "data":
            out["default"] = bytes(raw).hex()
        elif t in ("float32", "float64"):
            out["default"] = _float_json(float(raw))
        elif t == "bool":
            out["default"] = bool(raw)
        elif t == "text":
            out["default"] = str(raw)
        else:
            out["default"] = int(raw)
    elif isinstance(t, dict) and "enum" in t:
        out["default"] = int(dv.enum)
    else:
        out["default"] = None
    nested = None
    if isinstance(t, dict) and ("struct" in t or "list" in t):
        nested = schema_field.schema
    return out, nested


class _Compiler:
    def __init__(self) -> None:
        self.nodes: dict[str, dict] = {}
        # (node id, field index, pycapnp default reader, pycapnp type schema)
        self.pointer_defaults: list[tuple[str, int, Any, Any]] = []
        # pycapnp readers borrow from their schema objects: keep those alive.
        self.keepalive: list[Any] = []

    def visit_parsed(self, parsed: Any) -> None:
        self.keepalive.append(parsed)
        node = parsed.node
        kind = str(node.which())
        if kind == "struct":
            self.visit_struct(parsed.as_struct(), parsed)
        elif kind == "enum":
            self.visit_enum(parsed.as_enum())
        elif kind == "interface":
            self.visit_interface(parsed.as_interface(), parsed)
        elif kind == "file":
            self.visit_nested(parsed)
        # consts and annotations carry nothing the codec needs

    def visit_nested(self, parsed: Any) -> None:
        for nested in parsed.node.nestedNodes:
            self.visit_parsed(parsed.get_nested(nested.name))

    def _base(self, node: Any, kind: str) -> dict:
        display = node.displayName
        file_prefix = display.split(":", 1)
        return {
            "kind": kind,
            "displayName": display,
            "name": file_prefix[1] if len(file_prefix) == 2 else display,
            "scopeId": hex_id(node.scopeId),
        }

    def visit_struct(self, schema: Any, parsed: Any = None) -> None:
        self.keepalive.append(schema)
        node = schema.node
        key = hex_id(node.id)
        if key in self.nodes:
            return
        st = node.struct
        out = self._base(node, "struct")
        out.update(
            {
                "isGroup": bool(st.isGroup),
                "dataWords": st.dataWordCount,
                "pointers": st.pointerCount,
                "discriminantCount": st.discriminantCount,
                "discriminantOffset": st.discriminantOffset,
                "fields": [],
            }
        )
        self.nodes[key] = out
        by_name = schema.fields
        for index, proto in enumerate(st.fields):
            fj, nested = _field_json(proto, by_name[proto.name])
            out["fields"].append(fj)
            if "group" in fj:
                self.visit_struct(nested)
            elif fj.get("hadExplicitDefault") and str(proto.slot.defaultValue.which()) in (
                "struct",
                "list",
            ):
                reader = getattr(proto.slot.defaultValue, str(proto.slot.defaultValue.which()))
                self.pointer_defaults.append((key, index, reader, nested))
        if parsed is not None:
            self.visit_nested(parsed)

    def visit_enum(self, schema: Any) -> None:
        node = schema.node
        out = self._base(node, "enum")
        out["enumerants"] = [e.name for e in node.enum.enumerants]
        self.nodes[hex_id(node.id)] = out

    def visit_interface(self, schema: Any, parsed: Any) -> None:
        node = schema.node
        key = hex_id(node.id)
        out = self._base(node, "interface")
        out["superclasses"] = [hex_id(s.id) for s in node.interface.superclasses]
        methods = []
        for ordinal, m in enumerate(node.interface.methods):
            im = schema.methods[m.name]
            methods.append(
                {
                    "name": m.name,
                    "ordinal": ordinal,
                    "params": hex_id(m.paramStructType),
                    "results": hex_id(m.resultStructType),
                }
            )
            self.visit_struct(im.param_type)
            self.visit_struct(im.result_type)
        out["methods"] = methods
        self.nodes[key] = out
        self.visit_nested(parsed)

    def resolve_defaults(self) -> None:
        """Struct/list defaults are pointers: read them through pycapnp into the value model."""
        for key, index, reader, type_schema in self.pointer_defaults:
            field = self.nodes[key]["fields"][index]
            t = field["type"]
            is_struct = "struct" in t
            value = reader.as_struct(type_schema) if is_struct else reader.as_list(type_schema)
            field["default"] = value_to_json(reader_to_value(value, t, self.nodes), t, self.nodes)


_DECL = re.compile(r"^\s*(interface|struct|enum)\s+(\w+)")
_MEMBER = re.compile(r"^\s*(\w+)\s*@\d+")


def doc_comments(path: Path) -> dict[str, str]:
    """Doc comments by node path ("capos.capnp:Console", "...:Console.write").

    pycapnp does not expose capnp's source info, so this reads the comments
    the way capnp attaches them: the `#` lines just above a declaration, or
    at the end of its line.
    """
    docs: dict[str, str] = {}
    scope: list[tuple[str, int]] = []  # (name, brace depth when opened)
    depth = 0
    pending: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        code, _, comment = raw.partition("#")
        stripped = code.strip()
        if not stripped:
            pending = pending + [comment.strip()] if comment else []
            continue
        decl, member = _DECL.match(code), _MEMBER.match(code)
        name = decl.group(2) if decl else (member.group(1) if member else None)
        if name is not None:
            text = " ".join(pending + ([comment.strip()] if comment else [])).strip()
            key = ".".join([s for s, _ in scope] + [name])
            if text:
                docs[f"{path.name}:{key}"] = text
        pending = []
        for ch in code:
            if ch == "{":
                depth += 1
                if decl and (not scope or scope[-1][1] < depth):
                    scope.append((decl.group(2), depth))
                    decl = None
            elif ch == "}":
                if scope and scope[-1][1] == depth:
                    scope.pop()
                depth -= 1
    return docs


def compile_bundle(paths: Iterable[str | Path]) -> dict:
    """Compile the given .capnp files into the bundle dict (deterministic)."""
    import capnp

    resolved = sorted(Path(p).resolve() for p in paths)
    compiler = _Compiler()
    parser = capnp.SchemaParser()
    docs: dict[str, str] = {}
    for path in resolved:
        module = parser.load(str(path), imports=[str(path.parent)])
        compiler.visit_parsed(module.schema)
        docs.update(doc_comments(path))
    compiler.resolve_defaults()
    for node in compiler.nodes.values():
        if node["displayName"] in docs:
            node["doc"] = docs[node["displayName"]]
        for method in node.get("methods", []):
            doc = docs.get(f"{node['displayName']}.{method['name']}")
            if doc:
                method["doc"] = doc
    return {
        "version": BUNDLE_VERSION,
        "files": [p.name for p in resolved],
        "nodes": {k: compiler.nodes[k] for k in sorted(compiler.nodes)},
    }


def dump_bundle(bundle: dict) -> str:
    """The committed text form: sorted keys, indented, trailing newline."""
    return json.dumps(bundle, indent=1, sort_keys=True, allow_nan=False) + "\n"


def source_paths() -> list[Path]:
    return sorted(SCHEMA_DIR.glob("*.capnp"))


def build_command(check: bool) -> int:
    """`capos-playground schema build [--check]`."""
    text = dump_bundle(compile_bundle(source_paths()))
    if check:
        current = BUNDLE_PATH.read_text(encoding="utf-8") if BUNDLE_PATH.exists() else None
        if current != text:
            print(
                "schema/bundle.json is stale: run `capos-playground schema build`",
                file=sys.stderr,
            )
            return 1
        print("schema/bundle.json is up to date")
        return 0
    BUNDLE_PATH.write_text(text, encoding="utf-8")
    nodes = json.loads(text)["nodes"]
    print(f"wrote {BUNDLE_PATH.relative_to(REPO_ROOT)} ({len(nodes)} nodes)")
    return 0
