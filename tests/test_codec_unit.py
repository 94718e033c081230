"""Unit tests of the pure-Python codec, mostly against hand-built wire bytes."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

from kernel.codec import Bundle, DecodeError, EncodeError, decode, encode

# ----------------------------------------------------------------------------- wire helpers


def sp(off: int, dw: int, pc: int) -> int:
    """A struct pointer word."""
    return (off & 0x3FFFFFFF) << 2 | dw << 32 | pc << 48


def lp(off: int, es: int, count: int) -> int:
    """A list pointer word."""
    return (off & 0x3FFFFFFF) << 2 | 1 | es << 32 | count << 35


def fp(seg: int, pad: int, double: bool = False) -> int:
    """A far pointer word."""
    return 2 | (4 if double else 0) | pad << 3 | seg << 32


def cp(index: int) -> int:
    return 3 | index << 32


def frame(*segments: list[int | bytes]) -> bytes:
    """Frame segments given as lists of words (ints) or raw 8-byte chunks."""
    raw = [
        b"".join(w if isinstance(w, bytes) else struct.pack("<Q", w) for w in seg)
        for seg in segments
    ]
    n = len(raw)
    table = struct.pack(f"<{n + 1}I", n - 1, *(len(s) // 8 for s in raw))
    if len(table) % 8:
        table += b"\0" * 4
    return table + b"".join(raw)


def text_words(s: bytes) -> list[bytes]:
    """NUL-terminated bytes padded to words."""
    s += b"\0"
    s += b"\0" * (-len(s) % 8)
    return [s[i : i + 8] for i in range(0, len(s), 8)]


@pytest.fixture(scope="module")
def cb(codec_schemas: Any) -> Bundle:
    """The combined bundle (schema/*.capnp plus the conformance schema)."""
    return codec_schemas.bundle


@pytest.fixture(scope="module")
def conf(codec_schemas: Any) -> Any:
    return codec_schemas.modules["conformance.capnp"]


# ----------------------------------------------------------------------------- bundle


def test_bundle_lookups_by_short_and_full_name() -> None:
    b = Bundle.default()
    assert b.struct("CapGrant") is b.struct("capos.capnp:CapGrant")
    assert b.struct("CapGrant").name == "CapGrant"
    console = b.interface("Console")
    assert console.method("write").ordinal == 0
    assert console.method_by_ordinal(1).name == "writeLine"
    assert console.method("write").params is b.struct("Console.write$Params")
    assert b.interface_by_id(console.id) is console
    assert console in b.interfaces and b.struct("CapGrant") in b.structs
    with pytest.raises(KeyError):
        b.struct("NoSuchStruct")
    with pytest.raises(KeyError):
        b.interface("CapGrant")
    with pytest.raises(KeyError):
        console.method("nope")


def test_bundle_default_is_cached() -> None:
    assert Bundle.default() is Bundle.default()


def test_interface_ids_are_the_capnp_assigned_ids(codec_schemas: Any) -> None:
    capos = codec_schemas.modules["capos.capnp"]
    b = Bundle.default()
    for iface in b.interfaces:
        if iface.display_name.startswith("capos.capnp:"):
            assert iface.id == getattr(capos, iface.name).schema.node.id


def test_groups_are_not_listed_as_structs(cb: Bundle) -> None:
    assert all(not s.is_group for s in cb.structs)
    assert cb.struct("Unions.grp").is_group


# ----------------------------------------------------------------------------- defaults


DEFAULTS = {
    "b": True,
    "i8": -123,
    "i16": -12345,
    "i32": -12345678,
    "i64": -123456789012345,
    "u8": 234,
    "u16": 45678,
    "u32": 3456789012,
    "u64": 12345678901234567890,
    "f32": 1234.5,
    "f64": -123e45,
    "t": "foo",
    "d": b"bar",
    "e": "blue",
    "s": {"a": 7, "b": "seven", "c": -5},
    "l": [1, -2, 3],
    "lt": ["x", "yz"],
    "ls": [{"a": 1, "b": "", "c": -5}, {"a": 0, "b": "two", "c": 3}],
    "bFalse": False,
    "f64inf": math.inf,
    "f32neg": -0.25,
    "v": None,
    "lb": [True, False, True],
    "u": {"dflt": 77},
}


def test_empty_struct_decodes_to_schema_defaults(cb: Bundle) -> None:
    st = cb.struct("Defaults")
    assert decode(st, encode(st, {})) == DEFAULTS


def test_null_root_pointer_decodes_to_defaults(cb: Bundle) -> None:
    assert decode(cb.struct("Defaults"), frame([0])) == DEFAULTS


def test_default_xor_round_trips_nonzero_default(cb: Bundle) -> None:
    st = cb.struct("Defaults")
    data = encode(st, {"i32": -12345678, "u64": 0, "b": False, "f32": 0.0, "e": "red"})
    # The value equal to the default is stored as zero bits.
    seg = data[8:]
    root_data = seg[8 : 8 + 8 * 8]
    i32_offset = 2 * 4
    assert root_data[i32_offset : i32_offset + 4] == b"\0\0\0\0"
    got = decode(st, data)
    assert (got["i32"], got["u64"], got["b"], got["f32"], got["e"]) == (
        -12345678,
        0,
        False,
        0.0,
        "red",
    )


def test_default_xor_matches_pycapnp(cb: Bundle, conf: Any) -> None:
    st = cb.struct("Defaults")
    data = encode(st, {"i8": 5, "u16": 0, "f64": 1.0, "b": False})
    with conf.Defaults.from_bytes(data) as r:
        assert (r.i8, r.u16, r.f64, r.b, r.i64) == (5, 0, 1.0, False, -123456789012345)


def test_pointer_defaults_are_fresh_copies(cb: Bundle) -> None:
    st = cb.struct("Defaults")
    data = encode(st, {})
    first = decode(st, data)
    first["s"]["a"] = 999
    first["ls"].append("junk")
    second = decode(st, data)
    assert second["s"]["a"] == 7 and len(second["ls"]) == 2


def test_union_member_with_default_and_group_defaults(cb: Bundle) -> None:
    st = cb.struct("Unions")
    got = decode(st, encode(st, {}))
    assert got["grp"] == {"g1": 9, "sub": {"deep": "", "deeper": {"p": 0}}}
    assert got["none"] is None and got["named"] == {"x": 0}


# ----------------------------------------------------------------------------- structs


def test_older_writer_shorter_sections_read_as_defaults(cb: Bundle) -> None:
    # Inner written by an "older schema" with no data section and one pointer.
    data = frame([sp(0, 0, 1), lp(0, 2, 3), b"hi\0\0\0\0\0\0"])
    assert decode(cb.struct("Inner"), data) == {"a": 0, "b": "hi", "c": -5}


def test_newer_writer_longer_sections_are_ignored(cb: Bundle) -> None:
    # Inner (1 data word, 1 pointer) written by a "newer schema": 3 data words, 2 pointers.
    words = [
        sp(0, 3, 2),
        7 | (4 ^ 0xFFFB) << 32,
        0xDEAD,
        0xBEEF,
        lp(1, 2, 2),
        0,
        b"x\0" + b"\0" * 6,
    ]
    assert decode(cb.struct("Inner"), frame(words)) == {"a": 7, "b": "x", "c": 4}


def test_zero_sized_struct_is_not_null(cb: Bundle, conf: Any) -> None:
    st = cb.struct("PointerOnly")
    data = encode(st, {"e": {}})
    assert decode(st, data)["e"] == {}
    assert decode(st, encode(st, {}))["e"] is None
    with conf.PointerOnly.from_bytes(data) as r:
        assert r._has("e")


def test_unions_round_trip(cb: Bundle) -> None:
    st = cb.struct("Unions")
    value = {"text": "t", "named": {"z": [1, 2]}, "grp": {"sub": {"deeper": {"r": {"r1": True}}}}}
    got = decode(st, encode(st, value))
    assert got["text"] == "t" and got["named"] == {"z": [1, 2]}
    assert got["grp"]["sub"]["deeper"] == {"r": {"r1": True, "r2": -1}}


def test_unknown_union_discriminant_yields_no_member(cb: Bundle) -> None:
    st = cb.struct("CapGrant")
    data = bytearray(encode(st, {"name": "n", "source": {"newEndpoint": 1}}))
    # discriminant at data byte 0 (offset 0 in u16 units) of the root struct
    struct.pack_into("<H", data, 16, 9)
    assert decode(st, bytes(data)) == {"name": "n", "source": {}}


# ----------------------------------------------------------------------------- encode errors


def test_encode_rejects_unknown_field_naming_the_path(cb: Bundle) -> None:
    with pytest.raises(EncodeError, match=r"grp\.sub\.bogus"):
        encode(cb.struct("Unions"), {"grp": {"sub": {"bogus": 1}}})


def test_encode_rejects_two_members_of_one_union(cb: Bundle) -> None:
    with pytest.raises(EncodeError, match="more than one member") as e:
        encode(cb.struct("Unions"), {"num": 1, "text": "x"})
    assert e.value.path == ["text"]


def test_encode_range_checks_ints_naming_the_field(cb: Bundle) -> None:
    with pytest.raises(EncodeError, match=r"^u8: 256 is out of range"):
        encode(cb.struct("Primitives"), {"u8": 256})
    with pytest.raises(EncodeError, match=r"ls\[1\]\.a"):
        encode(cb.struct("Lists"), {"ls": [{"a": 1}, {"a": -1}]})
    with pytest.raises(EncodeError, match=r"li8\[2\]"):
        encode(cb.struct("Lists"), {"li8": [1, 2, 300]})


@pytest.mark.parametrize(
    "field,value",
    [
        ("b", 1),
        ("i32", 1.5),
        ("i32", True),
        ("t", b"bytes"),
        ("d", "text"),
        ("e", "purple"),
        ("v", 0),
        ("f32", "x"),
        ("f32", 1e300),
    ],
)
def test_encode_rejects_wrong_types(cb: Bundle, field: str, value: Any) -> None:
    with pytest.raises(EncodeError, match=f"^{field}: "):
        encode(cb.struct("Primitives"), {field: value})


def test_anypointer_and_capabilities_encode(cb: Bundle) -> None:
    st = cb.struct("Caps")
    value = {"w": 5, "c": 7, "name": "n", "u": {"a": 2}, "lc": [1, None, 3]}
    assert decode(st, encode(st, value)) == value
    with pytest.raises(EncodeError, match=r"^w: "):
        encode(st, {"w": -1})


# ----------------------------------------------------------------------------- primitives


def test_floats_nan_inf_negative_zero_round_trip(cb: Bundle) -> None:
    st = cb.struct("Primitives")
    got = decode(st, encode(st, {"f32": math.nan, "f64": -0.0}))
    assert math.isnan(got["f32"]) and math.copysign(1, got["f64"]) == -1
    got = decode(cb.struct("Defaults"), encode(cb.struct("Defaults"), {"f64inf": math.nan}))
    assert math.isnan(got["f64inf"])


def test_unknown_enum_ordinal_decodes_as_int_and_round_trips(cb: Bundle) -> None:
    st = cb.struct("Primitives")
    assert decode(st, encode(st, {"e": 9}))["e"] == 9
    assert decode(st, encode(st, {"e": 2}))["e"] == "blue"


def test_text_with_embedded_nul_round_trips(cb: Bundle) -> None:
    st = cb.struct("Primitives")
    assert decode(st, encode(st, {"t": "a\0b"}))["t"] == "a\0b"


def test_data_accepts_bytes_like(cb: Bundle) -> None:
    st = cb.struct("Primitives")
    for v in (bytearray(b"xy"), memoryview(b"xy")):
        assert decode(st, encode(st, {"d": v}))["d"] == b"xy"


def test_decode_accepts_bytes_like(cb: Bundle) -> None:
    st = cb.struct("Inner")
    data = encode(st, {"a": 1})
    assert decode(st, bytearray(data)) == decode(st, memoryview(data)) == decode(st, data)


# ----------------------------------------------------------------------------- lists


def test_all_list_element_sizes_round_trip(cb: Bundle) -> None:
    st = cb.struct("Lists")
    value = {
        "lv": [None] * 3,
        "lb": [True, False, True, True, False, False, False, False, True],
        "li8": [-128, 127],
        "lu16": [65535],
        "li32": [-(2**31)],
        "lu64": [2**64 - 1],
        "lf32": [1.5],
        "lf64": [-2.25],
        "lt": ["a", "", "ccc"],
        "ld": [b"", b"\x00\xff"],
        "ls": [{"a": 1, "b": "x", "c": 2}],
        "lll": [[1], [], [2, 3]],
        "lllt": [["a"], []],
        "le": ["red", "blue"],
        "lc": [None, 4],
    }
    got = decode(st, encode(st, value))
    for k, v in value.items():
        assert got[k] == v, k


def test_struct_list_read_from_primitive_list_is_upgraded(cb: Bundle) -> None:
    # Lists.ls (List(Inner)) written as a List(UInt32): each element is Inner's field a.
    words = [sp(0, 0, 11)] + [0] * 10 + [lp(0, 4, 2), 5 | 6 << 32]
    got = decode(cb.struct("Lists"), frame(words))
    assert got["ls"] == [{"a": 5, "b": "", "c": -5}, {"a": 6, "b": "", "c": -5}]


def test_struct_list_read_from_pointer_list_is_upgraded(cb: Bundle) -> None:
    # Lists.ls (List(Inner)) written as a list of pointers: each is Inner's first pointer.
    words = [sp(0, 0, 11)] + [0] * 11
    words[11] = lp(0, 6, 1)
    words += [lp(0, 2, 3), b"ab\0" + b"\0" * 5]
    got = decode(cb.struct("Lists"), frame(words))
    assert got["ls"] == [{"a": 0, "b": "ab", "c": -5}]


def test_struct_list_from_bit_list_is_decode_error(cb: Bundle) -> None:
    words = [sp(0, 0, 11)] + [0] * 11
    words[11] = lp(0, 1, 3)
    words.append(0b101)
    with pytest.raises(DecodeError, match="bit list"):
        decode(cb.struct("Lists"), frame(words))


def test_primitive_list_read_from_wider_and_composite_lists(cb: Bundle) -> None:
    # Lists.li8 (pointer 2) from a 4-byte list; Lists.lu16 (pointer 3) from a struct list.
    words = [sp(0, 0, 4), 0, 0, lp(1, 4, 2), lp(1, 7, 2), 0xFFFFFF01 | 0x7F << 32]
    words += [sp(0, 1, 0) | 2 << 2 & 0xFFFFFFFF, 0x1234, 0x5678]
    got = decode(cb.struct("Lists"), frame(words))
    assert got["li8"] == [1, 127]
    assert got["lu16"] == [0x1234, 0x5678]


def test_text_list_read_from_four_byte_list_is_error(cb: Bundle) -> None:
    words = [sp(0, 0, 9)] + [0] * 9
    words[9] = lp(0, 4, 1)
    words.append(0)
    with pytest.raises(DecodeError, match="expected a list of pointers"):
        decode(cb.struct("Lists"), frame(words))


def test_composite_list_overrunning_its_word_count_is_error(cb: Bundle) -> None:
    words = [sp(0, 0, 11)] + [0] * 11
    words[11] = lp(0, 7, 2)
    words += [sp(0, 1, 1) | 3 << 2, 0, 0]  # tag: 3 elements of 2 words in 2 words
    with pytest.raises(DecodeError, match="overruns"):
        decode(cb.struct("Lists"), frame(words))


# ----------------------------------------------------------------------------- text


def test_text_without_nul_terminator_is_decode_error(cb: Bundle) -> None:
    with pytest.raises(DecodeError, match="NUL"):
        decode(cb.struct("Inner"), frame([sp(0, 1, 1), 0, lp(0, 2, 2), b"abcdefgh"]))


def test_invalid_utf8_text_is_decode_error(cb: Bundle) -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        decode(cb.struct("Inner"), frame([sp(0, 1, 1), 0, lp(0, 2, 3), b"\xff\xfe\0" + b"\0" * 5]))


def test_text_pointer_of_wrong_kind_is_decode_error(cb: Bundle) -> None:
    with pytest.raises(DecodeError, match="expected a list pointer"):
        decode(cb.struct("Inner"), frame([sp(0, 1, 1), 0, sp(0, 1, 0)]))


# ----------------------------------------------------------------------------- capabilities


def test_capability_pointer_decodes_to_index(cb: Bundle) -> None:
    assert decode(cb.struct("Caps"), frame([sp(0, 1, 6), 0, cp(42)] + [0] * 5))["w"] == 42


def test_non_capability_pointer_in_capability_field_is_decode_error(cb: Bundle) -> None:
    with pytest.raises(DecodeError, match="capability"):
        decode(cb.struct("Caps"), frame([sp(0, 1, 6), 0, sp(0, 1, 0)] + [0] * 5))
    with pytest.raises(DecodeError, match="other"):
        decode(cb.struct("Caps"), frame([sp(0, 1, 6), 0, 7] + [0] * 5))


# ----------------------------------------------------------------------------- segments


def test_multi_segment_encoding_uses_far_and_double_far_pointers(cb: Bundle) -> None:
    st = cb.interface("Console").method("write").params
    data = encode(st, {"data": bytes(range(64))}, segment_words=4)
    count = struct.unpack_from("<I", data)[0] + 1
    assert count >= 2
    header = (4 + 4 * count + 7) & ~7
    data_ptr = struct.unpack_from("<Q", data, header + 8)[0]
    assert data_ptr & 7 == 6  # a double-far pointer
    assert decode(st, data) == {"data": bytes(range(64))}
    small = encode(st, {"data": b"x"}, segment_words=2)
    assert struct.unpack_from("<I", small)[0] + 1 == 2
    assert struct.unpack_from("<Q", small, 16 + 8)[0] & 7 == 2  # a single far pointer
    assert decode(st, small) == {"data": b"x"}


def test_far_pointer_decodes_through_landing_pad(cb: Bundle) -> None:
    data = frame([fp(1, 1)], [0, sp(0, 1, 1), 5, lp(0, 2, 2), b"z\0" + b"\0" * 6])
    assert decode(cb.struct("Inner"), data) == {"a": 5, "b": "z", "c": -5}


def test_double_far_pointer_decodes_through_two_word_pad(cb: Bundle) -> None:
    data = frame([fp(1, 0, double=True)], [fp(2, 1), sp(0, 1, 0)], [0, 9 | 3 << 32])
    assert decode(cb.struct("Inner"), data) == {"a": 9, "b": "", "c": -8}  # 3 XOR -5


def test_far_pointer_to_missing_segment_is_decode_error(cb: Bundle) -> None:
    with pytest.raises(DecodeError, match="segment 3"):
        decode(cb.struct("Inner"), frame([fp(3, 0)]))


def test_far_pointer_landing_pad_out_of_bounds_is_decode_error(cb: Bundle) -> None:
    with pytest.raises(DecodeError, match="landing pad"):
        decode(cb.struct("Inner"), frame([fp(1, 5)], [0]))


def test_landing_pad_that_is_far_again_is_decode_error(cb: Bundle) -> None:
    with pytest.raises(DecodeError, match="landing pad"):
        decode(cb.struct("Inner"), frame([fp(1, 0)], [fp(0, 0)]))


def test_double_far_with_bad_pad_is_decode_error(cb: Bundle) -> None:
    with pytest.raises(DecodeError, match="double-far"):
        decode(cb.struct("Inner"), frame([fp(1, 0, double=True)], [sp(0, 0, 0), sp(0, 1, 0)]))


def test_struct_pointer_out_of_bounds_is_decode_error(cb: Bundle) -> None:
    with pytest.raises(DecodeError, match="out of bounds"):
        decode(cb.struct("Inner"), frame([sp(0, 1, 1)]))
    with pytest.raises(DecodeError, match="out of bounds"):
        decode(cb.struct("Inner"), frame([sp(-5, 0, 0)]))


def test_segment_table_errors(cb: Bundle) -> None:
    st = cb.struct("Inner")
    with pytest.raises(DecodeError, match="too short"):
        decode(st, b"\0\0\0")
    with pytest.raises(DecodeError, match="exceeds the limit"):
        decode(st, struct.pack("<II", 512, 1) + b"\0" * 4096)
    with pytest.raises(DecodeError, match="segment table"):
        decode(st, struct.pack("<II", 9, 1))
    with pytest.raises(DecodeError, match="truncated"):
        decode(st, struct.pack("<II", 0, 4) + b"\0" * 8)
    with pytest.raises(DecodeError, match="trailing"):
        decode(st, frame([0]) + b"\0" * 8)
    with pytest.raises(DecodeError, match="empty"):
        decode(st, struct.pack("<II", 0, 0))


def test_decode_of_non_bytes_is_decode_error(cb: Bundle) -> None:
    with pytest.raises(DecodeError):
        decode(cb.struct("Inner"), "not bytes")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- limits


def test_traversal_limit_defeats_amplification(cb: Bundle) -> None:
    # 2000 Text pointers that all point at the same 1 KiB text: 128 words, read 2000 times.
    n = 2000
    body = [sp(0, 0, 9)] + [0] * 8 + [lp(0, 6, n)]
    text_at = len(body) + n
    for _ in range(n):
        here = len(body)
        body.append(lp(text_at - here - 1, 2, 1024))
    body += text_words(b"a" * 1023)
    data = frame(body)
    with pytest.raises(DecodeError, match="traversal limit"):
        decode(cb.struct("Lists"), data)
    assert len(decode(cb.struct("Lists"), data, traversal_limit_words=1 << 20)["lt"]) == n


def test_void_list_is_charged_per_element(cb: Bundle) -> None:
    data = frame([sp(0, 0, 1), lp(0, 0, (1 << 29) - 1)])
    with pytest.raises(DecodeError, match="traversal limit"):
        decode(cb.struct("Lists"), data)


def test_nesting_limit_stops_deep_messages(cb: Bundle) -> None:
    st = cb.struct("Outer")
    value: Any = None
    for _ in range(70):
        value = {"self": value}
    data = encode(st, value)
    with pytest.raises(DecodeError, match="nest"):
        decode(st, data)
    assert decode(st, data, nesting_limit=100)["self"]["self"] is not None
    with pytest.raises(DecodeError, match="nest"):
        decode(st, encode(st, {"self": {"self": {}}}), nesting_limit=2)


def test_pointer_cycle_is_decode_error(cb: Bundle) -> None:
    # Outer.self (pointer 2) points back at the struct itself.
    data = frame([sp(0, 0, 4), 0, 0, sp(-3, 0, 4), 0])
    with pytest.raises(DecodeError):
        decode(cb.struct("Outer"), data)


# ----------------------------------------------------------------------------- interop details


def test_simple_struct_bytes_match_pycapnp(cb: Bundle, codec_schemas: Any) -> None:
    capos = codec_schemas.modules["capos.capnp"]
    msg = capos.TerminalSize.new_message(cols=80, rows=24)
    assert encode(cb.struct("TerminalSize"), {"cols": 80, "rows": 24}) == msg.to_bytes()


def test_pycapnp_reads_our_bytes(codec_schemas: Any) -> None:
    capos = codec_schemas.modules["capos.capnp"]
    b = Bundle.default()
    data = encode(b.struct("ProcessStatus"), {"pid": 7, "name": "sh", "state": {"killed": "oom"}})
    with capos.ProcessStatus.from_bytes(data) as r:
        assert (r.pid, r.name, r.state.which(), r.state.killed) == (7, "sh", "killed", "oom")


def test_multi_segment_encoding_refuses_more_segments_than_any_reader_accepts(
    cb: Bundle,
) -> None:
    st = cb.interface("Widget").method("poke").results
    many = {"ok": True, "echo": ["word"] * 600}  # each text needs a segment of its own
    with pytest.raises(EncodeError, match="more than the limit of 512; use a larger"):
        encode(st, many, segment_words=1)
    assert decode(st, encode(st, many, segment_words=64)) == many
