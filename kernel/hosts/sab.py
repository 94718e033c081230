"""A Region over a JavaScript SharedArrayBuffer, for Python running in Pyodide.

Pyodide's Python lives in its own WebAssembly memory and cannot map a
SharedArrayBuffer, and every call across to JavaScript costs microseconds.
So each side works on a copy of the region in its own memory, at the speed
of a bytearray, and a port (web/static/ring-port.js) moves bytes between
the copy and the SharedArrayBuffer where the two must agree. What this side
wrote goes across when it rings or reads (`flush`): the ranges `write`
wrote, then the queue slots it filled and the header fields it owns, which
the ring sets in `words` and `view` directly. What the other side wrote
comes back at the doorbell: its header fields and queue slots, and for the
kernel the buffer-area bytes each new SQE names. A process reads its
results fresh instead (`pulls`). A call through the ring then crosses to
JavaScript once per doorbell, not dozens of times.

The ranges to flush are listed, in order, in the copy's tail: [count, then
(offset, length) pairs], so the port needs nothing but the copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kernel import abi

DIRTY_RANGES = 64  # writes listed before the copy must be flushed to list more


class SabRegion:
    __slots__ = ("copy", "port", "read", "size", "view", "words", "write")

    def __init__(self, size: int, attach: Callable[[bytearray], Any], *, pulls: bool) -> None:
        """`attach(copy)` makes the JavaScript port for this copy (a RegionPort).
        `pulls`: a buffer-area read first fetches its range from the SharedArrayBuffer (a
        process's results); the kernel's port took what it reads at the doorbell."""
        assert size % 4 == 0, "a ring region is whole words"
        self.size = size
        self.copy = copy = bytearray(size + 4 + 8 * DIRTY_RANGES)
        words = memoryview(copy).cast("I")  # the region's words, then the ranges to flush
        self.view = view = memoryview(copy)[:size]
        self.words = words[: size >> 2]
        count_at = size >> 2
        self.port = port = attach(copy)
        flush, pull = port.flush, port.read

        def mark(offset: int, length: int) -> None:
            count = words[count_at]
            if count == DIRTY_RANGES:
                flush()  # which empties the list
                count = 0
            at = count_at + 1 + 2 * count
            words[at] = offset
            words[at + 1] = length
            words[count_at] = count + 1

        def read(offset: int, length: int) -> bytes:
            if pulls and offset + length > abi.BUFFER_OFFSET:  # the kernel writes there any time
                pull(offset, length)
            return view[offset : offset + length].tobytes()

        def write(offset: int, data: bytes) -> None:
            view[offset : offset + len(data)] = data
            mark(offset, len(data))

        self.read = read
        self.write = write
