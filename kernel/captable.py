"""The per-process capability table: generation-tagged slots.

A CapId is `generation << 16 | slot` (abi). Freeing a slot bumps its
generation, so a CapId kept after RELEASE or a move goes stale instead of
silently naming whatever lands in the slot next. Every lookup checks the
slot, the generation and the interface the caller claims.

Slots are charged to the owner's ledger (`cap_slots`) when filled and given
back when freed. A slot being moved away is *reserved*: it stays allocated
(so a rollback can restore it exactly) but cannot be used, released or
transferred again until the move commits or rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from kernel import abi
from kernel.abi import Err
from kernel.errors import TransportError
from kernel.ledger import Resource, ResourceLedger

if TYPE_CHECKING:
    from kernel.capobject import CapObject
    from kernel.lease import Lease


class TransferPolicy(StrEnum):
    COPY = "copy"  # may be copied or moved
    MOVE = "move"  # may only be moved (a unique authority)
    NON_TRANSFERABLE = "non_transferable"  # stays with its holder (ProcessHandle, raw Endpoint)


class Origin(StrEnum):
    KERNEL = "kernel"
    SPAWN_GRANT = "spawn_grant"
    IPC_TRANSFER = "ipc_transfer"
    RESULT_CAP = "result_cap"


@dataclass(slots=True)
class CapEntry:
    """One hold edge: this process holds `obj`, seen as `interface_id`."""

    obj: CapObject
    interface_id: int
    policy: TransferPolicy
    origin: Origin
    reserved: bool = False
    # The session it was issued under (broker bundles and their copies); None: no session's.
    lease: Lease | None = None


class CapTable:
    MAX_SLOTS = abi.CAP_SLOT_MASK  # slot 0xFFFF is never handed out

    def __init__(self, ledger: ResourceLedger) -> None:
        self._ledger = ledger
        self._entries: list[CapEntry | None] = []
        self._generations: list[int] = []
        self._free: list[int] = []

    def insert(self, entry: CapEntry, *, prereserved: bool = False) -> int:
        """Place `entry` in a free slot and return its CapId.

        Charges one cap slot, unless the caller already reserved it
        (`prereserved`), as spawn does before any side effect.
        """
        if not prereserved:
            self._ledger.reserve(Resource.CAP_SLOTS)
        if self._free:
            slot = self._free.pop()
        elif len(self._entries) < self.MAX_SLOTS:
            slot = len(self._entries)
            self._entries.append(None)
            self._generations.append(1)
        else:  # pragma: no cover - the ledger limit is far below 65535
            self._ledger.release(Resource.CAP_SLOTS)
            raise AssertionError("cap table exhausted beyond its ledger")
        self._entries[slot] = entry
        return abi.make_cap_id(slot, self._generations[slot])

    def get(self, cap_id: int) -> CapEntry:
        """The live entry for `cap_id`, or the transport error that explains why not."""
        slot = cap_id & abi.CAP_SLOT_MASK
        if slot >= len(self._entries):
            raise TransportError(Err.INVALID_CAP, f"no cap in slot {slot}")
        if self._generations[slot] != cap_id >> abi.CAP_SLOT_BITS:
            raise TransportError(Err.STALE_CAP, f"cap {cap_id:#x} was released or moved")
        entry = self._entries[slot]
        if entry is None:  # current generation, yet empty: this id was never handed out
            raise TransportError(Err.INVALID_CAP, f"slot {slot} is empty")
        if entry.reserved:
            raise TransportError(Err.INVALID_CAP, f"cap {cap_id:#x} is being transferred")
        return entry

    def lookup(self, cap_id: int, interface_id: int) -> CapEntry:
        entry = self.get(cap_id)
        if entry.interface_id != interface_id:
            raise TransportError(
                Err.WRONG_INTERFACE,
                f"cap {cap_id:#x} is interface {entry.interface_id:#x}, not {interface_id:#x}",
            )
        return entry

    def remove(self, cap_id: int) -> CapEntry:
        """Free the slot (live or reserved), bumping its generation."""
        slot = cap_id & abi.CAP_SLOT_MASK
        entry = self._entries[slot] if slot < len(self._entries) else None
        if entry is None or self._generations[slot] != cap_id >> abi.CAP_SLOT_BITS:
            raise TransportError(Err.INVALID_CAP, f"no cap {cap_id:#x} to remove")
        self._entries[slot] = None
        generation = (self._generations[slot] + 1) & abi.CAP_GENERATION_MASK
        self._generations[slot] = generation or 1
        self._free.append(slot)
        self._ledger.release(Resource.CAP_SLOTS)
        return entry

    def reserve_move(self, cap_id: int) -> CapEntry:
        entry = self.get(cap_id)
        entry.reserved = True
        return entry

    def rollback_move(self, cap_id: int) -> None:
        slot = cap_id & abi.CAP_SLOT_MASK
        entry = self._entries[slot]
        assert entry is not None and entry.reserved
        entry.reserved = False

    def commit_move(self, cap_id: int) -> None:
        self.remove(cap_id)

    def clear(self) -> list[CapEntry]:
        """Empty the table (process exit); returns what it held."""
        held = [e for e in self._entries if e is not None]
        for slot, entry in enumerate(self._entries):
            if entry is not None:
                self._entries[slot] = None
                generation = (self._generations[slot] + 1) & abi.CAP_GENERATION_MASK
                self._generations[slot] = generation or 1
                self._ledger.release(Resource.CAP_SLOTS)
        self._free = list(range(len(self._entries)))
        return held

    def __iter__(self) -> Iterator[tuple[int, CapEntry]]:
        for slot, entry in enumerate(self._entries):
            if entry is not None:
                yield abi.make_cap_id(slot, self._generations[slot]), entry

    def __len__(self) -> int:
        return sum(1 for e in self._entries if e is not None)
