"""Decoding: bytes in standard stream framing to the codec's value model.

Every struct type gets a decoder plan, compiled on first use and cached on
the `StructType`: one closure per field with its offsets, `struct.Struct`
and default baked in, so decoding does no schema lookups.

Hardening follows the reference implementation: every pointer target is
bounds-checked against its own segment, each dereference charges its size
to a traversal budget (re-reads are charged again, which defeats
amplification through shared pointers), and struct/list pointers consume one
level of a nesting budget (which also stops cycles). Anything wrong is a
`DecodeError`; see its docstring.

Schema evolution: struct sections shorter than the schema's read as defaults,
longer ones are ignored. A List(Struct) may also be read from a list of
primitives or pointers (each element becomes a struct whose data or pointer
section is that element, as the spec allows); a bit list cannot be upgraded
and is a DecodeError, as in capnp C++. Primitive lists may be read from
lists of wider elements or of structs (the value at the start of each
element). An unknown union discriminant (a member added by a newer schema)
yields no key for that union.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Callable
from typing import Any

from kernel.codec.bundle import EnumType, Field, InterfaceType, ListType, StructType
from kernel.codec.errors import DecodeError
from kernel.codec.framing import parse_segment_table
from kernel.codec.pointers import ELEMENT_BITS, ELEMENT_SIZE_NAMES, KIND_NAMES

DEFAULT_TRAVERSAL_LIMIT_WORDS = 64 * 1024
DEFAULT_NESTING_LIMIT = 64

_u64 = struct.Struct("<Q").unpack_from
_u16 = struct.Struct("<H").unpack_from

# name -> (bits, struct format char, signed)
_NUMERIC = {
    "int8": (8, "b", True),
    "int16": (16, "h", True),
    "int32": (32, "i", True),
    "int64": (64, "q", True),
    "uint8": (8, "B", False),
    "uint16": (16, "H", False),
    "uint32": (32, "I", False),
    "uint64": (64, "Q", False),
    "float32": (32, "f", False),
    "float64": (64, "d", False),
}
_UNSIGNED_FMT = {8: "B", 16: "H", 32: "I", 64: "Q"}
_ES_FOR_BITS = {8: 2, 16: 3, 32: 4, 64: 5}

# A field reader: (msg, segment, data start, data bytes, pointer count, nesting) -> value.
FieldReader = Callable[["_Message", int, int, int, int, int], Any]
# A pointer reader: (msg, segment, pointer byte offset, nesting) -> value.
PointerReader = Callable[["_Message", int, int, int], Any]


class _Message:
    """The buffer being decoded, its segments and the remaining traversal budget."""

    __slots__ = ("budget", "buf", "ends", "nsegs", "starts")

    def __init__(self, buf: bytes, starts: list[int], ends: list[int], budget: int) -> None:
        self.buf = buf
        self.starts = starts
        self.ends = ends
        self.nsegs = len(starts)
        self.budget = budget

    def charge(self, words: int) -> None:
        self.budget -= words
        if self.budget < 0:
            raise _traversal_error()


def _traversal_error() -> DecodeError:
    return DecodeError(
        "traversal limit exceeded: the message reads more words than allowed "
        "(too large, or amplified through shared pointers)"
    )


def _far(msg: _Message, w: int) -> tuple[int, int, int]:
    """Follow a far pointer: (segment, content byte offset, pointer word with the type)."""
    buf = msg.buf
    seg = w >> 32
    if seg >= msg.nsegs:
        raise DecodeError(f"far pointer to segment {seg}, but the message has {msg.nsegs}")
    pad = msg.starts[seg] + ((w >> 3) & 0x1FFFFFFF) * 8
    if not w & 4:
        if pad + 8 > msg.ends[seg]:
            raise DecodeError(f"far pointer landing pad is outside segment {seg}")
        w2 = _u64(buf, pad)[0]
        kind = w2 & 3
        if kind > 1:
            raise DecodeError(f"far pointer landing pad is a {KIND_NAMES[kind]} pointer")
        off = (((w2 & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000) >> 2
        return seg, pad + 8 + off * 8, w2
    if pad + 16 > msg.ends[seg]:
        raise DecodeError(f"double-far landing pad is outside segment {seg}")
    w2, tag = struct.unpack_from("<QQ", buf, pad)
    if w2 & 7 != 2:
        raise DecodeError("double-far landing pad does not start with a single far pointer")
    seg2 = w2 >> 32
    if seg2 >= msg.nsegs:
        raise DecodeError(f"double-far pointer to segment {seg2}, but the message has {msg.nsegs}")
    if tag & 3 > 1:
        raise DecodeError(f"double-far tag is a {KIND_NAMES[tag & 3]} pointer")
    return seg2, msg.starts[seg2] + ((w2 >> 3) & 0x1FFFFFFF) * 8, tag


def _struct_at(msg: _Message, si: int, p: int, w: int) -> tuple[int, int, int, int]:
    """Resolve the non-null struct pointer `w` at `p`: (segment, data start, data bytes, ptrs)."""
    kind = w & 3
    if kind == 0:
        target = p + 8 + ((((w & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000) >> 2) * 8
    elif kind == 2:
        si, target, w = _far(msg, w)
        kind = w & 3
    if kind != 0:
        raise DecodeError(f"expected a struct pointer, found a {KIND_NAMES[kind]} pointer")
    dw = (w >> 32) & 0xFFFF
    pc = w >> 48
    size = dw + pc
    if target < msg.starts[si] or target + size * 8 > msg.ends[si]:
        raise DecodeError(f"struct pointer out of bounds of segment {si}")
    msg.budget -= size
    if msg.budget < 0:
        raise _traversal_error()
    return si, target, dw * 8, pc


def _list_at(msg: _Message, si: int, p: int, w: int) -> tuple[int, int, int, int, int, int]:
    """Resolve the non-null list pointer `w` at `p`.

    Returns (segment, first element byte offset, element size code, element
    count, composite data words, composite pointer count); for non-composite
    lists the last two are 0.
    """
    kind = w & 3
    if kind == 1:
        target = p + 8 + ((((w & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000) >> 2) * 8
    elif kind == 2:
        si, target, w = _far(msg, w)
        kind = w & 3
    if kind != 1:
        raise DecodeError(f"expected a list pointer, found a {KIND_NAMES[kind]} pointer")
    es = (w >> 32) & 7
    count = w >> 35
    start = msg.starts[si]
    end = msg.ends[si]
    if es == 7:
        words = count
        if target < start or target + 8 + words * 8 > end:
            raise DecodeError(f"composite list pointer out of bounds of segment {si}")
        tag = _u64(msg.buf, target)[0]
        if tag & 3:
            raise DecodeError("composite list tag is not a struct tag")
        n = (tag & 0xFFFFFFFF) >> 2
        dw = (tag >> 32) & 0xFFFF
        pc = tag >> 48
        if n * (dw + pc) > words:
            raise DecodeError(
                f"composite list of {n} elements of {dw + pc} words overruns its {words} words"
            )
        # Zero-sized elements cost nothing to send: charge one word each anyway.
        msg.charge(words + 1 if dw + pc else n + 1)
        return si, target + 8, 7, n, dw, pc
    nbytes = (count * ELEMENT_BITS[es] + 63) // 64 * 8
    if target < start or target + nbytes > end:
        raise DecodeError(f"list pointer out of bounds of segment {si}")
    msg.charge(nbytes // 8 if es else count)
    return si, target, es, count, 0, 0


def _nesting_error() -> DecodeError:
    return DecodeError("message is nested too deeply (nesting limit) or contains a cycle")


# ----------------------------------------------------------------------------- pointers


def _text_reader(msg: _Message, si: int, p: int, depth: int) -> str | None:
    w = _u64(msg.buf, p)[0]
    if not w:
        return None
    si, t, es, n, _dw, _pc = _list_at(msg, si, p, w)
    if es != 2:
        raise DecodeError(f"expected Text (a byte list), found a {ELEMENT_SIZE_NAMES[es]} list")
    if n == 0 or msg.buf[t + n - 1] != 0:
        raise DecodeError("Text is not NUL-terminated")
    try:
        return msg.buf[t : t + n - 1].decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"Text is not valid UTF-8: {e.reason} at byte {e.start}") from None


def _data_reader(msg: _Message, si: int, p: int, depth: int) -> bytes | None:
    w = _u64(msg.buf, p)[0]
    if not w:
        return None
    si, t, es, n, _dw, _pc = _list_at(msg, si, p, w)
    if es != 2:
        raise DecodeError(f"expected Data (a byte list), found a {ELEMENT_SIZE_NAMES[es]} list")
    return msg.buf[t : t + n]


def _cap_reader(msg: _Message, si: int, p: int, depth: int) -> int | None:
    w = _u64(msg.buf, p)[0]
    if not w:
        return None
    if w & 0xFFFFFFFF != 3:
        raise DecodeError(
            f"expected a capability pointer, found a {KIND_NAMES[w & 3]} pointer"
            if w & 3 != 3
            else "unknown 'other' pointer (not a capability)"
        )
    return w >> 32


def _any_reader(msg: _Message, si: int, p: int, depth: int) -> None:
    return None


def _struct_pointer_reader(st: StructType) -> PointerReader:
    def read(msg: _Message, si: int, p: int, depth: int) -> dict | None:
        w = _u64(msg.buf, p)[0]
        if not w:
            return None
        if depth <= 0:
            raise _nesting_error()
        si, d, db, pc = _struct_at(msg, si, p, w)
        dec = st._decoder or compile_decoder(st)
        return dec(msg, si, d, db, pc, depth - 1)

    return read


def _primitive_list(
    t: str, names: list[str] | None
) -> Callable[[_Message, int, int, int, int, int, int], list]:
    """Elements of a numeric/enum list, tolerating wider or struct elements."""
    bits, fmt, _signed = _NUMERIC["uint16" if names is not None else t]
    want_es = _ES_FOR_BITS[bits]
    size = bits // 8
    one = struct.Struct("<" + fmt).unpack_from

    def read(msg: _Message, si: int, t0: int, es: int, n: int, dw: int, pc: int) -> list:
        buf = msg.buf
        if es == want_es:
            out = list(struct.unpack_from(f"<{n}{fmt}", buf, t0))
        elif es == 7:
            if dw * 64 < bits:
                raise DecodeError("expected a list of primitives, found structs without data")
            stride = (dw + pc) * 8
            out = [one(buf, t0 + i * stride)[0] for i in range(n)]
        elif 2 <= es <= 5 and ELEMENT_BITS[es] >= bits:
            stride = ELEMENT_BITS[es] // 8
            out = [one(buf, t0 + i * stride)[0] for i in range(n)]
        else:
            raise DecodeError(
                f"expected a list of {size}-byte elements, found a {ELEMENT_SIZE_NAMES[es]} list"
            )
        if names is not None:
            limit = len(names)
            return [names[v] if v < limit else v for v in out]
        return out

    return read


def _bool_list(msg: _Message, si: int, t0: int, es: int, n: int, dw: int, pc: int) -> list:
    buf = msg.buf
    if es == 1:
        return [bool(buf[t0 + (i >> 3)] & (1 << (i & 7))) for i in range(n)]
    if 2 <= es <= 5:
        stride = ELEMENT_BITS[es] // 8
        return [bool(buf[t0 + i * stride] & 1) for i in range(n)]
    raise DecodeError(f"expected a Bool list, found a {ELEMENT_SIZE_NAMES[es]} list")


def _void_list(msg: _Message, si: int, t0: int, es: int, n: int, dw: int, pc: int) -> list:
    return [None] * n


def _pointer_list(elem: PointerReader):
    def read_d(
        msg: _Message, si: int, t0: int, es: int, n: int, dw: int, pc: int, depth: int
    ) -> list:
        if es == 6:
            return [elem(msg, si, t0 + i * 8, depth) for i in range(n)]
        if es == 7:
            if pc < 1:
                raise DecodeError("expected a list of pointers, found structs without pointers")
            stride = (dw + pc) * 8
            base = t0 + dw * 8
            return [elem(msg, si, base + i * stride, depth) for i in range(n)]
        raise DecodeError(f"expected a list of pointers, found a {ELEMENT_SIZE_NAMES[es]} list")

    return read_d


def _struct_list(st: StructType):
    def read(
        msg: _Message, si: int, t0: int, es: int, n: int, dw: int, pc: int, depth: int
    ) -> list:
        dec = st._decoder or compile_decoder(st)
        if es == 7:
            db = dw * 8
            stride = db + pc * 8
        elif es == 6:
            db, pc, stride = 0, 1, 8
        elif es == 0:
            db, pc, stride = 0, 0, 0
        elif es >= 2:
            db = stride = ELEMENT_BITS[es] // 8
            pc = 0
        else:
            raise DecodeError("expected a struct list, found a bit list (cannot be upgraded)")
        return [dec(msg, si, t0 + i * stride, db, pc, depth) for i in range(n)]

    return read


def _list_pointer_reader(lt: ListType) -> PointerReader:
    elem = lt.element
    needs_depth = False
    if isinstance(elem, StructType):
        body: Any = _struct_list(elem)
        needs_depth = True
    elif isinstance(elem, EnumType):
        body = _primitive_list("uint16", elem.enumerants)
    elif elem == "bool":
        body = _bool_list
    elif elem == "void":
        body = _void_list
    elif isinstance(elem, str) and elem in _NUMERIC:
        body = _primitive_list(elem, None)
    else:
        body = _pointer_list(pointer_reader(elem))
        needs_depth = True

    if needs_depth:

        def read(msg: _Message, si: int, p: int, depth: int) -> list | None:
            w = _u64(msg.buf, p)[0]
            if not w:
                return None
            if depth <= 0:
                raise _nesting_error()
            si, t0, es, n, dw, pc = _list_at(msg, si, p, w)
            return body(msg, si, t0, es, n, dw, pc, depth - 1)

    else:

        def read(msg: _Message, si: int, p: int, depth: int) -> list | None:
            w = _u64(msg.buf, p)[0]
            if not w:
                return None
            if depth <= 0:
                raise _nesting_error()
            si, t0, es, n, dw, pc = _list_at(msg, si, p, w)
            return body(msg, si, t0, es, n, dw, pc)

    return read


def pointer_reader(t: Any) -> PointerReader:
    """A reader for a pointer-typed value; it returns None for a null pointer."""
    if t == "text":
        return _text_reader
    if t == "data":
        return _data_reader
    if t == "capability" or isinstance(t, InterfaceType):
        return _cap_reader
    if t == "anyPointer":
        return _any_reader
    if isinstance(t, StructType):
        return _struct_pointer_reader(t)
    if isinstance(t, ListType):
        return _list_pointer_reader(t)
    raise TypeError(f"not a pointer type: {t!r}")


_NULL_VALUES = {"text": "", "data": b""}


def _null_value(t: Any) -> Any:
    if isinstance(t, ListType):
        return []
    if isinstance(t, str):
        return _NULL_VALUES.get(t)
    return None


# ----------------------------------------------------------------------------- fields


def _data_field_reader(f: Field) -> FieldReader:
    t = f.type
    if t == "void":
        return lambda msg, si, d, db, pc, depth: None
    if t == "bool":
        byte = f.offset >> 3
        mask = 1 << (f.offset & 7)
        dflt = bool(f.default)

        def read_bool(msg, si, d, db, pc, depth):
            if byte < db:
                return bool(msg.buf[d + byte] & mask) != dflt
            return dflt

        return read_bool
    if isinstance(t, EnumType):
        names = t.enumerants
        limit = len(names)
        dflt_ordinal = int(f.default or 0)
        off = f.offset * 2
        end = off + 2

        def read_enum(msg, si, d, db, pc, depth):
            v = _u16(msg.buf, d + off)[0] ^ dflt_ordinal if end <= db else dflt_ordinal
            return names[v] if v < limit else v

        return read_enum
    assert isinstance(t, str), f"not a data field type: {t!r}"
    bits, fmt, signed = _NUMERIC[t]
    size = bits // 8
    off = f.offset * size
    end = off + size
    default = f.default
    if fmt in "fd":
        dbits = struct.unpack("<" + _UNSIGNED_FMT[bits], struct.pack("<" + fmt, default))[0]
    else:
        dbits = default & ((1 << bits) - 1)
    if dbits == 0:
        unpack = struct.Struct("<" + fmt).unpack_from

        def read_plain(msg, si, d, db, pc, depth):
            if end <= db:
                return unpack(msg.buf, d + off)[0]
            return default

        return read_plain
    raw = struct.Struct("<" + _UNSIGNED_FMT[bits]).unpack_from
    if fmt in "fd":
        conv = struct.Struct("<" + _UNSIGNED_FMT[bits])
        fl = struct.Struct("<" + fmt)

        def read_float_xor(msg, si, d, db, pc, depth):
            if end <= db:
                return fl.unpack(conv.pack(raw(msg.buf, d + off)[0] ^ dbits))[0]
            return default

        return read_float_xor
    half = 1 << (bits - 1)
    full = 1 << bits

    def read_int_xor(msg, si, d, db, pc, depth):
        if end <= db:
            v = raw(msg.buf, d + off)[0] ^ dbits
            if signed and v >= half:
                v -= full
            return v
        return default

    return read_int_xor


def _pointer_field_reader(f: Field) -> FieldReader:
    idx = f.offset
    read = pointer_reader(f.type)
    default = f.default if f.default is not None else _null_value(f.type)
    if isinstance(default, (dict, list)) and default:
        deep = copy.deepcopy

        def read_mutable_default(msg, si, d, db, pc, depth):
            if idx < pc:
                v = read(msg, si, d + db + idx * 8, depth)
                if v is not None:
                    return v
            return deep(default)

        return read_mutable_default
    if isinstance(default, list):

        def read_list(msg, si, d, db, pc, depth):
            if idx < pc:
                v = read(msg, si, d + db + idx * 8, depth)
                if v is not None:
                    return v
            return []

        return read_list

    def read_field(msg, si, d, db, pc, depth):
        if idx < pc:
            v = read(msg, si, d + db + idx * 8, depth)
            if v is not None:
                return v
        return default

    return read_field


def _group_reader(group: StructType) -> FieldReader:
    def read(msg, si, d, db, pc, depth):
        dec = group._decoder or compile_decoder(group)
        return dec(msg, si, d, db, pc, depth)

    return read


def _field_reader(f: Field) -> FieldReader:
    if f.group is not None:
        return _group_reader(f.group)
    t = f.type
    if isinstance(t, (ListType, StructType, InterfaceType)) or t in (
        "text",
        "data",
        "capability",
        "anyPointer",
    ):
        return _pointer_field_reader(f)
    return _data_field_reader(f)


def compile_decoder(st: StructType) -> FieldReader:
    """Build (and cache on `st`) the decoder for one struct or group."""
    plain = tuple((f.name, _field_reader(f)) for f in st.fields if f.discriminant is None)
    members = {
        f.discriminant: (f.name, _field_reader(f)) for f in st.fields if f.discriminant is not None
    }
    disc_off = st.discriminant_offset * 2
    disc_end = disc_off + 2

    if not members:

        def decode_struct(msg, si, d, db, pc, depth):
            return {name: rd(msg, si, d, db, pc, depth) for name, rd in plain}

    else:

        def decode_struct(msg, si, d, db, pc, depth):
            out = {name: rd(msg, si, d, db, pc, depth) for name, rd in plain}
            disc = _u16(msg.buf, d + disc_off)[0] if disc_end <= db else 0
            m = members.get(disc)
            if m is not None:
                out[m[0]] = m[1](msg, si, d, db, pc, depth)
            return out

    st._decoder = decode_struct
    return decode_struct


def decode(
    st: StructType,
    data: bytes | bytearray | memoryview,
    traversal_limit_words: int = DEFAULT_TRAVERSAL_LIMIT_WORDS,
    nesting_limit: int = DEFAULT_NESTING_LIMIT,
) -> dict:
    """Decode a framed message whose root is `st`; raises DecodeError only."""
    try:
        buf = data if type(data) is bytes else bytes(data)
        starts, ends = parse_segment_table(buf)
        msg = _Message(buf, starts, ends, traversal_limit_words)
        dec = st._decoder or compile_decoder(st)
        root = starts[0]
        w = _u64(buf, root)[0]
        if not w:
            return dec(msg, 0, root, 0, 0, nesting_limit)
        if nesting_limit <= 0:
            raise _nesting_error()
        si, d, db, pc = _struct_at(msg, 0, root, w)
        return dec(msg, si, d, db, pc, nesting_limit - 1)
    except DecodeError:
        raise
    except RecursionError:
        raise DecodeError("message nesting exceeds the interpreter's recursion limit") from None
    except Exception as e:  # the contract: nothing but DecodeError escapes
        raise DecodeError(f"malformed message ({type(e).__name__}: {e})") from e
