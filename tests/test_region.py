"""The shared region's u32 fields, as another process sees them while they change."""

from __future__ import annotations

import mmap
import os
import time

from kernel.region import MemoryRegion

FIELD = 20 >> 2  # cq_tail's word; any aligned field will do
RUN_S = 0.5


def test_a_reader_in_another_process_never_sees_a_field_half_stored():
    """struct.pack_into zero-fills a field before storing it: a process reading the
    kernel's cq_tail at that moment saw 0 and reaped 32 stale slots (bench/stress.py)."""
    memory = mmap.mmap(-1, mmap.PAGESIZE)
    region = MemoryRegion(memoryview(memory))
    words = region.words
    words[FIELD] = 1
    writer = os.fork()
    if writer == 0:  # the writer: store ever larger values, as the kernel posts
        value, until = 1, time.monotonic() + RUN_S
        while time.monotonic() < until:
            for _ in range(1000):
                value += 1
                words[FIELD] = value
        os._exit(0)
    reads, torn, last = 0, 0, 1
    try:
        until = time.monotonic() + RUN_S
        while time.monotonic() < until:
            for _ in range(1000):
                value = words[FIELD]
                torn += value < last
                last = value
            reads += 1000
    finally:
        os.waitpid(writer, 0)
    assert torn == 0, f"{torn} of {reads} reads saw a field half stored"
