"""Capabilities riding sideband on CALL and RETURN: copy, or move.

A move is a transaction: `read` reserves each moved slot in the sender,
`deliver` inserts everything into the receiver (all of it or none of it),
then exactly one of `commit` (the sender's slots are freed) or `rollback`
(they become usable again) ends it. Authority is never lost, duplicated or
half-inserted, whichever step fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel import abi
from kernel.abi import Err, TransferMode
from kernel.captable import CapEntry, Origin, TransferPolicy
from kernel.errors import TransportError

if TYPE_CHECKING:
    from kernel.process import Process
    from kernel.ring import Sqe


@dataclass(slots=True)
class TransferItem:
    cap_id: int  # in the sender's table
    entry: CapEntry
    mode: TransferMode


class Transfer:
    __slots__ = ("done", "items", "sender")

    def __init__(self, sender: Process, items: list[TransferItem]) -> None:
        self.sender = sender
        self.items = items
        self.done = False

    @classmethod
    def read(cls, sender: Process, sqe: Sqe, *, to_process: bool) -> Transfer | None:
        """Parse and validate the SQE's descriptors; reserve the moves.

        Caps bound for another process must be transferable; caps handed to
        a kernel object (say, a spawn grant's `clientOf` endpoint) are only
        looked at by the kernel, which applies its own rules.
        """
        count = sqe.xfer_cap_count
        if count == 0:
            return None
        if count > abi.MAX_XFER:
            raise TransportError(Err.BAD_TRANSFER, f"{count} descriptors (at most {abi.MAX_XFER})")
        ring = sender.ring
        if not ring.buffer_range_ok(sqe.xfer_addr, count * abi.XFER_SIZE):
            raise TransportError(Err.BAD_BUFFER, "transfer descriptors outside the buffer area")
        raw = ring.read_buffer(sqe.xfer_addr, count * abi.XFER_SIZE)
        parsed: list[tuple[int, TransferMode]] = []
        seen: set[int] = set()
        for cap_id, mode, reserved in abi.XFER.iter_unpack(raw):
            if reserved != b"\0\0\0":
                raise TransportError(Err.BAD_TRANSFER, "descriptor reserved bytes must be zero")
            if mode not in (TransferMode.COPY, TransferMode.MOVE):
                raise TransportError(Err.BAD_TRANSFER, f"unknown transfer mode {mode}")
            if cap_id in seen:
                raise TransportError(Err.BAD_TRANSFER, f"cap {cap_id:#x} named twice")
            seen.add(cap_id)
            parsed.append((cap_id, TransferMode(mode)))
        table = sender.table
        for cap_id, mode in parsed:  # validate everything before reserving anything
            entry = table.get(cap_id)
            if entry.policy is TransferPolicy.NON_TRANSFERABLE and (
                to_process or mode is TransferMode.MOVE
            ):
                raise TransportError(Err.BAD_TRANSFER, f"cap {cap_id:#x} is not transferable")
            if entry.policy is TransferPolicy.MOVE and mode is TransferMode.COPY:
                raise TransportError(Err.BAD_TRANSFER, f"cap {cap_id:#x} can only be moved")
        items = []
        for cap_id, mode in parsed:
            entry = table.reserve_move(cap_id) if mode is TransferMode.MOVE else table.get(cap_id)
            items.append(TransferItem(cap_id, entry, mode))
        return cls(sender, items)

    def deliver(
        self, receiver: Process, origin: Origin = Origin.IPC_TRANSFER
    ) -> list[tuple[int, int]]:
        """Insert every cap into `receiver`; on any failure insert none and re-raise.

        Returns the (cap_id, interface_id) records for the receiver's CQE.
        """
        inserted: list[int] = []
        try:
            for item in self.items:
                source = item.entry
                entry = CapEntry(
                    source.obj, source.interface_id, source.policy, origin, lease=source.lease
                )
                inserted.append(receiver.table.insert(entry))
        except BaseException:
            for cap_id in inserted:
                receiver.table.remove(cap_id)
            raise
        return [
            (cap_id, item.entry.interface_id)
            for cap_id, item in zip(inserted, self.items, strict=True)
        ]

    def commit(self) -> None:
        """The receiver has the caps: free the sender's moved slots."""
        self._finish(commit=True)

    def rollback(self) -> None:
        """Nothing was delivered: the sender's moved slots become usable again."""
        self._finish(commit=False)

    def _finish(self, *, commit: bool) -> None:
        if self.done:
            return
        self.done = True
        if not self.sender.alive:  # its table is gone, and every reservation with it
            return
        for item in self.items:
            if item.mode is TransferMode.MOVE:
                if commit:
                    self.sender.table.commit_move(item.cap_id)
                else:
                    self.sender.table.rollback_move(item.cap_id)


def finish(transfer: Transfer | None, *, commit: bool) -> None:
    """End an optional transfer; most calls carry none."""
    if transfer is not None:
        if commit:
            transfer.commit()
        else:
            transfer.rollback()
