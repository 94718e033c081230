"""A process's shared region, seen through the few things the ring needs.

Natively and in tests the region is ordinary memory (`MemoryRegion`, a
memoryview). In the browser it is a SharedArrayBuffer that Pyodide's
Python cannot map, so `kernel.hosts.sab.SabRegion` gives Python a copy
of it and keeps the two in step at the doorbells. The ring reads and writes
its header and queue slots in `words` and `view` directly, and the buffer
area through `read` and `write`; one ring implementation serves every host.

Header fields go through `words`, whole (one aligned 4-byte load or store):
the other side may be reading the same field at the same moment. That rules
out `struct` for them (queue slots are read only once a tail publishes them):
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
    view: memoryview  # the region's bytes: queue slots are packed and unpacked here
    words: memoryview  # the same bytes as u32s (index = offset >> 2): the header fields

    def read(self, offset: int, length: int) -> bytes:
        """Bytes as the other side left them (the buffer area changes at any time)."""
        ...

    def write(self, offset: int, data: bytes) -> None: ...


class MemoryRegion:
    """A region in this process's address space (an mmap or a bytearray).

    `read` and `write` are closures over the memoryview, set per instance:
    ring code calls them on every operation, and one call is cheaper than
    two. The memory must be 4-byte aligned, as an mmap or a bytearray is.
    """

    __slots__ = ("read", "size", "view", "words", "write")

    def __init__(self, memory: memoryview | bytearray) -> None:
        view = memoryview(memory)
        self.view = view
        self.words = view[: len(view) & ~3].cast("I")  # each item one whole load or store
        self.size = len(view)
        self.read = lambda offset, length: view[offset : offset + length].tobytes()

        def write(offset: int, data: bytes) -> None:
            view[offset : offset + len(data)] = data

        self.write = write
