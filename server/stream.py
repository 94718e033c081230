"""A session's output: one byte stream with offsets, a bounded scrollback, many readers.

Independent of where the bytes come from (a QEMU serial port today, a tab
relayed through the server later). Every byte has an offset, its position
since the stream began. The stream keeps the last `scrollback` bytes; a
reader (`Cursor`) is only an offset into it, so a slow reader costs the
writer nothing: it falls behind, and when what it has not read has fallen
out of the scrollback it is told to reset and continues from the oldest
byte kept.

The stream holds valid UTF-8 only (invalid input becomes U+FFFD) and cuts
at character boundaries, so every chunk decodes on its own and a reader's
next offset is its last offset plus the UTF-8 length of what it got.
"""

from __future__ import annotations

import asyncio
import codecs
from dataclasses import dataclass

DEFAULT_SCROLLBACK = 256 * 1024


@dataclass(frozen=True, slots=True)
class Chunk:
    offset: int  # of data's first byte in the stream
    data: str


@dataclass(frozen=True, slots=True)
class Reset:
    """The bytes the reader asked for fell out of the scrollback; `offset` is the oldest kept."""

    offset: int


@dataclass(frozen=True, slots=True)
class Ended:
    reason: str


def _char_start(buf: bytearray, i: int) -> int:
    """The largest index <= i that starts a UTF-8 character."""
    while 0 < i < len(buf) and buf[i] & 0xC0 == 0x80:
        i -= 1
    return i


def _first_char_at_or_after(buf: bytearray, i: int) -> int:
    while i < len(buf) and buf[i] & 0xC0 == 0x80:
        i += 1
    return i


class OutputStream:
    def __init__(self, scrollback: int = DEFAULT_SCROLLBACK) -> None:
        self.scrollback = scrollback
        self._buffer = bytearray()  # the bytes from `start` to `end`
        self.start = 0  # offset of _buffer[0]
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._changed = asyncio.Event()
        self.ended: str | None = None  # why the stream ended, once it has

    @classmethod
    def resumed(cls, scrollback: int, start: int, kept: bytes) -> OutputStream:
        """A stream that goes on where one that kept `kept` from offset `start` stopped (a
        session restored after the server restarted): readers' offsets still hold."""
        stream = cls(scrollback)
        stream.start = start
        stream.append(kept)
        return stream

    @property
    def end(self) -> int:
        return self.start + len(self._buffer)

    def append(self, data: bytes) -> None:
        if self.ended is not None:
            return
        text = self._decoder.decode(data)
        if not text:
            return
        self._buffer += text.encode()
        excess = len(self._buffer) - self.scrollback
        if excess > 0:
            cut = _first_char_at_or_after(self._buffer, excess)
            del self._buffer[:cut]
            self.start += cut
        self._wake()

    def close(self, reason: str) -> None:
        """No more output: readers get what is left, then `Ended(reason)`."""
        if self.ended is None:
            self.ended = reason
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def read(self, offset: int, limit: int) -> Chunk | Reset | Ended | None:
        """What a reader at `offset` gets now; None when it must wait for more."""
        if offset < self.start or offset > self.end:
            return Reset(self.start)
        if offset == self.end:
            return Ended(self.ended) if self.ended is not None else None
        buf, begin = self._buffer, offset - self.start
        if buf[begin] & 0xC0 == 0x80:  # not a position any reader was given
            return Reset(self.start)
        stop = min(len(buf), begin + max(4, limit))
        if stop < len(buf):
            stop = _char_start(buf, stop)
        return Chunk(offset, buf[begin:stop].decode())

    async def next(self, offset: int, limit: int) -> Chunk | Reset | Ended:
        """Wait until there is something for a reader at `offset`."""
        while True:
            changed = self._changed
            item = self.read(offset, limit)
            if item is not None:
                return item
            await changed.wait()

    def snapshot(self) -> Chunk:
        """Everything kept, from the oldest byte."""
        return Chunk(self.start, self._buffer.decode())
