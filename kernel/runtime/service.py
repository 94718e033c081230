"""Serving an interface on an endpoint: the loop every server runs.

A handler gets `(call, **params)` and returns a results dict, raises
`RemoteError` to send a CapException, or returns `LATER` to keep the call
parked (a long-poll) and answer it afterwards with `answer` or `fail`.
`call.scoped_ref` is the caller's session as this endpoint sees it.

It survives callers that misbehave: a call too big for the receive buffer
is taken into one that fits (the kernel says how big) and refused if it
is over `max_params`; a bug in a handler comes back to its caller as
`failed` instead of ending the server; an answer to a caller that has gone
is dropped. Each RETURN goes to the kernel in the same cap_enter as the
next RECV, so a call costs the server one kernel entry, not two: whether
the caller took an answer is known only then, so `answer` takes an
`on_refused` to run in the loop if it did not (a long-poll's server keeps
what it would have lost).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel.abi import Err, TransferMode
from kernel.codec import DecodeError, Method, decode, encode
from kernel.runtime.errors import RemoteError, TransportFailure
from kernel.runtime.runtime import PendingReturn, _swap_caps_out

if TYPE_CHECKING:
    from kernel.runtime.runtime import Cap, Incoming, Pending, Runtime

LATER = object()  # a handler's "I will answer this call later"
OnRefused = Callable[[], None]  # what to do if an answer's caller could not take it
RECV_SIZE = 8 * 1024
MAX_PARAMS = 16 * 1024  # bigger calls are refused (a service taking bulk data raises it)
MAX_ERRORS_KEPT = 16


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

    @property
    def caps(self) -> list[Cap]:
        return self.incoming.caps


class ServiceLoop:
    def __init__(
        self,
        rt: Runtime,
        endpoint: Cap,
        interface: str,
        impl: object,
        *,
        on_idle: Callable[[], None] | None = None,
        max_params: int | None = MAX_PARAMS,
    ) -> None:
        self.rt = rt
        self.endpoint = endpoint
        self.interface = rt.bundle.interface(interface)
        self.impl = impl
        self.on_idle = on_idle
        self.max_params = max_params  # None: as large as the buffer area allows
        self.idle_ns: int | None = None  # set to wake `on_idle` after this much quiet
        self.errors: list[str] = []  # handler bugs, kept for diagnostics (bounded)
        self.refused_answers = 0  # RETURNs whose caller could not take them
        self._posted: tuple[int, int] | None = None  # the RECV in flight: (ud, addr)
        # RETURNs not yet collected, each with what to do if its caller could not take it
        self._returns: list[tuple[PendingReturn, OnRefused | None]] = []
        self._watched: dict[int, tuple[Pending, Callable[[Pending], None]]] = {}
        self._handlers: dict[int, tuple[Method, Callable[..., Any]]] = {}  # by ordinal

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        while not until():
            incoming = self._receive()
            if incoming is not None:
                self._dispatch(incoming)

    def watch(self, pending: Pending, on_done: Callable[[Pending], None]) -> None:
        """Run `on_done(pending)` in this loop when a call the server made completes:
        how a server relays a slow call (a long-poll) without blocking other callers."""
        self._watched[pending.user_data] = (pending, on_done)

    def _run_watched(self) -> None:
        for user_data in [ud for ud in self._watched if self.rt.done(ud)]:
            pending, on_done = self._watched.pop(user_data)
            on_done(pending)

    # --- answering --------------------------------------------------------------------

    def answer(
        self, call: Call, results: dict[str, Any], on_refused: OnRefused | None = None
    ) -> None:
        """Answer a call (now, or a parked one later). `on_refused` runs in this loop
        once the kernel says the caller could not take the answer (it had ended, or
        its result buffer was too small): the answer is lost unless its maker keeps it."""
        sent: list[tuple[Cap, TransferMode]] = []
        message = encode(call.method.results, _swap_caps_out(results, sent))
        self._return(call.incoming, message, sent, exception=False, on_refused=on_refused)

    def fail(self, call: Call | Incoming, error: RemoteError) -> None:
        incoming = call.incoming if isinstance(call, Call) else call
        value = {"type": error.type, "message": error.message[:512]}
        message = encode(self.rt.bundle.struct("CapException"), value)
        self._return(incoming, message, [], exception=True)

    def _return(
        self,
        incoming: Incoming,
        message: bytes,
        sent: list,
        *,
        exception: bool,
        on_refused: OnRefused | None = None,
    ) -> None:
        """Queue the RETURN; its completion is collected with the next RECV's."""
        pending = self.rt.submit_return(
            self.endpoint, incoming.call_id, message, sent, exception=exception
        )
        self._returns.append((pending, on_refused))

    def _collect_returns(self) -> None:
        if not self._returns:
            return
        for entry in list(self._returns):
            pending, on_refused = entry
            try:
                if not self.rt.collect_return(pending):
                    continue
            except TransportFailure:
                self.refused_answers += 1
                if on_refused is not None:
                    on_refused()
            self._returns.remove(entry)

    # --- receiving --------------------------------------------------------------------

    def _receive(self) -> Incoming | None:
        """The next call, or None (after `on_idle`) when `idle_ns` pass without one."""
        rt = self.rt
        if self._posted is None:
            self._posted = rt.recv_submit(self.endpoint, RECV_SIZE)
        user_data, addr = self._posted
        if self._watched:
            first = rt.ready([user_data, *self._watched], self.idle_ns)
            self._collect_returns()
            self._run_watched()
            if first is None and self.on_idle is not None:
                self.on_idle()
            if not rt.done(user_data):
                return None
        # RETURN completions come at once, the RECV when a caller does: wait for all.
        returns = [pending.user_data for pending, _ in self._returns]
        cqe = rt.wait_for(user_data, also=returns, timeout_ns=self.idle_ns)
        self._collect_returns()
        if cqe is None:
            if self.on_idle is not None:
                self.on_idle()
            return None  # the RECV stays posted for the next round
        self._posted = None
        if cqe.result == Err.RESULT_TOO_SMALL and cqe.call_id:
            rt.arena.free(addr)  # a big call: take it into a buffer it fits
            self._posted = rt.recv_submit(self.endpoint, cqe.call_id)
            return None
        return rt.recv_complete(cqe, addr)

    def _handler(self, method_id: int) -> tuple[Method, Callable[..., Any]] | None:
        """The method and `impl`'s handler for it, looked up once per method."""
        found = self._handlers.get(method_id)
        if found is None:
            method = self.interface.method_by_ordinal(method_id)
            handler = getattr(self.impl, method.name, None) if method is not None else None
            if method is None or handler is None:
                return None  # not cached: a caller can name any of 65536 ordinals
            found = self._handlers[method_id] = (method, handler)
        return found

    def _dispatch(self, incoming: Incoming) -> None:
        found = self._handler(incoming.method_id)
        if found is None:
            self.fail(
                incoming,
                RemoteError(
                    "unimplemented", f"{self.interface.name} has no method @{incoming.method_id}"
                ),
            )
            return
        method, handler = found
        call = Call(incoming, method)
        try:
            if self.max_params is not None and len(incoming.params) > self.max_params:
                raise RemoteError(
                    "invalidArgument", f"params of {len(incoming.params)} bytes are too large"
                )
            try:
                params = decode(method.params, incoming.params)
            except DecodeError as exc:
                raise RemoteError("invalidArgument", f"malformed params: {exc}") from None
            results = handler(call, **params)
            if results is LATER:
                return
            self.answer(call, results or {})
        except RemoteError as exc:
            self.fail(call, exc)
        except Exception:  # a bug here must not end a service other sessions use
            if len(self.errors) < MAX_ERRORS_KEPT:
                self.errors.append(traceback.format_exc())
            self.fail(call, RemoteError("failed", f"{method.name} failed inside the server"))
