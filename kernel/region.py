"""A process's shared region, seen through the few operations the ring needs.

Natively and in tests the region is ordinary memory (`MemoryRegion`, a
memoryview). In the browser it is a SharedArrayBuffer that Pyodide's
Python cannot map, so `kernel.hosts.sab.SabRegion` implements the same
operations with JavaScript calls. Ring code uses only these, so one ring
implementation serves every host.

u32 accesses are whole (one aligned 4-byte load or store): the other side
may be reading the same field at the same moment.
"""

from __future__ import annotations

import struct
from typing import Protocol

_U32 = struct.Struct("I")  # native order: one aligned store (explicit "<I" goes byte by byte)
assert struct.pack("I", 1) == struct.pack("<I", 1), "ring ABI v0 needs a little-endian host"


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
    """

    __slots__ = ("read", "set_u32", "size", "u32", "view", "write")

    def __init__(self, memory: memoryview | bytearray) -> None:
        view = memoryview(memory)
        unpack_from, pack_into = _U32.unpack_from, _U32.pack_into
        self.view = view
        self.size = len(view)
        self.u32 = lambda offset: unpack_from(view, offset)[0]
        self.set_u32 = lambda offset, value: pack_into(view, offset, value & 0xFFFFFFFF)
        self.read = lambda offset, length: view[offset : offset + length].tobytes()

        def write(offset: int, data: bytes) -> None:
            view[offset : offset + len(data)] = data

        self.write = write
