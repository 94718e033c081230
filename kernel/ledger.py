"""ResourceLedger: every finite resource a process consumes, reserved first.

The rule from capOS: reserve before any side effect, commit publishes, and
release on every path (success, failure, revocation, exit). A reservation
that is never committed gives its units back when its `with` block ends, so
an exception between reserve and commit cannot leak quota.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from kernel.errors import CapError, ExceptionType


class Resource(StrEnum):
    CAP_SLOTS = "cap_slots"  # entries in the process's cap table
    OUTSTANDING_CALLS = "outstanding_calls"  # CALLs and RECVs awaiting completion
    BUFFER_BYTES = "buffer_bytes"  # bytes the kernel holds for it (queued params, backlog)
    PROCESSES = "processes"  # live children it spawned
    # Its own memory, in MiB: a limit only, enforced by the host where it can
    # measure it (a browser worker's WebAssembly heap), never reserved.
    MEMORY_MIB = "memory_mib"


DEFAULT_LIMITS: dict[Resource, int] = {
    Resource.CAP_SLOTS: 256,
    Resource.OUTSTANDING_CALLS: 64,
    Resource.BUFFER_BYTES: 256 * 1024,
    Resource.PROCESSES: 16,
    Resource.MEMORY_MIB: 256,
}


class QuotaExceeded(CapError):
    """Raised by `reserve`: an `overloaded` CapException naming the resource."""

    def __init__(self, resource: Resource, limit: int, wanted: int) -> None:
        super().__init__(
            ExceptionType.OVERLOADED,
            f"{resource.value} quota exhausted ({limit} allowed, {wanted} more wanted)",
        )
        self.resource = resource


@dataclass
class ResourceLedger:
    limits: dict[Resource, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    used: dict[Resource, int] = field(default_factory=lambda: dict.fromkeys(Resource, 0))

    def available(self, resource: Resource) -> int:
        return self.limits[resource] - self.used[resource]

    def reserve(self, resource: Resource, amount: int = 1) -> None:
        if amount < 0:
            raise ValueError("negative reservation")
        if self.used[resource] + amount > self.limits[resource]:
            raise QuotaExceeded(resource, self.limits[resource], amount)
        self.used[resource] += amount

    def release(self, resource: Resource, amount: int = 1) -> None:
        if amount > self.used[resource]:
            raise AssertionError(f"ledger underflow on {resource.value}")
        self.used[resource] -= amount

    def reservation(self, resource: Resource, amount: int = 1) -> Reservation:
        self.reserve(resource, amount)
        return Reservation(self, resource, amount)

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return {r.value: (self.used[r], self.limits[r]) for r in Resource}


class Reservation:
    """Units held until `commit()` hands them on or the `with` block gives them back."""

    __slots__ = ("amount", "ledger", "resource")

    def __init__(self, ledger: ResourceLedger, resource: Resource, amount: int) -> None:
        self.ledger = ledger
        self.resource = resource
        self.amount = amount

    def commit(self) -> None:
        """The units now belong to whatever was created; its owner releases them."""
        self.amount = 0

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.amount:
            self.ledger.release(self.resource, self.amount)
            self.amount = 0
