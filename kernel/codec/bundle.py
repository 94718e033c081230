"""The schema bundle (`schema/bundle.json`) loaded into typed node objects.

The bundle is produced on the host by `server/schemabuild.py` (pycapnp); this
module only reads JSON, so it runs anywhere Python does, Pyodide included.
Types are plain objects: a primitive type is its name ("uint32", "text",
"capability", ...), a list is a `ListType`, and enums, structs and interfaces
are their node objects. Encoder/decoder plans are compiled lazily and cached
on each `StructType`.
"""

from __future__ import annotations

import json
import math
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

PRIMITIVE_TYPES = frozenset(
    {
        "void",
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float32",
        "float64",
        "text",
        "data",
        "capability",
        "anyPointer",
    }
)

# The value range of each integer type, for checks before encoding.
INT_RANGES = {
    f"{sign}int{bits}": (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if sign == "" else (0, (1 << bits) - 1)
    )
    for sign in ("", "u")
    for bits in (8, 16, 32, 64)
}

DEFAULT_BUNDLE = "schema/bundle.json"  # kernel/shipped.py


class ListType:
    """List(element)."""

    __slots__ = ("element",)

    def __init__(self, element: Type) -> None:
        self.element = element

    def __repr__(self) -> str:
        return f"List({type_name(self.element)})"


class EnumType:
    """An enum: values decode to enumerant names."""

    def __init__(self, node_id: int, name: str, display_name: str, enumerants: list[str]):
        self.id = node_id
        self.name = name
        self.display_name = display_name
        self.enumerants = enumerants
        self.ordinals = {n: i for i, n in enumerate(enumerants)}
        self.doc = ""  # the .capnp doc comment, for the manual

    def __repr__(self) -> str:
        return f"<EnumType {self.display_name}>"


class Field:
    """One struct field: a slot (offset + type + default) or a group."""

    __slots__ = (
        "code_order",
        "default",
        "discriminant",
        "group",
        "had_explicit_default",
        "name",
        "offset",
        "type",
    )

    def __init__(self, name: str, code_order: int, discriminant: int | None) -> None:
        self.name = name
        self.code_order = code_order
        self.discriminant = discriminant  # None: not a union member
        self.offset = 0
        self.type: Type = "void"
        self.default: Any = None
        self.had_explicit_default = False
        self.group: StructType | None = None

    def __repr__(self) -> str:
        kind = f"group {self.group.name}" if self.group else type_name(self.type)
        return f"<Field {self.name}: {kind}>"


class StructType:
    """A struct (or group) node; `fields` in declaration (code) order."""

    def __init__(self, node_id: int, name: str, display_name: str) -> None:
        self.id = node_id
        self.name = name
        self.display_name = display_name
        self.is_group = False
        self.data_words = 0
        self.pointers = 0
        self.discriminant_count = 0
        self.discriminant_offset = 0
        self.fields: list[Field] = []
        self.fields_by_name: dict[str, Field] = {}
        self.doc = ""  # the .capnp doc comment, for the manual
        # Plans, compiled on first use by reader.py / builder.py.
        self._decoder: Any = None
        self._encoder: Any = None

    def field(self, name: str) -> Field:
        return self.fields_by_name[name]

    def __repr__(self) -> str:
        return f"<StructType {self.display_name}>"


class Method:
    """An interface method: ordinal (the capnp method id), params and results structs."""

    def __init__(self, ordinal: int, name: str, params: StructType, results: StructType):
        self.ordinal = ordinal
        self.name = name
        self.params = params
        self.results = results
        self.doc = ""  # the .capnp doc comment, for the manual

    def __repr__(self) -> str:
        return f"<Method {self.name} @{self.ordinal}>"


class InterfaceType:
    """An interface node: `id` is the capnp-assigned interface id."""

    def __init__(self, node_id: int, name: str, display_name: str) -> None:
        self.id = node_id
        self.name = name
        self.display_name = display_name
        self.methods: list[Method] = []
        self.superclasses: list[InterfaceType] = []
        self._by_name: dict[str, Method] = {}
        self.doc = ""  # the .capnp doc comment, for the manual

    def method(self, name: str) -> Method:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.name} has no method {name!r}") from None

    def method_by_ordinal(self, ordinal: int) -> Method | None:
        """None for an ordinal the schema does not define: callers get it off the wire."""
        if 0 <= ordinal < len(self.methods):
            return self.methods[ordinal]
        return None

    def __repr__(self) -> str:
        return f"<InterfaceType {self.display_name} 0x{self.id:016x}>"


Type = str | ListType | EnumType | StructType | InterfaceType


def type_name(t: Type) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, ListType):
        return repr(t)
    return t.name


_CAPNP_NAMES = {
    "void": "Void",
    "bool": "Bool",
    "int8": "Int8",
    "int16": "Int16",
    "int32": "Int32",
    "int64": "Int64",
    "uint8": "UInt8",
    "uint16": "UInt16",
    "uint32": "UInt32",
    "uint64": "UInt64",
    "float32": "Float32",
    "float64": "Float64",
    "text": "Text",
    "data": "Data",
    "capability": "Capability",
    "anyPointer": "AnyPointer",
}


def capnp_type_name(t: Type) -> str:
    """A type as a .capnp file spells it: `List(Text)`, `UInt32`, `ProcessHandle`."""
    if isinstance(t, str):
        return _CAPNP_NAMES.get(t, t)
    if isinstance(t, ListType):
        return f"List({capnp_type_name(t.element)})"
    return t.name


def _float_from_json(v: Any) -> float:
    if isinstance(v, str):
        return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[v]
    return float(v)


def value_from_json(v: Any, t: Type) -> Any:
    """A JSON default (see schemabuild) as a value in the codec's value model."""
    if v is None:
        return None
    if isinstance(t, str):
        if t == "data":
            return bytes.fromhex(v)
        if t == "float32":
            # Round through float32 so the value is exactly what decode would yield.
            return struct.unpack("<f", struct.pack("<f", _float_from_json(v)))[0]
        if t == "float64":
            return _float_from_json(v)
        return v
    if isinstance(t, ListType):
        return [value_from_json(x, t.element) for x in v]
    if isinstance(t, StructType):
        return {
            f.name: (
                value_from_json(v[f.name], f.group)
                if f.group is not None
                else value_from_json(v[f.name], f.type)
            )
            for f in t.fields
            if f.name in v
        }
    return v  # enum name (or unknown ordinal), capability index


class Bundle:
    """All nodes of a compiled schema bundle, with lookups by name and id."""

    def __init__(self) -> None:
        self.nodes: dict[int, StructType | EnumType | InterfaceType] = {}
        self._by_name: dict[str, Any] = {}
        self._ambiguous: set[str] = set()

    # -- loading ---------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Bundle:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    @classmethod
    def default(cls) -> Bundle:
        """The repository's `schema/bundle.json`, loaded once per process."""
        return _default_bundle()

    @classmethod
    def from_dict(cls, d: dict) -> Bundle:
        if d.get("version") != 1:
            raise ValueError(f"unsupported bundle version {d.get('version')!r}")
        self = cls()
        raw = {int(k, 16): v for k, v in d["nodes"].items()}
        # Pass 1: create every node so types can refer to any of them.
        for node_id, n in raw.items():
            kind = n["kind"]
            if kind == "struct":
                node: StructType | EnumType | InterfaceType = StructType(
                    node_id, n["name"], n["displayName"]
                )
            elif kind == "enum":
                node = EnumType(node_id, n["name"], n["displayName"], list(n["enumerants"]))
            elif kind == "interface":
                node = InterfaceType(node_id, n["name"], n["displayName"])
            else:
                raise ValueError(f"unknown node kind {kind!r}")
            node.doc = n.get("doc", "")  # the .capnp doc comment, for the manual
            self.nodes[node_id] = node
        # Pass 2: fill structs and interfaces.
        for node_id, n in raw.items():
            node = self.nodes[node_id]
            if isinstance(node, StructType):
                self._fill_struct(node, n)
            elif isinstance(node, InterfaceType):
                self._fill_interface(node, n)
        # Pass 3: defaults (struct defaults need their field lists in place).
        for node_id, n in raw.items():
            node = self.nodes[node_id]
            if isinstance(node, StructType):
                for fj in n["fields"]:
                    f = node.fields_by_name[fj["name"]]
                    if f.group is None:
                        f.default = self._slot_default(f, fj.get("default"))
        for node in self.nodes.values():
            for key in (node.name, node.display_name):
                if key in self._by_name and self._by_name[key] is not node:
                    self._ambiguous.add(key)
                self._by_name.setdefault(key, node)
        return self

    def _type(self, t: Any) -> Type:
        if isinstance(t, str):
            if t not in PRIMITIVE_TYPES:
                raise ValueError(f"unknown type {t!r}")
            return t
        if "list" in t:
            return ListType(self._type(t["list"]))
        for key in ("enum", "struct", "interface"):
            if key in t:
                return self.nodes[int(t[key], 16)]
        raise ValueError(f"unknown type {t!r}")

    def _fill_struct(self, st: StructType, n: dict) -> None:
        st.is_group = bool(n["isGroup"])
        st.data_words = n["dataWords"]
        st.pointers = n["pointers"]
        st.discriminant_count = n["discriminantCount"]
        st.discriminant_offset = n["discriminantOffset"]
        for fj in sorted(n["fields"], key=lambda f: f["codeOrder"]):
            f = Field(fj["name"], fj["codeOrder"], fj.get("discriminantValue"))
            if "group" in fj:
                f.group = self.struct_by_id(int(fj["group"], 16))
            else:
                f.offset = fj["offset"]
                f.type = self._type(fj["type"])
                f.had_explicit_default = bool(fj.get("hadExplicitDefault"))
            st.fields.append(f)
            st.fields_by_name[f.name] = f

    def _fill_interface(self, it: InterfaceType, n: dict) -> None:
        it.superclasses = [self.interface_by_id(int(s, 16)) for s in n.get("superclasses", [])]
        for mj in sorted(n["methods"], key=lambda m: m["ordinal"]):
            m = Method(
                mj["ordinal"],
                mj["name"],
                self.struct_by_id(int(mj["params"], 16)),
                self.struct_by_id(int(mj["results"], 16)),
            )
            m.doc = mj.get("doc", "")
            it.methods.append(m)
            it._by_name[m.name] = m

    def _slot_default(self, f: Field, v: Any) -> Any:
        t = f.type
        if isinstance(t, EnumType):
            return v or 0  # the ordinal: decode XORs with it
        if t in ("float32", "float64"):
            return value_from_json(v if v is not None else 0.0, t)
        if t == "void":
            return None
        if isinstance(t, str) and t not in ("text", "data", "capability", "anyPointer"):
            return v if v is not None else (False if t == "bool" else 0)
        return value_from_json(v, t)

    # -- lookups -----------------------------------------------------------------

    def _lookup(self, name: str, cls: type) -> Any:
        if name in self._ambiguous:
            raise KeyError(f"{name!r} is ambiguous: use the full name 'file.capnp:{name}'")
        node = self._by_name.get(name)
        if not isinstance(node, cls):
            raise KeyError(f"no {cls.__name__} named {name!r} in the bundle")
        return node

    def struct(self, name: str) -> StructType:
        """By name within its file ("CapGrant", "Console.write$Params") or displayName."""
        return self._lookup(name, StructType)

    def enum(self, name: str) -> EnumType:
        return self._lookup(name, EnumType)

    def interface(self, name: str) -> InterfaceType:
        return self._lookup(name, InterfaceType)

    def interface_by_id(self, interface_id: int) -> InterfaceType:
        node = self.nodes.get(interface_id)
        if not isinstance(node, InterfaceType):
            raise KeyError(f"no interface with id 0x{interface_id:016x}")
        return node

    def struct_by_id(self, struct_id: int) -> StructType:
        node = self.nodes.get(struct_id)
        if not isinstance(node, StructType):
            raise KeyError(f"no struct with id 0x{struct_id:016x}")
        return node

    @property
    def structs(self) -> list[StructType]:
        """Every struct except groups (method params/results included)."""
        return [n for n in self.nodes.values() if isinstance(n, StructType) and not n.is_group]

    @property
    def interfaces(self) -> list[InterfaceType]:
        return [n for n in self.nodes.values() if isinstance(n, InterfaceType)]

    @property
    def enums(self) -> list[EnumType]:
        return [n for n in self.nodes.values() if isinstance(n, EnumType)]


@lru_cache(maxsize=1)
def _default_bundle() -> Bundle:
    from kernel.shipped import shipped

    return Bundle.from_dict(json.loads(shipped(DEFAULT_BUNDLE).read_text(encoding="utf-8")))
