"""Reply: a submitted CALL or RECV that is owed exactly one completion.

A Reply holds one unit of the submitter's `outstanding_calls` quota from the
moment its SQE is accepted until its CQE is posted or the submitter dies,
whichever comes first; every path gives the unit back exactly once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kernel import abi
from kernel.abi import CqeFlags, Err
from kernel.captable import CapEntry
from kernel.codec import Bundle, encode
from kernel.errors import CapError, TransportError
from kernel.ledger import QuotaExceeded, Resource

if TYPE_CHECKING:
    from kernel.monitor import CallTrace
    from kernel.process import Process

EXCEPTION_MESSAGE_MAX = 1024
_OUTSTANDING = Resource.OUTSTANDING_CALLS  # looked up once: every call reserves and releases
_CAPS = int(CqeFlags.CAPS)


@functools.cache
def _exception_struct():
    return Bundle.default().struct("CapException")


def encode_exception(error: CapError) -> bytes:
    message = error.message[:EXCEPTION_MESSAGE_MAX]
    return encode(_exception_struct(), {"type": error.type.value, "message": message})


class Reply:
    __slots__ = ("done", "proc", "result_addr", "result_len", "trace", "user_data")

    def __init__(self, proc: Process, user_data: int, result_addr: int, result_len: int) -> None:
        if not proc.ring.buffer_range_ok(result_addr, result_len):
            raise TransportError(Err.BAD_BUFFER, "result range outside the buffer area")
        try:
            proc.ledger.reserve(_OUTSTANDING)
        except QuotaExceeded as exc:
            raise TransportError(Err.QUOTA, exc.message) from None
        self.proc = proc
        self.user_data = user_data
        self.result_addr = result_addr
        self.result_len = result_len
        self.done = False
        self.trace: CallTrace | None = None  # set by the kernel when the IPC trace is on
        proc.replies.add(self)

    @property
    def live(self) -> bool:
        return not self.done and self.proc.alive

    def fits(self, message_len: int, cap_count: int) -> bool:
        return ((message_len + 7) & ~7) + cap_count * abi.CAP_RECORD_SIZE <= self.result_len

    def write(self, offset: int, data: bytes) -> None:
        """Copy into the result buffer; callers checked `fits` first."""
        self.proc.ring.write(abi.BUFFER_OFFSET + self.result_addr + offset, data)

    def post(
        self,
        result: int,
        *,
        call_id: int = 0,
        records: Sequence[tuple[int, int]] = (),
        exception_len: int = 0,
    ) -> None:
        """Post the CQE, with transfer records written after `result` bytes."""
        if not self._finish():
            return
        if self.trace is not None:
            self.trace.finish(result)
        caps_addr = 0
        flags = 0
        if records:
            offset = abi.align8(result)
            caps_addr = self.result_addr + offset
            self.write(offset, b"".join(abi.CAP_RECORD.pack(c, 0, i) for c, i in records))
            flags = _CAPS
        self.proc.post(
            (self.user_data, result, flags, len(records), call_id, caps_addr, exception_len)
        )

    def answer(self, message: bytes, records: Sequence[tuple[int, int]] = ()) -> None:
        """Deliver results whose caps are already in the caller's table."""
        self.write(0, message)
        self.post(len(message), records=records)

    def answer_with_caps(
        self, message: bytes, entries: list[CapEntry], *, prereserved: int = 0
    ) -> None:
        """Insert result caps into the caller's table, then deliver.

        `prereserved` slots were charged before the side effect that made
        the caps; a failure here removes what was inserted and fails the call.
        """
        if not self.fits(len(message), len(entries)):
            self.proc.ledger.release(Resource.CAP_SLOTS, prereserved)
            self.transport(Err.RESULT_TOO_SMALL)
            return
        table = self.proc.table
        inserted: list[int] = []
        try:
            for index, entry in enumerate(entries):
                inserted.append(table.insert(entry, prereserved=index < prereserved))
        except QuotaExceeded as exc:
            for cap_id in inserted:
                table.remove(cap_id)
            self.proc.ledger.release(Resource.CAP_SLOTS, max(0, prereserved - len(inserted)))
            self.fail(exc)
            return
        self.answer(message, [(c, e.interface_id) for c, e in zip(inserted, entries, strict=True)])

    def fail(self, error: CapError) -> None:
        """Layer two: a CapException in the result buffer."""
        if not self.live:
            self._finish()
            return
        data = encode_exception(error)
        if len(data) > self.result_len:
            self.post(Err.APPLICATION_EXCEPTION_TRUNCATED)
            return
        self.write(0, data)
        self.post(Err.APPLICATION_EXCEPTION, exception_len=len(data))

    def transport(self, code: Err) -> None:
        """Layer one: a negative result."""
        self.post(code)

    def cancel(self) -> None:
        """The submitter is gone: give the quota back, post nothing."""
        self._finish()

    def _finish(self) -> bool:
        """Mark answered and give the quota back; False if there is nobody to tell."""
        if self.done:
            return False
        self.done = True
        proc = self.proc
        proc.replies.discard(self)
        proc.ledger.release(_OUTSTANDING)
        return proc.alive
