"""Random short pauses between ring steps, to shake out lost wake-ups.

A race between the kernel loop and a process (a doorbell read at the
wrong moment, a completion posted just before a process sleeps) needs the
two sides to interleave in one particular way, which on a quiet machine
happens once in thousands of round trips. The native host can pause for a
random few microseconds at each step of its loop, and each process at each
step of `cap_enter`, so that rare interleavings come up within a short
run. It is the real host doing real work, only more slowly; a host built
without it (the default) does not call it at all.
"""

from __future__ import annotations

import os
import time

# Of every step, the share that pauses; the rest run straight through.
PAUSE_SHARE = 0.3
DEFAULT_JITTER_US = 50  # what the stress run uses unless told otherwise


class Jitter:
    """Call it at a step: most calls return at once, the rest pause a random
    0..`max_us` microseconds, half of them asleep (the other side runs on this
    CPU; Linux's timer slack makes a sleep last at least ~50 us), half busy (it
    runs on another, as on an idle machine)."""

    __slots__ = ("_max_ns", "_random")

    def __init__(self, max_us: int, seed: int | None = None) -> None:
        import random  # here: only stress runs draw, and every guest boot would import it

        self._max_ns = max_us * 1000
        self._random = random.Random(seed if seed is not None else os.getpid() ^ time.time_ns())

    @property
    def max_us(self) -> int:
        return self._max_ns // 1000

    def __call__(self) -> None:
        draw = self._random.random()
        if draw >= PAUSE_SHARE:
            return
        pause_ns = int(self._random.random() * self._max_ns)
        if draw < PAUSE_SHARE / 2:
            time.sleep(pause_ns / 1e9)
            return
        until = time.monotonic_ns() + pause_ns
        while time.monotonic_ns() < until:
            pass


def jitter_for(max_us: int) -> Jitter | None:
    """A Jitter for `max_us`, or None (no pauses, nothing to call) for 0."""
    return Jitter(max_us) if max_us > 0 else None
