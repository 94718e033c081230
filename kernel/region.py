"""A process's shared region, seen through the few operations the ring needs.

Natively and in tests the region is ordinary memory (`MemoryRegion`, a
memoryview). In the browser it is a SharedArrayBuffer that Pyodide's
Python cannot map, so `kernel.hosts.sab.SabRegion` implements the same
operations with JavaScript calls. Ring code uses only these, so one ring
implementation serves every host.

u32 accesses are whole (one aligned 4-byte load or store): the other side
may be reading the same field at the same moment. That rules out `struct`:
`pack_into` zero-fills the field before it stores the value (CPython's
s_pack_internal memsets first, even for native "I"), so a reader in another
process sees the field read 0 for a moment, about once in seventy reads
of a field being rewritten in a loop. A cq_tail read as 0 made a process reap 32 stale
slots and run its cq_head past the tail, a sq_tail read as 0 made the
kernel discard a whole SQ as corrupt; either left a process waiting for a
completion that could never come. A memoryview cast to "I" loads and
stores each item with one 4-byte memcpy, which is one instruction.
"""

from __future__ import annotations

import sys
from typing import Protocol

assert sys.byteorder == "little", "ring ABI v0 needs a little-endian host"


class Region(Protocol):
    size: int

    def u32(self, offset: int) -> int: ...

    def set_u32(self, offset: int, value: int) -> None: ...

    def read(self, offset: int, length: int) -> bytes: ...

    def write(self, offset: int, data: bytes) -> None: ...


class MemoryRegion:
    """A region in this process's address space (an mmap or a bytearray).

    The operations are closures over the memoryview, set per instance: ring
    code calls them on every operation, and one call is cheaper than two.
    The memory must be 4-byte aligned, as an mmap or a bytearray is.
    """

    __slots__ = ("read", "set_u32", "size", "u32", "view", "write")

    def __init__(self, memory: memoryview | bytearray) -> None:
        view = memoryview(memory)
        words = view[: len(view) & ~3].cast("I")  # u32 fields, each one whole load or store
        self.view = view
        self.size = len(view)
        self.u32 = lambda offset: words[offset >> 2]

        def set_u32(offset: int, value: int) -> None:
            words[offset >> 2] = value & 0xFFFFFFFF

        self.set_u32 = set_u32
        self.read = lambda offset, length: view[offset : offset + length].tobytes()

        def write(offset: int, data: bytes) -> None:
            view[offset : offset + len(data)] = data

        self.write = write
