"""A two-ended first-fit allocator for the process's buffer area.

Params, results and transfer descriptors live here while a request is in
flight. Most are small and some stay a long while (a pending terminal read,
a server's RECV); a few are large and brief (a whole-system snapshot). Small
ones are taken from the bottom and large ones from the top, so a large
buffer's space comes back in one piece instead of as a hole that the next
small buffer splits. The kernel validates every range it is given, so a bug
here costs this process an error CQE, never the kernel anything.
"""

from __future__ import annotations

import bisect

ALIGN = 8
LARGE = 8 * 1024 + 256  # bigger than this is taken from the top of the area


class BufferExhausted(Exception):
    pass


class BufferArena:
    def __init__(self, size: int) -> None:
        self.size = size
        self._free: list[tuple[int, int]] = [(0, size)]  # sorted (offset, length)
        self._used: dict[int, int] = {}

    def alloc(self, length: int) -> int:
        length = max(ALIGN, (length + ALIGN - 1) & ~(ALIGN - 1))
        large = length > LARGE
        order = range(len(self._free) - 1, -1, -1) if large else range(len(self._free))
        for index in order:
            offset, free_len = self._free[index]
            if free_len < length:
                continue
            if free_len == length:
                del self._free[index]
            elif large:  # the block's top end
                self._free[index] = (offset, free_len - length)
                offset += free_len - length
            else:
                self._free[index] = (offset + length, free_len - length)
            self._used[offset] = length
            return offset
        raise BufferExhausted(
            f"no {length} contiguous bytes left in the {self.size}-byte buffer area"
        )

    def free(self, offset: int) -> None:
        length = self._used.pop(offset)
        index = bisect.bisect(self._free, (offset, 0))
        self._free.insert(index, (offset, length))
        # coalesce with the right neighbour, then the left
        if index + 1 < len(self._free):
            nxt_off, nxt_len = self._free[index + 1]
            if offset + length == nxt_off:
                self._free[index] = (offset, length + nxt_len)
                del self._free[index + 1]
        if index > 0:
            prev_off, prev_len = self._free[index - 1]
            cur_off, cur_len = self._free[index]
            if prev_off + prev_len == cur_off:
                self._free[index - 1] = (prev_off, prev_len + cur_len)
                del self._free[index]

    @property
    def in_use(self) -> int:
        return sum(self._used.values())
