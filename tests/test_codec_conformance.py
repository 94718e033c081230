"""Conformance of the pure-Python codec against pycapnp (the reference C++ library).

For every struct of schema/*.capnp (method params/results included) and of the
test-only tests/schema/conformance.capnp, hypothesis generates values from the
bundle's type info and checks both directions:

(a) our encode -> pycapnp reads it -> the same value;
(b) pycapnp builds it -> our decode -> the same value;

in single-segment and multi-segment (far and double-far pointers) form.

Capabilities: a plain pycapnp message has no capability table, so pycapnp can
only tell whether a capability pointer is present. Direction (a) compares
capability fields as present/absent (the index itself is checked by our own
round trip); direction (b) generates them as None (pycapnp cannot set them).
"""

from __future__ import annotations

import math
import struct as pystruct
from pathlib import Path
from typing import Any

import capnp
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kernel.codec import (
    DecodeError,
    EncodeError,
    EnumType,
    InterfaceType,
    ListType,
    StructType,
    decode,
    encode,
)
from server.schemabuild import struct_reader_to_value

SETTINGS = settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_DEPTH = 3

_INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint8": (0, (1 << 8) - 1),
    "uint16": (0, (1 << 16) - 1),
    "uint32": (0, (1 << 32) - 1),
    "uint64": (0, (1 << 64) - 1),
}
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)


# ----------------------------------------------------------------------------- values


def value_strategy(t: Any, depth: int, caps: bool) -> st.SearchStrategy:
    """Values in the codec's value model for type `t`, exactly as decode returns them."""
    if isinstance(t, str):
        if t == "void" or t == "anyPointer":
            return st.none()
        if t == "bool":
            return st.booleans()
        if t in _INT_RANGES:
            lo, hi = _INT_RANGES[t]
            return st.integers(lo, hi)
        if t == "float32":
            return st.floats(width=32)
        if t == "float64":
            return st.floats()
        if t == "text":
            return _TEXT
        if t == "data":
            return st.binary(max_size=20)
        if t == "capability":
            return st.none() | st.integers(0, 2**32 - 1) if caps else st.none()
    if isinstance(t, InterfaceType):
        return st.none() | st.integers(0, 2**32 - 1) if caps else st.none()
    if isinstance(t, EnumType):
        return st.sampled_from(t.enumerants)
    if isinstance(t, ListType):
        if depth >= MAX_DEPTH:
            return st.just([])
        return st.lists(value_strategy(t.element, depth + 1, caps), max_size=4 if depth else 6)
    if isinstance(t, StructType):
        return struct_strategy(t, depth, caps)
    raise AssertionError(t)


def struct_strategy(s: StructType, depth: int, caps: bool) -> st.SearchStrategy:
    """A full struct value: every non-union field and exactly one member of each union.

    Without `caps` (values pycapnp must build), union members that would be a
    null pointer are left out: pycapnp cannot select a union member without
    setting it, so such a value would not round-trip through its builder.
    """
    plain = {}
    members = {}
    for f in s.fields:
        in_union = f.discriminant is not None
        t = f.type
        if f.group is not None:
            sub = struct_strategy(f.group, depth, caps)
        elif isinstance(t, StructType):
            if depth + 1 >= MAX_DEPTH:
                if in_union and not caps:
                    continue
                sub = st.just(f.default)  # null: decodes to the default (None or schema's)
            elif f.default is None and not (in_union and not caps):
                sub = st.none() | value_strategy(t, depth + 1, caps)
            else:
                sub = value_strategy(t, depth + 1, caps)
        elif (
            in_union
            and not caps
            and (t in ("capability", "anyPointer") or isinstance(t, InterfaceType))
        ):
            continue
        else:
            sub = value_strategy(t, depth, caps)
        (members if in_union else plain)[f.name] = sub
    base = st.fixed_dictionaries(plain)
    if not members:
        return base
    choice = st.one_of([st.tuples(st.just(n), v) for n, v in members.items()])
    return st.tuples(base, choice).map(lambda bc: {**bc[0], bc[1][0]: bc[1][1]})


def normalize(v: Any, caps_as_presence: bool = False) -> Any:
    """Comparable form: NaN equals NaN, -0.0 differs from 0.0, caps optionally as presence."""
    if isinstance(v, float):
        return ("nan",) if math.isnan(v) else ("float", pystruct.pack("<d", v))
    if isinstance(v, dict):
        return {k: normalize(x, caps_as_presence) for k, x in v.items()}
    if isinstance(v, list):
        return [normalize(x, caps_as_presence) for x in v]
    return v


def caps_to_presence(v: Any, t: Any) -> Any:
    """Replace capability indices by True (present) so they compare with pycapnp's view."""
    if v is None:
        return None
    if t == "capability" or isinstance(t, InterfaceType):
        return True
    if isinstance(t, ListType):
        if t.element == "capability" or isinstance(t.element, InterfaceType):
            return [True] * len(v)  # pycapnp shows only the length of a capability list
        return [caps_to_presence(x, t.element) for x in v]
    if isinstance(t, StructType):
        out = {}
        for k, x in v.items():
            f = t.fields_by_name[k]
            out[k] = caps_to_presence(x, f.group if f.group is not None else f.type)
        return out
    return v


# ----------------------------------------------------------------------------- pycapnp side


def set_struct(b: Any, value: dict, s: StructType) -> None:
    """Fill a pycapnp struct builder from a value (type-directed; caps must be None)."""
    for name, v in value.items():
        f = s.fields_by_name[name]
        if f.group is not None:
            # init() also selects a group that is a union member.
            group = b.init(name) if f.discriminant is not None else getattr(b, name)
            set_struct(group, v, f.group)
            continue
        t = f.type
        if v is None and t != "void":
            continue
        if isinstance(t, StructType):
            set_struct(b.init(name), v, t)
        elif isinstance(t, ListType):
            set_list(b.init(name, len(v)), v, t.element)
        else:
            setattr(b, name, v)


def set_list(lb: Any, value: list, elem: Any) -> None:
    for i, v in enumerate(value):
        if isinstance(elem, StructType):
            set_struct(lb[i], v, elem)
        elif isinstance(elem, ListType):
            set_list(lb.init(i, len(v)), v, elem.element)
        elif v is not None:
            lb[i] = v


def frame(segments: list[bytes]) -> bytes:
    n = len(segments)
    table = pystruct.pack(f"<{n + 1}I", n - 1, *(len(s) // 8 for s in segments))
    if len(table) % 8:
        table += b"\0" * 4
    return table + b"".join(segments)


class Oracle:
    """pycapnp struct modules by node id, for every struct in the combined bundle."""

    def __init__(self, schemas: Any) -> None:
        self.schemas = schemas
        self.by_id: dict[int, Any] = {}
        for module in schemas.modules.values():
            self._walk(module.schema)

    def _walk(self, parsed: Any) -> None:
        for nested in parsed.node.nestedNodes:
            child = parsed.get_nested(nested.name)
            kind = str(child.node.which())
            if kind == "struct":
                self._add(child.as_struct())
            elif kind == "interface":
                iface = child.as_interface()
                for name in iface.method_names:
                    m = iface.methods[name]
                    self._add(m.param_type)
                    self._add(m.result_type)
            self._walk(child)

    def _add(self, schema: Any) -> None:
        node_id = schema.node.id
        if node_id not in self.by_id:
            self.by_id[node_id] = capnp.lib.capnp._StructModule(schema, str(node_id))

    def read(self, s: StructType, data: bytes) -> dict:
        with self.by_id[s.id].from_bytes(data) as r:
            return struct_reader_to_value(
                r, self.schemas.raw["nodes"][f"0x{s.id:016x}"], self.schemas.raw["nodes"]
            )

    def build(self, s: StructType, value: dict, first_segment_words: int | None = None) -> bytes:
        if first_segment_words is None:
            msg = self.by_id[s.id].new_message()
            set_struct(msg, value, s)
            return msg.to_bytes()
        mb = capnp._MallocMessageBuilder(first_segment_words)
        root = mb.init_root(self.by_id[s.id])
        set_struct(root, value, s)
        return frame(list(mb.get_segments_for_output()))


@pytest.fixture(scope="module")
def oracle(codec_schemas: Any) -> Oracle:
    return Oracle(codec_schemas)


def _struct_names() -> list[str]:
    """Display names of every struct under test, known at collection time."""
    from server.schemabuild import compile_bundle, source_paths

    conformance = Path(__file__).resolve().parent / "schema" / "conformance.capnp"
    raw = compile_bundle([*source_paths(), conformance])
    return sorted(
        n["displayName"]
        for n in raw["nodes"].values()
        if n["kind"] == "struct" and not n["isGroup"]
    )


STRUCT_NAMES = _struct_names()


def test_every_schema_file_is_covered() -> None:
    files = {name.split(":")[0] for name in STRUCT_NAMES}
    assert {"capos.capnp", "manifest.capnp", "conformance.capnp"} <= files


@pytest.mark.parametrize("name", STRUCT_NAMES)
def test_our_encoding_reads_back_in_pycapnp(name: str, codec_schemas: Any, oracle: Oracle) -> None:
    s = codec_schemas.bundle.struct(name)

    @SETTINGS
    @given(value=struct_strategy(s, 0, caps=True), seg=st.none() | st.integers(1, 6))
    def check(value: dict, seg: int | None) -> None:
        try:
            data = encode(s, value, segment_words=seg)
        except EncodeError as err:  # tiny segments, many objects: past what readers take
            assume("more than the limit" not in str(err))
            raise
        assert normalize(decode(s, data)) == normalize(value)
        assert normalize(oracle.read(s, data)) == normalize(caps_to_presence(value, s))

    check()


@pytest.mark.parametrize("name", STRUCT_NAMES)
def test_pycapnp_encoding_decodes_with_ours(name: str, codec_schemas: Any, oracle: Oracle) -> None:
    s = codec_schemas.bundle.struct(name)

    @SETTINGS
    @given(value=struct_strategy(s, 0, caps=False), first=st.none() | st.integers(1, 8))
    def check(value: dict, first: int | None) -> None:
        data = oracle.build(s, value, first)
        try:
            got = decode(s, data)
        except DecodeError as e:  # pragma: no cover - a failure to report, with context
            raise AssertionError(f"{e} for {data.hex()}") from e
        assert normalize(got) == normalize(value)

    check()


def test_pycapnp_really_produced_multi_segment_messages(codec_schemas: Any, oracle: Oracle) -> None:
    """Guard for the test above: a small first segment does give far pointers."""
    s = codec_schemas.bundle.struct("Lists")
    value = {"lt": ["a" * 50, "b", "c" * 100], "lll": [[5, 0, 0], []]}
    data = oracle.build(s, value, 1)
    assert pystruct.unpack_from("<I", data)[0] + 1 > 1
    got = decode(s, data)
    assert got["lt"] == value["lt"] and got["lll"] == value["lll"]


TO_DICT_STRUCTS = [
    "manifest.capnp:Binary",
    "manifest.capnp:CapSource",
    "manifest.capnp:KernelParams",
    "manifest.capnp:Service",
    "conformance.capnp:Primitives",
]


@pytest.mark.parametrize("name", TO_DICT_STRUCTS)
def test_value_model_matches_pycapnp_to_dict(name: str, codec_schemas: Any, oracle: Oracle) -> None:
    """Our value model is pycapnp's `to_dict(verbose=True)` wherever that is lossless
    (no null struct pointers, no capabilities), so the two compare directly."""
    s = codec_schemas.bundle.struct(name)

    @settings(max_examples=30, deadline=None)
    @given(value=struct_strategy(s, 0, caps=False))
    def check(value: dict) -> None:
        with oracle.by_id[s.id].from_bytes(encode(s, value)) as r:
            assert normalize(r.to_dict(verbose=True)) == normalize(value)

    check()
