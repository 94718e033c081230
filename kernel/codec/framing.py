"""Standard stream framing: the segment table in front of a message's segments.

Layout: u32 (segment count - 1), u32 size in words per segment, padding to
a word boundary, then the segments back to back. Readers keep the whole
buffer and address segments by byte offset, so nothing is copied.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from kernel.codec.errors import DecodeError

MAX_SEGMENTS = 512

_U32 = struct.Struct("<I")
_U32x2 = struct.Struct("<II")


def parse_segment_table(buf: bytes) -> tuple[list[int], list[int]]:
    """Segment start and end byte offsets into `buf`; DecodeError if the frame is bad."""
    n = len(buf)
    if n < 8:
        raise DecodeError(f"message too short for a segment table ({n} bytes)")
    count, first = _U32x2.unpack_from(buf, 0)
    count += 1
    if count == 1 and 8 + first * 8 == n and first:
        return [8], [n]  # the common case: one segment, exactly framed
    if count > MAX_SEGMENTS:
        raise DecodeError(f"segment count {count} exceeds the limit of {MAX_SEGMENTS}")
    header = (4 + 4 * count + 7) & ~7
    if n < header:
        raise DecodeError(
            f"segment table for {count} segments needs {header} bytes, message has {n}"
        )
    sizes = struct.unpack_from(f"<{count}I", buf, 4)
    starts = []
    ends = []
    pos = header
    for i, size in enumerate(sizes):
        end = pos + size * 8
        if end > n:
            raise DecodeError(
                f"segment {i} is truncated: it claims {size} words, "
                f"{max(0, (n - pos) // 8)} are present"
            )
        starts.append(pos)
        ends.append(end)
        pos = end
    if pos != n:
        raise DecodeError(f"{n - pos} trailing bytes after the last segment")
    if sizes[0] == 0:
        raise DecodeError("the first segment is empty: no root pointer")
    return starts, ends


def frame_segments(segments: Sequence[bytes | bytearray]) -> bytes:
    """Prefix segments (each a whole number of words) with their table."""
    count = len(segments)
    table = struct.pack(f"<{count + 1}I", count - 1, *(len(s) // 8 for s in segments))
    if len(table) % 8:
        table += b"\0\0\0\0"
    return b"".join([table, *segments])


def frame_size(buf: bytes | bytearray, limit: int) -> int | None:
    """The byte length of the frame at the start of a stream `buf`, or None if incomplete.

    For reading messages off a byte stream (a serial line, a socket). Raises
    DecodeError when the frame claims more segments than allowed or more
    than `limit` bytes: a stream cannot resynchronise, so the caller drops it.
    """
    if len(buf) < 4:
        return None
    count = _U32.unpack_from(buf, 0)[0] + 1
    if count > MAX_SEGMENTS:
        raise DecodeError(f"segment count {count} exceeds the limit of {MAX_SEGMENTS}")
    header = (4 + 4 * count + 7) & ~7
    if len(buf) < 4 + 4 * count:
        return None
    size = header + 8 * sum(struct.unpack_from(f"<{count}I", buf, 4))
    if size > limit:
        raise DecodeError(f"a {size}-byte message exceeds the limit of {limit} bytes")
    return size if len(buf) >= size else None
