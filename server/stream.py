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

Every reader is woken when output comes, and the ones that wait `first` (the
session's owner) are woken before the rest, so however many viewers watch, the
owner's echo is sent before theirs. The stream also remembers when its recent
appends happened (time.monotonic()), so a terminal can say how old a chunk is.
"""

from __future__ import annotations

import asyncio
import bisect
import codecs
import time
from collections import deque
from dataclasses import dataclass

DEFAULT_SCROLLBACK = 256 * 1024
APPEND_TIMES_KEPT = 4096  # the most recent appends whose time is remembered


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
        self._changed_first = asyncio.Event()  # set just before `_changed`
        # (offset of an append's first byte, time.monotonic() then), oldest first
        self._appended: deque[tuple[int, float]] = deque(maxlen=APPEND_TIMES_KEPT)
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
        self._appended.append((self.end, time.monotonic()))
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
        # asyncio resumes waiters in the order they were woken: the first ones first.
        self._changed_first.set()
        self._changed.set()
        self._changed_first, self._changed = asyncio.Event(), asyncio.Event()

    def appended_at(self, offset: int) -> float | None:
        """When (time.monotonic()) the byte at `offset` was appended; None when that is
        older than the appends remembered, or not in the stream."""
        marks = self._appended
        if not marks or not max(marks[0][0], self.start) <= offset < self.end:
            return None
        return marks[bisect.bisect_right(marks, offset, key=lambda mark: mark[0]) - 1][1]

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

    async def next(self, offset: int, limit: int, first: bool = False) -> Chunk | Reset | Ended:
        """Wait until there is something for a reader at `offset`; a reader that waits
        `first` is woken before every other."""
        while True:
            changed = self._changed_first if first else self._changed
            item = self.read(offset, limit)
            if item is not None:
                return item
            await changed.wait()

    def snapshot(self) -> Chunk:
        """Everything kept, from the oldest byte."""
        return Chunk(self.start, self._buffer.decode())
