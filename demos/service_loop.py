"""The call loop every demo server runs: `Runtime.serve`, plus answers that come later.

A handler gets `(call, **params)` and returns a results dict, raises
`RemoteError` to send a CapException, or returns `LATER` to keep the call
parked (a long-poll) and answer it afterwards with `ServiceLoop.answer`.
`call.scoped_ref` is the caller's session as this endpoint sees it.

It also survives callers that misbehave: params too large for the receive
buffer are drained into a bigger one and refused, a bug in a handler comes
back to its caller as `failed` instead of ending the server, and an answer
to a caller that has gone away is dropped.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernel.abi import Err
from kernel.codec import DecodeError, Method, decode, encode
from kernel.runtime import Cap, Incoming, RemoteError, Runtime, TransportFailure

LATER = object()  # a handler's "I will answer this call later"

RECV_SIZE = 8 * 1024
MAX_PARAMS = 4 * 1024  # demo params are short; anything bigger is refused unread


@dataclass(slots=True)
class Call:
    """One incoming call, as handlers see it."""

    incoming: Incoming
    method: Method

    @property
    def scoped_ref(self) -> int:
        return self.incoming.scoped_ref

    @property
    def session_epoch(self) -> int:
        return self.incoming.session_epoch


class ServiceLoop:
    def __init__(
        self,
        rt: Runtime,
        endpoint: Cap,
        interface: str,
        impl: object,
        *,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.rt = rt
        self.endpoint = endpoint
        self.interface = rt.bundle.interface(interface)
        self.impl = impl
        self.on_idle = on_idle
        self.idle_ns: int | None = None  # set to wake `on_idle` after this much quiet
        self.errors: list[str] = []  # handler bugs, kept for diagnostics (bounded)
        self._posted: tuple[int, int, int] | None = None  # the RECV in flight

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        while not until():
            incoming = self._receive()
            if incoming is not None:
                self._dispatch(incoming)

    # --- answering --------------------------------------------------------------------

    def answer(self, call: Call, results: dict[str, Any]) -> bool:
        """Answer a call now; False if its caller could not take the answer."""
        return self._return(call.incoming, encode(call.method.results, results), False)

    def fail(self, call: Call, error: RemoteError) -> bool:
        return self._return(call.incoming, self._exception(error), True)

    def _exception(self, error: RemoteError) -> bytes:
        value = {"type": error.type, "message": error.message[:512]}
        return encode(self.rt.bundle.struct("CapException"), value)

    def _return(self, incoming: Incoming, message: bytes, exception: bool) -> bool:
        try:
            self.rt.return_(self.endpoint, incoming.call_id, message, exception=exception)
        except TransportFailure:
            return False
        return True

    # --- receiving --------------------------------------------------------------------

    def _receive(self) -> Incoming | None:
        """The next call, or None (after `on_idle`) when `idle_ns` pass without one."""
        rt = self.rt
        if self._posted is None:
            self._posted = (*rt.recv_submit(self.endpoint, RECV_SIZE), RECV_SIZE)
        user_data, addr, size = self._posted
        cqe = rt.wait_any([user_data], self.idle_ns)
        if cqe is None:  # the RECV stays posted for the next round
            if self.on_idle is not None:
                self.on_idle()
            return None
        self._posted = None
        try:
            return rt.recv_complete(cqe, addr)
        except TransportFailure as exc:
            if exc.code != Err.RESULT_TOO_SMALL or size != RECV_SIZE:
                raise  # not even the whole buffer area holds it: the endpoint is wedged
            # Drain the oversized call into the whole buffer area; _dispatch refuses it.
            big = rt.arena.size
            self._posted = (*rt.recv_submit(self.endpoint, big), big)
            return None

    def _dispatch(self, incoming: Incoming) -> None:
        method = self.interface.method_by_ordinal(incoming.method_id)
        if method is None or not hasattr(self.impl, method.name):
            error = RemoteError(
                "unimplemented", f"{self.interface.name} has no method @{incoming.method_id}"
            )
            self._return(incoming, self._exception(error), True)
            return
        call = Call(incoming, method)
        try:
            if len(incoming.params) > MAX_PARAMS:
                raise RemoteError(
                    "invalidArgument", f"params of {len(incoming.params)} bytes are too large"
                )
            try:
                params = decode(method.params, incoming.params)
            except DecodeError as exc:
                raise RemoteError("invalidArgument", f"malformed params: {exc}") from None
            results = getattr(self.impl, method.name)(call, **params)
            if results is LATER:
                return
            message = encode(method.results, results or {})
        except RemoteError as exc:
            self.fail(call, exc)
            return
        except Exception:  # a bug here must not end a service other sessions use
            if len(self.errors) < 16:
                self.errors.append(traceback.format_exc())
            self.fail(call, RemoteError("failed", f"{method.name} failed inside the server"))
            return
        self._return(incoming, message, False)
