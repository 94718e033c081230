"""Fuzzing decode: hostile bytes must only ever raise DecodeError.

Valid messages (from a seeded random value generator) are mutated with bit
flips, truncation, inflated segment tables and rewritten pointers; random
bytes come from hypothesis. A DecodeError that wraps another exception means
decode's last-resort net caught something no explicit check handled, so
that fails the test too.
"""

from __future__ import annotations

import random
import struct
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.codec import (
    Bundle,
    DecodeError,
    EnumType,
    InterfaceType,
    ListType,
    StructType,
    decode,
    encode,
)

TIME_BUDGET_S = 4.0
_INT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
_UINT_BITS = {"uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64}


def rand_value(t: Any, rng: random.Random, depth: int = 0) -> Any:
    """A random value in the codec's value model (unions: one member, sometimes none)."""
    if isinstance(t, StructType):
        out: dict[str, Any] = {}
        members = [f for f in t.fields if f.discriminant is not None]
        chosen = rng.choice(members) if members and rng.random() < 0.9 else None
        for f in t.fields:
            if f.discriminant is not None and f is not chosen:
                continue
            if rng.random() < 0.2:
                continue  # missing: default
            out[f.name] = rand_value(f.group or f.type, rng, depth + 1)
        return out
    if isinstance(t, ListType):
        if depth > 4:
            return []
        return [rand_value(t.element, rng, depth + 1) for _ in range(rng.randrange(4))]
    if isinstance(t, EnumType):
        return rng.choice(t.enumerants)
    if isinstance(t, InterfaceType) or t == "capability":
        return rng.choice([None, rng.randrange(8)])
    if t in _INT_BITS:
        b = _INT_BITS[t]
        return rng.randrange(-(1 << (b - 1)), 1 << (b - 1))
    if t in _UINT_BITS:
        return rng.randrange(1 << _UINT_BITS[t])
    if t in ("float32", "float64"):
        return rng.choice([0.0, -1.5, 3.25, float("inf")])
    if t == "bool":
        return rng.random() < 0.5
    if t == "text":
        return rng.choice(["", "x", "héllo", "z" * rng.randrange(30)])
    if t == "data":
        return rng.randbytes(rng.randrange(20))
    return None  # void, anyPointer


def rand_pointer(rng: random.Random) -> int:
    kind = rng.randrange(4)
    off = rng.choice([0, 1, -1, 2, -2, rng.randrange(-(1 << 29), 1 << 29)]) & 0x3FFFFFFF
    hi = rng.choice([0, 1, 2, rng.randrange(1 << 32), 0xFFFFFFFF, 7 | rng.randrange(1 << 29) << 3])
    return kind | off << 2 | hi << 32


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    op = rng.randrange(8)
    if op == 0:
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(b) * 8)
            b[i >> 3] ^= 1 << (i & 7)
    elif op == 1:
        del b[rng.randrange(len(b)) :]
    elif op == 2:  # inflate or deflate a segment size
        count = struct.unpack_from("<I", b)[0] + 1
        if count <= 512 and len(b) >= 4 + 4 * count:
            i = rng.randrange(count)
            struct.pack_into("<I", b, 4 + 4 * i, rng.choice([0, 1, 0xFFFFFFFF, rng.randrange(64)]))
    elif op == 3:  # segment count
        struct.pack_into("<I", b, 0, rng.choice([1, 2, 511, 512, 0xFFFFFFFF]))
    elif op in (4, 5):  # rewrite a word with a random pointer
        if len(b) >= 16:
            i = rng.randrange(1, len(b) // 8)
            struct.pack_into("<Q", b, i * 8, rand_pointer(rng))
    elif op == 6:  # copy one word over another (shared or cyclic pointers)
        if len(b) >= 24:
            src = rng.randrange(1, len(b) // 8)
            dst = rng.randrange(1, len(b) // 8)
            b[dst * 8 : dst * 8 + 8] = b[src * 8 : src * 8 + 8]
    else:
        b += rng.randbytes(rng.randrange(1, 24))
    return bytes(b)


def assert_only_decode_error(st_: StructType, data: bytes, **limits: int) -> None:
    try:
        decode(st_, data, **limits)
    except DecodeError as e:
        assert e.__cause__ is None, f"unchecked failure: {e!r} for {data.hex()}"


@pytest.fixture(scope="module")
def all_structs(codec_schemas: Any) -> list[StructType]:
    bundle: Bundle = codec_schemas.bundle
    return sorted(bundle.structs, key=lambda s: s.display_name)


def test_mutated_valid_messages_raise_only_decode_error(all_structs: list[StructType]) -> None:
    rng = random.Random(0xC0DEC)
    deadline = time.monotonic() + TIME_BUDGET_S
    decoded = 0
    rounds = 0
    while rounds < 400:
        rounds += 1
        for s in all_structs:
            value = rand_value(s, rng)
            seg = rng.choice([None, None, 1, 2, 3, 5])
            data = encode(s, value, segment_words=seg)
            assert decode(s, data) is not None
            for _ in range(8):
                mutated = mutate(data, rng)
                for _ in range(rng.randrange(3)):
                    mutated = mutate(mutated, rng) if len(mutated) > 8 else mutated
                # Decode as the right struct and as an arbitrary other one.
                assert_only_decode_error(s, mutated)
                assert_only_decode_error(rng.choice(all_structs), mutated, nesting_limit=8)
                decoded += 2
        if time.monotonic() > deadline:
            break
    assert decoded > 1000 and rounds >= 2


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=256), which=st.integers(0, 1000))
def test_random_bytes_raise_only_decode_error(codec_schemas: Any, raw: bytes, which: int) -> None:
    structs = sorted(codec_schemas.bundle.structs, key=lambda s: s.display_name)
    assert_only_decode_error(structs[which % len(structs)], raw)


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 8), min_size=1, max_size=4),
    words=st.lists(st.integers(0, 2**64 - 1) | st.builds(rand_pointer, st.randoms()), max_size=24),
    which=st.integers(0, 1000),
)
def test_random_words_in_a_valid_frame_raise_only_decode_error(
    codec_schemas: Any, sizes: list[int], words: list[int], which: int
) -> None:
    """Past the segment table, so the pointer-following code is what gets fuzzed."""
    structs = sorted(codec_schemas.bundle.structs, key=lambda s: s.display_name)
    body = words + [0] * max(0, sum(sizes) - len(words))
    body = body[: sum(sizes)]
    table = struct.pack(f"<{len(sizes) + 1}I", len(sizes) - 1, *sizes)
    table += b"\0" * (-len(table) % 8)
    data = table + b"".join(struct.pack("<Q", w) for w in body)
    assert_only_decode_error(structs[which % len(structs)], data)
