"""A Region over a JavaScript SharedArrayBuffer, for Python running in Pyodide.

Pyodide's Python lives in its own WebAssembly memory and cannot map a
SharedArrayBuffer, so each ring primitive becomes one JavaScript call:
u32 fields through Atomics (whole, ordered accesses, as the ring needs),
byte ranges through typed-array copies. Only importable under Pyodide.

The Atomics functions are looked up once per region: looking up an
attribute of a JavaScript object from Python costs several times the call.
"""

from __future__ import annotations

from js import Atomics, Int32Array, Uint8Array
from pyodide.ffi import to_js


class SabRegion:
    __slots__ = ("_add", "_load", "_notify", "_store", "i32", "sab", "size", "u8")

    def __init__(self, sab) -> None:
        self.sab = sab
        self.i32 = Int32Array.new(sab)
        self.u8 = Uint8Array.new(sab)
        self.size = sab.byteLength
        self._load, self._store = Atomics.load, Atomics.store
        self._add, self._notify = Atomics.add, Atomics.notify

    def u32(self, offset: int) -> int:
        return self._load(self.i32, offset >> 2) & 0xFFFFFFFF

    def set_u32(self, offset: int, value: int) -> None:
        value &= 0xFFFFFFFF
        self._store(self.i32, offset >> 2, value - (1 << 32) if value >= 1 << 31 else value)

    def read(self, offset: int, length: int) -> bytes:
        return self.u8.slice(offset, offset + length).to_bytes()

    def write(self, offset: int, data: bytes) -> None:
        self.u8.set(to_js(bytes(data)), offset)

    def bump(self, offset: int) -> int:
        """Add one to a u32 field and wake whoever waits on it; returns the new value."""
        index = offset >> 2
        self._add(self.i32, index, 1)
        self._notify(self.i32, index)
        return self.u32(offset)
