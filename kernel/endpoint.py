"""Endpoints: IPC between processes, with the kernel as the only go-between.

An endpoint keeps three queues: calls waiting for a receiver, receives
waiting for a call, and calls delivered but not yet answered (by call_id).
Its owner holds the raw `Endpoint` and may RECV and RETURN; everyone else
holds a `ClientFacet`, which may only CALL. When the owner dies the endpoint
is revoked: every queued and in-flight call, and every later one, fails with
`disconnected`.
"""

from __future__ import annotations

# hashlib's own blake2b, without hashlib: importing it loads OpenSSL, a cost at every guest
# boot, and every delivered call needs this hash.
from _blake2 import blake2b
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel import abi
from kernel.abi import Err
from kernel.capobject import CallContext, CapObject
from kernel.completion import Reply
from kernel.errors import CapError
from kernel.ledger import QuotaExceeded, Resource
from kernel.transfer import Transfer, finish

if TYPE_CHECKING:
    from kernel.process import Process, SessionContext

MAX_QUEUED_CALLS = 64  # per endpoint: a flood of callers gets `overloaded`, not memory
_BUFFER_BYTES = Resource.BUFFER_BYTES  # looked up once: every call reserves and releases


@dataclass(slots=True)
class QueuedCall:
    reply: Reply
    method_id: int
    interface_id: int
    params: bytes
    transfer: Transfer | None
    session: SessionContext


@dataclass(slots=True)
class InFlight:
    reply: Reply
    session: SessionContext


class Endpoint(CapObject):
    def __init__(self, endpoint_id: int, owner: Process, serves: int, secret: bytes) -> None:
        self.endpoint_id = endpoint_id
        self.owner = owner
        self.serves = serves  # the interface id its client facets carry
        self._secret = secret
        self.calls: deque[QueuedCall] = deque()
        self.recvs: deque[Reply] = deque()
        self.in_flight: dict[int, InFlight] = {}
        self._next_call_id = 1
        self.client = ClientFacet(self)
        self._refs: dict[bytes, tuple[int, int]] = {}

    def describe(self) -> str:
        return f"Endpoint #{self.endpoint_id} of pid {self.owner.pid}"

    def server_pid(self) -> int:
        return self.owner.pid

    def invoke(self, ctx: CallContext) -> None:
        raise CapError.unimplemented("an Endpoint is served with RECV and RETURN, not CALL")

    # --- client side ---------------------------------------------------------

    def enqueue(self, ctx: CallContext) -> None:
        if self.revoked:
            raise CapError.disconnected(f"endpoint #{self.endpoint_id}: its server has ended")
        if len(self.calls) >= MAX_QUEUED_CALLS:
            raise CapError.overloaded(
                f"endpoint #{self.endpoint_id} has {MAX_QUEUED_CALLS} calls waiting"
            )
        ctx.caller.ledger.reserve(_BUFFER_BYTES, len(ctx.params))
        self.calls.append(
            QueuedCall(
                ctx.reply,
                ctx.method_id,
                ctx.interface_id,
                ctx.params,
                ctx.transfer,
                ctx.caller.session,
            )
        )
        self.deliver()

    # --- server side ---------------------------------------------------------

    def receive(self, reply: Reply) -> None:
        self.recvs.append(reply)
        self.deliver()

    def answer(
        self,
        server: Process,
        call_id: int,
        message: bytes,
        transfer: Transfer | None,
        *,
        exception: bool,
    ) -> Err | None:
        """RETURN: hand `message` (and caps) to the caller of `call_id`.

        Returns None on success or the transport error for the server's own
        CQE: CALLER_GONE tells a server that kept something for this answer
        (a long-poll's messages) that nobody received it. The caps go back
        to the server whenever the caller cannot take them.
        """
        flight = self.in_flight.pop(call_id, None)
        if flight is None:
            finish(transfer, commit=False)
            return Err.BAD_CALL_ID
        reply = flight.reply
        if exception:  # an exception carries no caps
            finish(transfer, commit=False)
            transfer = None
        if not reply.live:  # the caller ended while we worked: nobody to answer
            reply.cancel()
            finish(transfer, commit=False)
            return Err.CALLER_GONE
        ncaps = len(transfer.items) if transfer else 0
        if not reply.fits(len(message), ncaps):
            finish(transfer, commit=False)
            reply.transport(Err.RESULT_TOO_SMALL)
            return Err.RESULT_TOO_SMALL
        records: list[tuple[int, int]] = []
        if transfer is not None:
            try:
                records = transfer.deliver(reply.proc)
            except QuotaExceeded as exc:
                transfer.rollback()
                reply.fail(CapError.overloaded(f"the answer carried {ncaps} caps: {exc.message}"))
                return Err.QUOTA
            transfer.commit()
        if exception:
            reply.write(0, message)
            reply.post(Err.APPLICATION_EXCEPTION, exception_len=len(message))
        else:
            reply.answer(message, records)
        return None

    # --- matching --------------------------------------------------------------

    def deliver(self) -> None:
        """Pair waiting calls with waiting receives until one queue is empty."""
        calls, recvs = self.calls, self.recvs
        while calls and recvs:
            recv = recvs[0]
            if not recv.live:
                recvs.popleft().cancel()
                continue
            call = calls[0]
            if not call.reply.live:  # the caller ended while queued
                calls.popleft()
                self._drop(call)
                continue
            ncaps = len(call.transfer.items) if call.transfer else 0
            needed = abi.RECV_HEADER_SIZE + len(call.params)
            total = abi.align8(needed) + ncaps * abi.CAP_RECORD_SIZE
            if total > self.owner.ring.buffer_size:  # no RECV could ever take it
                calls.popleft()
                self._drop(call)
                call.reply.fail(
                    CapError.invalid_argument(
                        f"a {total}-byte call cannot fit the server's {self.owner.ring.buffer_size}"
                        "-byte buffer area"
                    )
                )
                continue
            if not recv.fits(needed, ncaps):
                # The call waits for the next RECV; call_id says how big that must be.
                recvs.popleft().post(Err.RESULT_TOO_SMALL, call_id=total)
                continue
            calls.popleft()
            records: list[tuple[int, int]] = []
            if call.transfer is not None:
                try:
                    records = call.transfer.deliver(self.owner)
                except QuotaExceeded as exc:
                    self._drop(call)
                    call.reply.fail(
                        CapError.overloaded(
                            f"the server could not take {ncaps} caps: {exc.message}"
                        )
                    )
                    continue
                call.transfer.commit()
            recvs.popleft()
            call.reply.proc.ledger.release(_BUFFER_BYTES, len(call.params))
            call_id = self._next_call_id
            self._next_call_id += 1
            self.in_flight[call_id] = InFlight(call.reply, call.session)
            ref_lo, ref_hi = self._scoped_ref(call.session)
            header = abi.RECV_HEADER.pack(
                call_id,
                call.interface_id,
                call.method_id,
                0,
                len(call.params),
                ref_lo,
                ref_hi,
                call.session.epoch,
            )
            recv.write(0, header + call.params)
            recv.post(needed, call_id=call_id, records=records)

    def _drop(self, call: QueuedCall) -> None:
        """A queued call that will never be delivered: give back what it holds."""
        finish(call.transfer, commit=False)
        call.reply.proc.ledger.release(_BUFFER_BYTES, len(call.params))
        if not call.reply.live:
            call.reply.cancel()

    def _scoped_ref(self, session: SessionContext) -> tuple[int, int]:
        """The caller's session as this endpoint sees it: opaque, not portable."""
        cached = self._refs.get(session.session_id)
        if cached is None:
            digest = blake2b(
                self.endpoint_id.to_bytes(8, "little") + session.session_id,
                key=self._secret,
                digest_size=16,
            ).digest()
            cached = (int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little"))
            self._refs[session.session_id] = cached
        return cached

    # --- revocation ---------------------------------------------------------------

    def revoke(self) -> None:
        """The owner ended: fail everything queued or in flight, and all later calls."""
        self.revoked = True
        self.client.revoked = True
        gone = CapError.disconnected(f"endpoint #{self.endpoint_id}: its server has ended")
        while self.calls:
            call = self.calls.popleft()
            self._drop(call)
            call.reply.fail(gone)
        for flight in self.in_flight.values():
            flight.reply.fail(gone)
        self.in_flight.clear()
        while self.recvs:  # a still-running owner is owed a completion for each
            self.recvs.popleft().transport(Err.CANCELLED)


class ClientFacet(CapObject):
    """What importers hold: CALL only, forwarded into the endpoint's queue."""

    takes_transfer = True  # the caps stay reserved in the caller until delivery

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def describe(self) -> str:
        return f"ClientEndpoint of #{self.endpoint.endpoint_id}"

    def server_pid(self) -> int:
        return self.endpoint.owner.pid

    def invoke(self, ctx: CallContext) -> None:
        self.endpoint.enqueue(ctx)
