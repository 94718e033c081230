"""Disk quotas on recordings: per session, per client address, per server.

A public host must not let a visitor fill its disk: one session keeps at most
`per_session` recordings and `session_bytes`, the recordings started from one
address take at most `client_bytes`, and all of them at most `server_bytes`. A new
recording past a quota is refused (429 for a session's or an address's, 507 when the
server's is spent: less is left than one chunk of output takes, so a new recording
would stop at once), and a running one stops, with a marker, at the write that would
pass one. What is counted is what the casts take on disk until they are deleted (by
their owner, or by the retention sweep once they expire).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from server.recording import KEPT, READ_CHUNK
from server.settings import MIB, RecordingLimits
from server.shares import ShareError


@dataclass(frozen=True)
class Owner:
    """Who a recording counts against: its session and the address that started it."""

    session_id: str
    client_ip: str


class QuotaError(ShareError):
    """A new recording past a quota; `retry_after` (seconds) when waiting for older
    recordings to expire makes room, else None."""

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


def _mib(n: int) -> str:
    return f"{n / MIB:g} MiB"


class DiskQuota:
    """Bytes kept per session, per address and in all, as the recordings' sizes add up."""

    def __init__(self, limits: RecordingLimits) -> None:
        self.limits = limits
        self.total = 0
        self._by_session: Counter[str] = Counter()
        self._by_client: Counter[str] = Counter()
        self._count: Counter[str] = Counter()  # recordings kept per session
        self._charged: dict[str, int] = {}  # bytes counted per recording (by its id)
        self._owners: dict[str, Owner] = {}
        self._expiries: dict[str, float] = {}

    def add(self, recording_id: str, owner: Owner, size: int, expires_at: float) -> None:
        self._owners[recording_id] = owner
        self._expiries[recording_id] = expires_at
        self._charged[recording_id] = 0
        self._count[owner.session_id] += 1
        self.settle(recording_id, size)

    def remove(self, recording_id: str) -> None:
        self.settle(recording_id, 0)
        owner = self._owners.pop(recording_id)
        del self._charged[recording_id], self._expiries[recording_id]
        self._count[owner.session_id] -= 1
        for counter, key in (
            (self._count, owner.session_id),
            (self._by_session, owner.session_id),
            (self._by_client, owner.client_ip),
        ):
            if counter[key] <= 0:
                del counter[key]

    def settle(self, recording_id: str, size: int) -> None:
        """The recording now takes `size` bytes (its cast's size once it stopped)."""
        owner = self._owners[recording_id]
        change = size - self._charged[recording_id]
        self._charged[recording_id] = size
        self._by_session[owner.session_id] += change
        self._by_client[owner.client_ip] += change
        self.total += change

    def admit(self, owner: Owner) -> None:
        """Whether `owner` may start another recording; QuotaError saying which quota is
        spent and what to do when not."""
        limits, room = self.limits, READ_CHUNK
        kept = self._count[owner.session_id]
        if kept >= limits.per_session:
            raise QuotaError(
                f"this session keeps {kept} recordings, the most allowed; "
                "delete one before starting another",
                429,
            )
        taken = self._by_session[owner.session_id]
        if taken + room > limits.session_bytes:
            raise QuotaError(
                f"this session's recordings take {_mib(taken)}, the most allowed "
                f"({_mib(limits.session_bytes)}); delete some before starting another",
                429,
            )
        taken = self._by_client[owner.client_ip]
        if taken + room > limits.client_bytes:
            raise QuotaError(
                f"the recordings started from your address take {_mib(taken)}, the most "
                f"allowed ({_mib(limits.client_bytes)}); delete some, or wait for them to expire",
                429,
                self._wait([r for r, o in self._owners.items() if o.client_ip == owner.client_ip]),
            )
        if self.total + room > limits.server_bytes:
            raise QuotaError(
                f"the server's recordings take {_mib(self.total)}, all it keeps "
                f"({_mib(limits.server_bytes)}): new recordings are refused until older ones "
                "expire; try again later",
                507,
                self._wait(self._owners),
            )

    def _wait(self, recording_ids: Iterable[str]) -> float | None:
        """Seconds until the first of these recordings expires and is swept away."""
        expiries = [self._expiries[r] for r in recording_ids]
        if not expiries:
            return None
        left = min(expiries) - time.time() + self.limits.sweep_interval_s
        return float(max(1, math.ceil(left)))

    def over(self, recording_id: str, more: int) -> str | None:
        """Why the recording may not grow by `more` bytes (which quota it would pass), or
        None when it may."""
        limits, owner = self.limits, self._owners[recording_id]
        if self._charged[recording_id] + more > limits.max_bytes:
            return f"the recording reached its size limit of {_mib(limits.max_bytes)}; {KEPT}"
        if self._by_session[owner.session_id] + more > limits.session_bytes:
            return (
                f"this session's recordings reached their limit of "
                f"{_mib(limits.session_bytes)}; {KEPT}"
            )
        if self._by_client[owner.client_ip] + more > limits.client_bytes:
            return (
                f"the recordings started from this address reached their limit of "
                f"{_mib(limits.client_bytes)}; {KEPT}"
            )
        if self.total + more > limits.server_bytes:
            return (
                f"the server's recordings reached all it keeps ({_mib(limits.server_bytes)}); "
                f"{KEPT}"
            )
        return None

    def grow(self, recording_id: str, more: int) -> None:
        self.settle(recording_id, self._charged[recording_id] + more)
