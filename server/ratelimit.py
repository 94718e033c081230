"""A token bucket per client: steady calls pass, a burst is allowed, a flood is told to wait."""

from __future__ import annotations

import time
from collections import OrderedDict

MAX_CLIENTS = 10_000  # buckets kept; the least recently seen go first (a full bucket is lost)


class RateLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second, self.burst = per_second, burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def wait_s(self, client: str) -> float:
        """0 when `client` may go on now (a token is spent), else how long until it may."""
        now = time.monotonic()
        tokens, then = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.per_second
        self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait
