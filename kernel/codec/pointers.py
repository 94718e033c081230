"""Wire-pointer constants and helpers shared by the reader and the builder.

A pointer is one little-endian 64-bit word; the low two bits are its kind.
Struct: offset(30, signed) | data words(16) | pointer count(16).
List: offset(30, signed) | element size(3) | element count or word count(29).
Far: landing-pad word offset(29) | double-far flag(1) | segment id(32).
Other (capability): index into the capability table in the upper 32 bits.
"""

from __future__ import annotations

import struct

STRUCT = 0
LIST = 1
FAR = 2
OTHER = 3

KIND_NAMES = ("struct", "list", "far", "capability/other")

# List element sizes: void, bit, byte, two/four/eight bytes, pointer, inline composite.
ES_VOID = 0
ES_BIT = 1
ES_BYTE = 2
ES_TWO = 3
ES_FOUR = 4
ES_EIGHT = 5
ES_POINTER = 6
ES_COMPOSITE = 7

ELEMENT_BITS = (0, 1, 8, 16, 32, 64, 64, 0)
ELEMENT_SIZE_NAMES = ("void", "bit", "byte", "2-byte", "4-byte", "8-byte", "pointer", "composite")

MAX_LIST_COUNT = (1 << 29) - 1
MAX_SEGMENT_WORDS = (1 << 29) - 1

U64 = struct.Struct("<Q")
U32 = struct.Struct("<I")
U16 = struct.Struct("<H")


def signed_offset(word: int) -> int:
    """The signed 30-bit word offset of a struct or list pointer."""
    return (((word & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000) >> 2
