"""A Region over a JavaScript SharedArrayBuffer, for Python running in Pyodide.

Pyodide's Python lives in its own WebAssembly memory and cannot map a
SharedArrayBuffer, so each ring primitive becomes one JavaScript call:
u32 fields through Atomics (whole, ordered accesses, as the ring needs),
byte ranges through typed-array copies. Only importable under Pyodide.
"""

from __future__ import annotations

from js import Atomics, Int32Array, Uint8Array  # type: ignore[import-not-found]
from pyodide.ffi import to_js  # type: ignore[import-not-found]


class SabRegion:
    __slots__ = ("i32", "sab", "size", "u8")

    def __init__(self, sab) -> None:
        self.sab = sab
        self.i32 = Int32Array.new(sab)
        self.u8 = Uint8Array.new(sab)
        self.size = sab.byteLength

    def u32(self, offset: int) -> int:
        return Atomics.load(self.i32, offset >> 2) & 0xFFFFFFFF

    def set_u32(self, offset: int, value: int) -> None:
        value &= 0xFFFFFFFF
        Atomics.store(self.i32, offset >> 2, value - (1 << 32) if value >= 1 << 31 else value)

    def read(self, offset: int, length: int) -> bytes:
        return self.u8.slice(offset, offset + length).to_bytes()

    def write(self, offset: int, data: bytes) -> None:
        self.u8.set(to_js(bytes(data)), offset)

    def bump(self, offset: int) -> int:
        """Add one to a u32 field and wake whoever waits on it; returns the new value."""
        index = offset >> 2
        Atomics.add(self.i32, index, 1)
        Atomics.notify(self.i32, index)
        return self.u32(offset)
