"""The capability ring: one per process, in memory both sides can touch.

`KernelRing` is the kernel's view and `UserRing` the process's. Each side
writes only the header fields the ABI gives it (see `abi.Header`) and treats
everything the other side wrote as untrusted: the kernel never believes an
index or length from the process without checking it here first.
"""

from __future__ import annotations

from struct import Struct
from typing import NamedTuple

from kernel import abi
from kernel.abi import Header
from kernel.region import Region

_SQE = abi.SQE
_CQE = abi.CQE
_SQ_MASK = abi.SQ_ENTRIES - 1
_CQ_MASK = abi.CQ_ENTRIES - 1
_U32_MASK = 0xFFFFFFFF
_new_tuple = tuple.__new__  # Cqe._make without its checks: the fields come from Struct


class Sqe(NamedTuple):
    opcode: int
    flags: int
    xfer_cap_count: int
    cap_id: int
    interface_id: int
    method_id: int
    reserved: int
    params_len: int
    params_addr: int
    result_addr: int
    result_len: int
    xfer_addr: int
    call_id: int
    user_data: int
    pipeline_dep: int
    pipeline_field: int
    reserved2: int


class Cqe(NamedTuple):
    user_data: int
    result: int
    flags: int
    cap_count: int
    call_id: int
    caps_addr: int
    exception_len: int


# A CQE's fields as a plain tuple: batched NOP completions skip building Cqes.
RawCqe = tuple[int, int, int, int, int, int, int]


def sqe(
    opcode: int,
    *,
    cap_id: int = 0,
    interface_id: int = 0,
    method_id: int = 0,
    params_addr: int = 0,
    params_len: int = 0,
    result_addr: int = 0,
    result_len: int = 0,
    xfer_addr: int = 0,
    xfer_cap_count: int = 0,
    call_id: int = 0,
    user_data: int = 0,
    flags: int = 0,
) -> Sqe:
    """A well-formed SQE with every reserved field zero."""
    return Sqe(
        opcode,
        flags,
        xfer_cap_count,
        cap_id,
        interface_id,
        method_id,
        0,
        params_len,
        params_addr,
        result_addr,
        result_len,
        xfer_addr,
        call_id,
        user_data,
        0,
        0,
        0,
    )


def _unpack_slots(
    region: Region, layout: Struct, base: int, entries: int, first: int, count: int
) -> list[tuple]:
    """`count` queue slots from index `first` on, in order, as tuples."""
    unpack_from, view, size, mask = layout.unpack_from, region.view, layout.size, entries - 1
    return [unpack_from(view, base + ((first + i) & mask) * size) for i in range(count)]


# Header fields as indices into `Region.words`.
_SQ_HEAD = Header.SQ_HEAD >> 2
_SQ_TAIL = Header.SQ_TAIL >> 2
_CQ_HEAD = Header.CQ_HEAD >> 2
_CQ_TAIL = Header.CQ_TAIL >> 2
_FLAGS = Header.FLAGS >> 2


class _RingView:
    """Header access shared by both sides, through the region's words."""

    __slots__ = ("buffer_size", "read", "region", "view", "words", "write")

    def __init__(self, region: Region, buffer_size: int) -> None:
        self.region = region
        self.buffer_size = buffer_size
        self.words = region.words
        self.view = region.view
        self.read = region.read  # bound once: these run on every ring operation
        self.write = region.write

    def get(self, field: int) -> int:
        return self.words[field >> 2]

    def set(self, field: int, value: int) -> None:
        self.words[field >> 2] = value & _U32_MASK

    def read_buffer(self, addr: int, length: int) -> bytes:
        """Bytes of the buffer area; callers check the range first."""
        return self.read(abi.BUFFER_OFFSET + addr, length)

    def write_buffer(self, addr: int, data: bytes) -> None:
        self.write(abi.BUFFER_OFFSET + addr, data)

    def buffer_range_ok(self, addr: int, length: int) -> bool:
        return addr >= 0 and length >= 0 and addr + length <= self.buffer_size

    def available(self) -> int:
        """CQEs posted and not yet reaped."""
        words = self.words
        return (words[_CQ_TAIL] - words[_CQ_HEAD]) & _U32_MASK

    def _pending_sqes(self) -> int:
        words = self.words
        return (words[_SQ_TAIL] - words[_SQ_HEAD]) & _U32_MASK


class KernelRing(_RingView):
    """The kernel's side: consume SQEs, post CQEs, never trust the process."""

    __slots__ = ()

    @classmethod
    def create(cls, region: Region, pid: int) -> KernelRing:
        """Lay out a fresh ring at the start of `region` (zeroed by the host)."""
        buffer_size = region.size - abi.BUFFER_OFFSET
        if buffer_size <= 0:
            raise ValueError(f"region of {region.size} bytes leaves no buffer area")
        ring = cls(region, buffer_size)
        # `write`, not `words`: a SabRegion flushes the whole page, setup fields below included
        region.write(0, bytes(abi.PAGE_SIZE))
        for field, value in (
            (Header.MAGIC, abi.RING_MAGIC),
            (Header.VERSION, abi.ABI_VERSION),
            (Header.SQ_ENTRIES, abi.SQ_ENTRIES),
            (Header.CQ_ENTRIES, abi.CQ_ENTRIES),
            (Header.BUFFER_OFFSET, abi.BUFFER_OFFSET),
            (Header.BUFFER_SIZE, buffer_size),
            (Header.PID, pid),
        ):
            ring.set(field, value)
        return ring

    def take_submissions(self, limit: int) -> tuple[list[tuple], bool]:
        """Consume up to `limit` SQEs, as plain tuples in `Sqe` field order.

        Returns them and whether the SQ was corrupt.

        A tail more than SQ_ENTRIES ahead of the head cannot be honest: the
        kernel discards the whole SQ (head := tail), counts it, and the
        caller posts a CORRUPT_SQ completion. The kernel's own head is the
        source of truth, so a process cannot rewind it.
        """
        words = self.words
        head = words[_SQ_HEAD]
        tail = words[_SQ_TAIL]
        pending = (tail - head) & _U32_MASK
        if pending == 0:
            return [], False
        if pending > abi.SQ_ENTRIES:
            words[_SQ_HEAD] = tail
            self.set(Header.SQ_CORRUPTIONS, self.get(Header.SQ_CORRUPTIONS) + 1)
            return [], True
        count = min(pending, limit)
        entries = _unpack_slots(self.region, _SQE, abi.SQ_OFFSET, abi.SQ_ENTRIES, head, count)
        words[_SQ_HEAD] = (head + count) & _U32_MASK
        return entries, False

    sq_pending = _RingView._pending_sqes  # the process may still be writing more

    def cq_space(self) -> int:
        """Free CQ slots. A nonsense cq_head from the process reads as a full CQ."""
        used = self.available()
        if used > abi.CQ_ENTRIES:
            return 0
        return abi.CQ_ENTRIES - used

    def post(self, cqe: RawCqe) -> None:
        """Write one CQE; the caller has checked `cq_space()`."""
        words = self.words
        tail = words[_CQ_TAIL]
        _CQE.pack_into(self.view, abi.CQ_OFFSET + (tail & _CQ_MASK) * abi.CQE_SIZE, *cqe)
        words[_CQ_TAIL] = (tail + 1) & _U32_MASK

    def post_many(self, cqes: list[RawCqe]) -> int:
        """Write as many CQEs as fit, publishing them at once; returns how many."""
        count = min(len(cqes), self.cq_space())
        words = self.words
        tail = words[_CQ_TAIL]
        view, pack_into, base = self.view, _CQE.pack_into, abi.CQ_OFFSET
        for i in range(count):
            pack_into(view, base + ((tail + i) & _CQ_MASK) * abi.CQE_SIZE, *cqes[i])
        words[_CQ_TAIL] = (tail + count) & _U32_MASK
        return count

    def count_overflow(self) -> None:
        self.set(Header.CQ_OVERFLOW, self.get(Header.CQ_OVERFLOW) + 1)

    def mark_dead(self) -> None:
        self.words[_FLAGS] |= abi.RingFlags.DEAD


class UserRing(_RingView):
    """The process's side: submit SQEs, reap CQEs."""

    __slots__ = ()

    @classmethod
    def attach(cls, region: Region) -> UserRing:
        """Check the kernel laid out a ring we understand before using it."""
        if region.size < abi.BUFFER_OFFSET:
            raise ValueError("ring region too small")
        probe = _RingView(region, 0)
        if probe.get(Header.MAGIC) != abi.RING_MAGIC:
            raise ValueError("no capability ring at this address (bad magic)")
        if probe.get(Header.VERSION) != abi.ABI_VERSION:
            raise ValueError(f"ring ABI v{probe.get(Header.VERSION)} is not v{abi.ABI_VERSION}")
        buffer_size = probe.get(Header.BUFFER_SIZE)
        if abi.BUFFER_OFFSET + buffer_size > region.size:
            raise ValueError("ring header claims a buffer area larger than the region")
        return cls(region, buffer_size)

    def sq_space(self) -> int:
        words = self.words
        return abi.SQ_ENTRIES - ((words[_SQ_TAIL] - words[_SQ_HEAD]) & _U32_MASK)

    def submit(self, entry: Sqe | tuple) -> None:
        """Write one SQE and publish it; the caller has checked `sq_space()`."""
        words = self.words
        tail = words[_SQ_TAIL]
        _SQE.pack_into(self.view, abi.SQ_OFFSET + (tail & _SQ_MASK) * abi.SQE_SIZE, *entry)
        words[_SQ_TAIL] = (tail + 1) & _U32_MASK

    def submit_many(self, entries: list[Sqe | tuple]) -> None:
        """Write several SQEs and publish them with one tail update."""
        words = self.words
        tail = words[_SQ_TAIL]
        view, pack_into, base = self.view, _SQE.pack_into, abi.SQ_OFFSET
        for i, entry in enumerate(entries):
            pack_into(view, base + ((tail + i) & _SQ_MASK) * abi.SQE_SIZE, *entry)
        words[_SQ_TAIL] = (tail + len(entries)) & _U32_MASK

    submitted_unconsumed = _RingView._pending_sqes

    def reap(self) -> list[Cqe]:
        """Take every posted CQE, oldest first."""
        words = self.words
        head = words[_CQ_HEAD]
        count = min((words[_CQ_TAIL] - head) & _U32_MASK, abi.CQ_ENTRIES)
        if count == 0:
            return []
        raw = _unpack_slots(self.region, _CQE, abi.CQ_OFFSET, abi.CQ_ENTRIES, head, count)
        words[_CQ_HEAD] = (head + count) & _U32_MASK
        return [_new_tuple(Cqe, fields) for fields in raw]

    @property
    def dead(self) -> bool:
        return bool(self.words[_FLAGS] & abi.RingFlags.DEAD)
