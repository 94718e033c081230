"""A token bucket per client: steady calls pass, a burst is allowed, a flood is told to wait."""

from __future__ import annotations

import time
from collections import OrderedDict

MAX_CLIENTS = 10_000  # buckets kept; the least recently seen go first (a full bucket is lost)


class RateLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second, self.burst = per_second, burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def wait_s(self, client: str, cost: float = 1.0) -> float:
        """0 when `client` may go on now (`cost` tokens are spent), else how long until it
        may (nothing is spent then)."""
        now = time.monotonic()
        tokens, then = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
        wait = 0.0 if tokens >= cost else (cost - tokens) / self.per_second
        self._buckets[client] = (tokens - cost if wait == 0 else tokens, now)
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait

    def drain(self, client: str) -> None:
        """Spend what `client` has left: it waits for the refill from now."""
        self._buckets[client] = (0.0, time.monotonic())
