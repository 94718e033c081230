"""A capOS process as the kernel sees it: its ring, cap table, ledger and session."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from kernel import abi
from kernel.captable import CapTable
from kernel.ledger import ResourceLedger
from kernel.ring import KernelRing, RawCqe

if TYPE_CHECKING:
    from kernel.completion import Reply
    from kernel.endpoint import Endpoint


class State(StrEnum):
    RUNNING = "running"
    EXITED = "exited"
    KILLED = "killed"


@dataclass(frozen=True, slots=True)
class SessionContext:
    """Who a process's invocations are attributed to; fixed at spawn.

    Not authority: caps decide whether a process may invoke, the session
    decides on whose behalf. Services see only an opaque, per-endpoint
    `scoped_ref` derived from `session_id`, never the id itself.
    """

    session_id: bytes  # 16 random bytes from the kernel's entropy
    profile: str = "anonymous"
    epoch: int = 1


@dataclass(eq=False)
class Process:
    pid: int
    name: str
    binary: str
    ring: KernelRing
    ledger: ResourceLedger
    table: CapTable
    session: SessionContext
    parent: Process | None = None
    state: State = State.RUNNING
    exit_code: int | None = None
    end_reason: str = ""
    start_ns: int = 0  # since boot
    # Monitoring counters (kernel only): cap_enter dispatches, negative CQEs by code.
    enters: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    # Completions that found the CQ full; posted, oldest first, as it drains.
    backlog: deque[RawCqe] = field(default_factory=deque)
    # Calls this process is waiting on (CALL and RECV); cancelled at exit.
    replies: set[Reply] = field(default_factory=set)
    # Raw endpoints it owns: revoked (epoch-bumped) when it ends.
    endpoints: list[Endpoint] = field(default_factory=list)
    capset: list[tuple[str, int, int]] = field(default_factory=list)  # (name, cap_id, iface)
    on_end: list[Callable[[Process], None]] = field(default_factory=list)  # ProcessHandles
    woken: set[Process] = field(default_factory=set)  # the kernel's: posting here wakes us

    @property
    def alive(self) -> bool:
        return self.state is State.RUNNING

    @property
    def expecting(self) -> bool:
        """Whether a completion can still arrive without a new submission."""
        return bool(self.replies or self.backlog)

    def post(self, cqe: RawCqe) -> None:
        """Post a completion; a full CQ sends it to the counted backlog, never the floor."""
        self.woken.add(self)
        if cqe[1] < 0:  # the result field: a transport error, counted for monitoring
            self.errors[cqe[1]] = self.errors.get(cqe[1], 0) + 1
        if self.backlog or self.ring.cq_space() == 0:
            self.backlog.append(cqe)
            self.ring.count_overflow()
        else:
            self.ring.post(cqe)

    def post_many(self, cqes: list[RawCqe]) -> None:
        """Post a batch (NOPs): one space check, one tail update."""
        self.woken.add(self)
        posted = 0 if self.backlog else self.ring.post_many(cqes)
        for cqe in cqes[posted:]:
            self.backlog.append(cqe)
            self.ring.count_overflow()

    def flush_backlog(self) -> None:
        ring = self.ring
        backlog = self.backlog
        space = ring.cq_space()
        while backlog and space:
            ring.post(backlog.popleft())
            space -= 1

    def write_capset(self) -> None:
        """Lay the bootstrap CapSet page out for the runtime to read at start."""
        page = abi.CAPSET_HEADER.pack(abi.CAPSET_MAGIC, len(self.capset)) + b"".join(
            abi.CAPSET_ENTRY.pack(cap_id, len(name.encode()), 0, interface_id, name.encode())
            for name, cap_id, interface_id in self.capset
        )
        self.ring.region.write(abi.CAPSET_OFFSET, page)
