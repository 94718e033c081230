"""Encoding: the codec's value model to a message in standard stream framing.

Like the reader, each struct gets an encoder plan compiled on first use and
cached on its `StructType`: a dict from field name to a writer closure with
offsets, formats and defaults baked in. Objects are laid out depth-first
after their parent, the way capnp's builder does.

By default the message is one segment that grows as needed, written straight
after its 8-byte segment table in one bytearray. With `segment_words=N` each
segment holds at most N words (an object larger than that gets a segment of
its own), so pointers across segments become far pointers, and double-far
pointers where the target segment has no room for a landing pad: this exists
to exercise readers (ours and others) on multi-segment input.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from kernel.codec.bundle import EnumType, Field, InterfaceType, ListType, StructType
from kernel.codec.errors import EncodeError
from kernel.codec.framing import frame_segments
from kernel.codec.pointers import MAX_LIST_COUNT

_Q = struct.Struct("<Q")
_pack_q = _Q.pack_into
_pack_h = struct.Struct("<H").pack_into
_pack_ii = struct.Struct("<II").pack_into

# name -> (bits, format char, min, max)
_INTS = {
    "int8": (8, "b", -(1 << 7), (1 << 7) - 1),
    "int16": (16, "h", -(1 << 15), (1 << 15) - 1),
    "int32": (32, "i", -(1 << 31), (1 << 31) - 1),
    "int64": (64, "q", -(1 << 63), (1 << 63) - 1),
    "uint8": (8, "B", 0, (1 << 8) - 1),
    "uint16": (16, "H", 0, (1 << 16) - 1),
    "uint32": (32, "I", 0, (1 << 32) - 1),
    "uint64": (64, "Q", 0, (1 << 64) - 1),
}
_FLOATS = {"float32": (32, "f", "I"), "float64": (64, "d", "Q")}
_ES_FOR_BITS = {1: 1, 8: 2, 16: 3, 32: 4, 64: 5}

_ZERO_STRUCT = 0xFFFFFFFC  # a zero-sized struct points at itself (offset -1): not null


class _Builder:
    """One growing segment, stored right after its 8-byte segment table."""

    __slots__ = ("buf",)

    def __init__(self, root_words: int = 0, root_tag: int = 0) -> None:
        """Segment table and root pointer, and the root struct already placed after them."""
        self.buf = bytearray(16 + root_words * 8)
        if root_words:
            _pack_q(self.buf, 8, root_tag)  # offset 0: the struct follows the pointer

    def place(self, si: int, p: int, n: int, tag: int) -> tuple[bytearray, int, int]:
        """Allocate n words for the object the pointer at p refers to; write that pointer."""
        buf = self.buf
        t = len(buf)
        buf += bytes(n * 8)
        _pack_q(buf, p, tag | ((((t - p - 8) >> 3) & 0x3FFFFFFF) << 2))
        return buf, 0, t

    def finish(self) -> bytes:
        _pack_ii(self.buf, 0, 0, (len(self.buf) - 8) >> 3)
        return bytes(self.buf)


class _SegmentedBuilder:
    """Segments of at most `limit` words each, joined by far/double-far pointers."""

    __slots__ = ("caps", "limit", "segs")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.segs = [bytearray(8)]  # the root pointer
        self.caps = [max(limit, 1) * 8]

    def _room(self, i: int, nbytes: int) -> bool:
        return self.caps[i] - len(self.segs[i]) >= nbytes

    def _new(self, words: int) -> int:
        self.segs.append(bytearray())
        self.caps.append(words * 8)
        return len(self.segs) - 1

    def place(self, si: int, p: int, n: int, tag: int) -> tuple[bytearray, int, int]:
        nb = n * 8
        if self._room(si, nb):
            seg = self.segs[si]
            t = len(seg)
            seg.extend(bytes(nb))
            _pack_q(seg, p, tag | ((((t - p - 8) >> 3) & 0x3FFFFFFF) << 2))
            return seg, si, t
        last = len(self.segs) - 1
        if n + 1 <= self.limit:
            # Single far: a landing pad right in front of the object.
            ti = last if self._room(last, nb + 8) else self._new(self.limit)
            seg = self.segs[ti]
            pad = len(seg)
            seg.extend(bytes(nb + 8))
            _pack_q(seg, pad, tag)  # offset 0: the object follows the pad
            _pack_q(self.segs[si], p, 2 | (pad >> 3) << 3 | ti << 32)
            return seg, ti, pad + 8
        # The object fills a segment of its own: double far through a two-word pad elsewhere.
        ti = self._new(n)
        seg = self.segs[ti]
        seg.extend(bytes(nb))
        pi = next(
            (i for i in range(len(self.segs) - 1) if i != ti and self._room(i, 16)),
            None,
        )
        if pi is None:
            pi = self._new(max(self.limit, 2))
        padseg = self.segs[pi]
        pad = len(padseg)
        padseg.extend(bytes(16))
        _pack_q(padseg, pad, 2 | ti << 32)  # far to word 0 of segment ti
        _pack_q(padseg, pad + 8, tag)
        _pack_q(self.segs[si], p, 2 | 4 | (pad >> 3) << 3 | pi << 32)
        return seg, ti, 0

    def finish(self) -> bytes:
        return frame_segments(self.segs)


# A field writer: (builder, segment bytes, segment index, data start, value) -> None.
FieldWriter = Callable[[Any, bytearray, int, int, Any], None]
# A pointer writer: (builder, segment bytes, segment index, pointer offset, value) -> None.
PointerWriter = Callable[[Any, bytearray, int, int, Any], None]


def _type_error(expected: str, v: Any) -> EncodeError:
    return EncodeError(f"expected {expected}, got {type(v).__name__} {v!r:.60}")


def _is_int(v: Any) -> bool:
    return type(v) is int or (isinstance(v, int) and not isinstance(v, bool))


# ----------------------------------------------------------------------------- pointers


def _write_text(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
    if v is None:
        return
    if type(v) is not str:
        raise _type_error("str for Text", v)
    try:
        raw = v.encode("utf-8")
    except UnicodeEncodeError as e:
        raise EncodeError(f"Text is not encodable as UTF-8: {e.reason}") from None
    n = len(raw) + 1
    if n > MAX_LIST_COUNT:
        raise EncodeError("Text too long")
    seg, _ti, t = b.place(si, p, (n + 7) >> 3, 1 | 2 << 32 | n << 35)
    seg[t : t + n - 1] = raw


def _write_data(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
    if v is None:
        return
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise _type_error("bytes for Data", v)
    n = len(v) if not isinstance(v, memoryview) else v.nbytes
    if n > MAX_LIST_COUNT:
        raise EncodeError("Data too long")
    seg, _ti, t = b.place(si, p, (n + 7) >> 3, 1 | 2 << 32 | n << 35)
    seg[t : t + n] = v


def _write_cap(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
    if v is None:
        return
    if not _is_int(v) or not 0 <= v <= 0xFFFFFFFF:
        raise _type_error("a capability table index (int 0..2**32-1) or None", v)
    _pack_q(ba, p, 3 | v << 32)


def _write_any(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
    if v is not None:
        raise EncodeError("AnyPointer fields can only be encoded as None")


def _struct_pointer_writer(st: StructType) -> PointerWriter:
    dw = st.data_words
    pc = st.pointers
    words = dw + pc
    tag = dw << 32 | pc << 48

    def write(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
        if v is None:
            return
        enc = st._encoder or compile_encoder(st)
        if not words:
            _pack_q(ba, p, _ZERO_STRUCT)
            enc(b, ba, si, p, v)
            return
        seg, ti, t = b.place(si, p, words, tag)
        enc(b, seg, ti, t, v)

    return write


def _check_list(v: Any) -> None:
    if not isinstance(v, (list, tuple)):
        raise _type_error("a list", v)
    if len(v) > MAX_LIST_COUNT:
        raise EncodeError(f"list of {len(v)} elements is too long")


def _locate_bad(v: list, check: Callable[[Any], bool], what: str) -> EncodeError:
    for i, e in enumerate(v):
        if not check(e):
            return EncodeError(f"expected {what}, got {type(e).__name__} {e!r:.60}", [f"[{i}]"])
    return EncodeError(f"expected {what}")


def _int_list_writer(t: str) -> PointerWriter:
    bits, fmt, lo, hi = _INTS[t]
    es = _ES_FOR_BITS[bits]

    def ok(e: Any) -> bool:
        return _is_int(e) and lo <= e <= hi

    def write(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
        if v is None:
            return
        _check_list(v)
        n = len(v)
        seg, _ti, t0 = b.place(si, p, (n * bits + 63) >> 6, 1 | es << 32 | n << 35)
        try:
            struct.pack_into(f"<{n}{fmt}", seg, t0, *v)
        except struct.error:
            raise _locate_bad(v, ok, f"{t} in range {lo}..{hi}") from None
        if any(type(e) is bool for e in v):
            raise _locate_bad(v, ok, f"{t} in range {lo}..{hi}")

    return write


def _float_list_writer(t: str) -> PointerWriter:
    bits, fmt, _ufmt = _FLOATS[t]
    es = _ES_FOR_BITS[bits]

    def ok(e: Any) -> bool:
        if type(e) is bool or not isinstance(e, (int, float)):
            return False
        try:
            struct.pack("<" + fmt, e)
        except (OverflowError, struct.error):
            return False
        return True

    def write(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
        if v is None:
            return
        _check_list(v)
        n = len(v)
        seg, _ti, t0 = b.place(si, p, (n * bits + 63) >> 6, 1 | es << 32 | n << 35)
        try:
            struct.pack_into(f"<{n}{fmt}", seg, t0, *v)
        except (struct.error, OverflowError):
            raise _locate_bad(v, ok, f"a {t}") from None
        if any(type(e) is bool for e in v):
            raise _locate_bad(v, ok, f"a {t}")

    return write


def _enum_list_writer(et: EnumType) -> PointerWriter:
    ordinals = et.ordinals

    def ordinal(e: Any) -> int:
        o = ordinals.get(e) if type(e) is str else None
        if o is not None:
            return o
        if _is_int(e) and 0 <= e <= 0xFFFF:
            return e
        raise EncodeError(f"expected an enumerant of {et.name} {list(ordinals)}, got {e!r:.60}")

    def write(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
        if v is None:
            return
        _check_list(v)
        n = len(v)
        out = []
        for i, e in enumerate(v):
            try:
                out.append(ordinal(e))
            except EncodeError as err:
                err.path.insert(0, f"[{i}]")
                raise
        seg, _ti, t0 = b.place(si, p, (n * 16 + 63) >> 6, 1 | 3 << 32 | n << 35)
        struct.pack_into(f"<{n}H", seg, t0, *out)

    return write


def _bool_list_writer(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
    if v is None:
        return
    _check_list(v)
    n = len(v)
    seg, _ti, t0 = b.place(si, p, (n + 63) >> 6, 1 | 1 << 32 | n << 35)
    for i, e in enumerate(v):
        if e is True:
            seg[t0 + (i >> 3)] |= 1 << (i & 7)
        elif e is not False:
            raise EncodeError(f"expected bool, got {type(e).__name__} {e!r:.60}", [f"[{i}]"])


def _void_list_writer(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
    if v is None:
        return
    _check_list(v)
    for i, e in enumerate(v):
        if e is not None:
            raise EncodeError(f"expected None for Void, got {e!r:.60}", [f"[{i}]"])
    b.place(si, p, 0, 1 | len(v) << 35)


def _pointer_list_writer(elem: PointerWriter) -> PointerWriter:
    def write(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
        if v is None:
            return
        _check_list(v)
        n = len(v)
        seg, ti, t0 = b.place(si, p, n, 1 | 6 << 32 | n << 35)
        for i, e in enumerate(v):
            try:
                elem(b, seg, ti, t0 + i * 8, e)
            except EncodeError as err:
                err.path.insert(0, f"[{i}]")
                raise

    return write


def _struct_list_writer(st: StructType) -> PointerWriter:
    dw = st.data_words
    pc = st.pointers
    stride = (dw + pc) * 8
    tag_sizes = dw << 32 | pc << 48

    def write(b: Any, ba: bytearray, si: int, p: int, v: Any) -> None:
        if v is None:
            return
        _check_list(v)
        enc = st._encoder or compile_encoder(st)
        n = len(v)
        words = n * (dw + pc)
        if words > MAX_LIST_COUNT:
            raise EncodeError(f"struct list of {n} elements is too large")
        seg, ti, t0 = b.place(si, p, words + 1, 1 | 7 << 32 | words << 35)
        _pack_q(seg, t0, n << 2 | tag_sizes)
        base = t0 + 8
        for i, e in enumerate(v):
            try:
                if e is None:
                    raise EncodeError("a struct list element cannot be None")
                enc(b, seg, ti, base + i * stride, e)
            except EncodeError as err:
                err.path.insert(0, f"[{i}]")
                raise

    return write


def pointer_writer(t: Any) -> PointerWriter:
    """A writer for a pointer-typed value; None writes nothing (a null pointer)."""
    if t == "text":
        return _write_text
    if t == "data":
        return _write_data
    if t == "capability" or isinstance(t, InterfaceType):
        return _write_cap
    if t == "anyPointer":
        return _write_any
    if isinstance(t, StructType):
        return _struct_pointer_writer(t)
    if isinstance(t, ListType):
        e = t.element
        if isinstance(e, StructType):
            return _struct_list_writer(e)
        if isinstance(e, EnumType):
            return _enum_list_writer(e)
        if e == "bool":
            return _bool_list_writer
        if e == "void":
            return _void_list_writer
        if e in _INTS:
            return _int_list_writer(e)
        if e in _FLOATS:
            return _float_list_writer(e)
        return _pointer_list_writer(pointer_writer(e))
    raise TypeError(f"not a pointer type: {t!r}")


# ----------------------------------------------------------------------------- fields


def _data_field_writer(f: Field) -> FieldWriter:
    t = f.type
    if t == "void":

        def write_void(b, ba, si, d, v):
            if v is not None:
                raise _type_error("None for Void", v)

        return write_void
    if t == "bool":
        byte = f.offset >> 3
        mask = 1 << (f.offset & 7)
        dflt = bool(f.default)

        def write_bool(b, ba, si, d, v):
            if v is True or v is False:
                if v is not dflt:
                    ba[d + byte] |= mask
                else:
                    ba[d + byte] &= ~mask & 0xFF
                return
            raise _type_error("bool", v)

        return write_bool
    if isinstance(t, EnumType):
        ordinals = t.ordinals
        off = f.offset * 2
        dflt_ordinal = int(f.default or 0)

        def write_enum(b, ba, si, d, v):
            o = ordinals.get(v) if type(v) is str else None
            if o is None:
                if _is_int(v) and 0 <= v <= 0xFFFF:
                    o = v
                else:
                    raise EncodeError(
                        f"expected an enumerant of {t.name} {list(ordinals)}, got {v!r:.60}"
                    )
            _pack_h(ba, d + off, o ^ dflt_ordinal)

        return write_enum
    if t in _FLOATS:
        bits, fmt, ufmt = _FLOATS[t]
        off = f.offset * (bits // 8)
        fl = struct.Struct("<" + fmt)
        uf = struct.Struct("<" + ufmt)
        dbits = uf.unpack(fl.pack(f.default))[0]
        pack_f = fl.pack_into

        def check(v):
            if type(v) is bool or not isinstance(v, (int, float)):
                raise _type_error(t, v)

        if not dbits:

            def write_float(b, ba, si, d, v):
                check(v)
                try:
                    pack_f(ba, d + off, v)
                except OverflowError:
                    raise EncodeError(f"{v!r} is out of range for {t}") from None

            return write_float
        pack_u = uf.pack_into
        unpack_u = uf.unpack

        def write_float_xor(b, ba, si, d, v):
            check(v)
            try:
                raw = unpack_u(fl.pack(v))[0]
            except OverflowError:
                raise EncodeError(f"{v!r} is out of range for {t}") from None
            pack_u(ba, d + off, raw ^ dbits)

        return write_float_xor
    assert isinstance(t, str), f"not a data field type: {t!r}"
    bits, _fmt, lo, hi = _INTS[t]
    off = f.offset * (bits // 8)
    mask = (1 << bits) - 1
    dbits = int(f.default) & mask
    pack_u = struct.Struct("<" + _INTS["uint" + str(bits)][1]).pack_into

    def write_int(b, ba, si, d, v):
        if type(v) is not int and not _is_int(v):
            raise _type_error(f"int for {t}", v)
        if not lo <= v <= hi:
            raise EncodeError(f"{v} is out of range for {t} ({lo}..{hi})")
        pack_u(ba, d + off, (v & mask) ^ dbits)

    return write_int


def _pointer_field_writer(f: Field, ptr_base: int) -> FieldWriter:
    pos = ptr_base + f.offset * 8
    write = pointer_writer(f.type)

    def write_field(b, ba, si, d, v):
        if v is not None:
            write(b, ba, si, d + pos, v)

    return write_field


def _group_writer(group: StructType) -> FieldWriter:
    def write(b, ba, si, d, v):
        enc = group._encoder or compile_encoder(group)
        enc(b, ba, si, d, v)

    return write


def _field_writer(f: Field, ptr_base: int) -> FieldWriter:
    if f.group is not None:
        return _group_writer(f.group)
    t = f.type
    if isinstance(t, (ListType, StructType, InterfaceType)) or t in (
        "text",
        "data",
        "capability",
        "anyPointer",
    ):
        return _pointer_field_writer(f, ptr_base)
    return _data_field_writer(f)


def compile_encoder(st: StructType) -> FieldWriter:
    """Build (and cache on `st`) the encoder for one struct or group."""
    ptr_base = st.data_words * 8
    writers: dict[str, tuple[FieldWriter, int | None]] = {}
    for f in st.fields:
        writers[f.name] = (_field_writer(f, ptr_base), f.discriminant)
    disc_pos = st.discriminant_offset * 2
    name = st.name

    def encode_struct(b: Any, ba: bytearray, si: int, d: int, value: Any) -> None:
        if type(value) is not dict and not isinstance(value, dict):
            raise _type_error(f"a dict for {name}", value)
        chosen = None
        for key, v in value.items():
            ent = writers.get(key)
            if ent is None:
                raise EncodeError(f"unknown field (not in {name})", [str(key)])
            fn, disc = ent
            if disc is not None:
                if chosen is not None:
                    raise EncodeError(
                        f"more than one member of the same union: {chosen!r} and {key!r}",
                        [key],
                    )
                chosen = key
                _pack_h(ba, d + disc_pos, disc)
            try:
                fn(b, ba, si, d, v)
            except EncodeError as err:
                err.path.insert(0, key)
                raise

    st._encoder = encode_struct
    return encode_struct


def encode(st: StructType, value: dict, segment_words: int | None = None) -> bytes:
    """Encode `value` as a message whose root is `st`; raises EncodeError for bad values."""
    enc = st._encoder or compile_encoder(st)
    words = st.data_words + st.pointers
    tag = st.data_words << 32 | st.pointers << 48
    if segment_words is None:
        if words:  # the common case: one segment, the root struct right after its pointer
            b: Any = _Builder(words, tag)
            enc(b, b.buf, 0, 16, value)
            return b.finish()
        b = _Builder()
        root = 8
    else:
        if not _is_int(segment_words) or segment_words < 1:
            raise EncodeError("segment_words must be a positive int")
        b = _SegmentedBuilder(segment_words)
        root = 0
    if words:
        seg, ti, t = b.place(0, root, words, tag)
        enc(b, seg, ti, t, value)
    else:
        seg = b.buf if segment_words is None else b.segs[0]
        _pack_q(seg, root, _ZERO_STRUCT)
        enc(b, seg, 0, root, value)
    return b.finish()
