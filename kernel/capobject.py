"""Kernel objects a capability can name, and schema-driven method dispatch.

`CapObject.invoke` is capOS's `CapObject::call`: the kernel has already
checked the cap (slot, generation, interface) and accepted the SQE; the
object answers through `ctx.reply` now or later. `KernelService` turns a
schema interface into Python methods: it decodes params with the bundle,
calls the method of the same name, and encodes what it returns.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from kernel.abi import Err
from kernel.codec import Bundle, DecodeError, EncodeError, decode, encode
from kernel.errors import CapError, TransportError
from kernel.ledger import Resource

if TYPE_CHECKING:
    from kernel.captable import CapEntry
    from kernel.codec.bundle import Method
    from kernel.completion import Reply
    from kernel.kernel import Kernel
    from kernel.process import Process
    from kernel.transfer import Transfer


class CapObject(ABC):
    interface_id: int = 0
    revoked: bool = False  # set when the object's server died: callers see `disconnected`
    # False: the kernel commits a call's transfer when invoke returns and rolls
    # it back when invoke raises. True: the object finishes it itself, later.
    takes_transfer: bool = False
    traced: bool = True  # calls on it enter the IPC trace (a SystemMonitor's do not)

    @abstractmethod
    def invoke(self, ctx: CallContext) -> None:
        """Answer through `ctx.reply`, now or later; raise CapError to fail the call."""

    def describe(self) -> str:
        return type(self).__name__

    def server_pid(self) -> int:
        """The pid serving calls on it; 0 when the kernel does."""
        return 0


@dataclass(slots=True)
class CallContext:
    kernel: Kernel
    caller: Process
    entry: CapEntry
    method_id: int
    interface_id: int
    params: bytes
    transfer: Transfer | None
    reply: Reply
    method: Method | None = None  # set by KernelService once resolved
    prereserved_caps: int = 0  # result cap slots a method charged before its side effects

    def reserve_result_caps(self, count: int) -> None:
        """Charge the caller's cap slots now, before the method does anything."""
        self.caller.ledger.reserve(Resource.CAP_SLOTS, count)
        self.prereserved_caps += count

    def require_result_room(self, results: dict[str, Any], cap_count: int) -> None:
        """Refuse with RESULT_TOO_SMALL now, before a side effect, if the answer cannot fit."""
        assert self.method is not None
        if not self.reply.fits(len(encode(self.method.results, results)), cap_count):
            raise TransportError(Err.RESULT_TOO_SMALL, "no room for the answer")

    def param_cap(self, index: int | None) -> CapEntry:
        """The cap a params capability pointer names (an index into the transfer)."""
        items = self.transfer.items if self.transfer else []
        if index is None or not 0 <= index < len(items):
            raise CapError.invalid_argument(f"capability #{index} was not sent with the call")
        return items[index].entry


class Pending:
    """What a KernelService method returns when it will answer later."""


PENDING = Pending()


class Waiter(Protocol):
    """What a kernel timer wakes: a Deferred, or an object that answers one its own way."""

    @property
    def live(self) -> bool: ...

    def resolve(self, results: dict[str, Any]) -> None: ...

    def cancel(self) -> None: ...


class Deferred:
    """A KernelService answer that arrives later (a timer, a child's exit, input)."""

    __slots__ = ("method", "reply")

    def __init__(self, reply: Reply, method: Method) -> None:
        self.reply = reply
        self.method = method

    @property
    def live(self) -> bool:
        return self.reply.live

    def resolve(self, results: dict[str, Any], caps: Iterable[CapEntry] = ()) -> None:
        self.reply.answer_with_caps(encode(self.method.results, results), list(caps))

    def fail(self, error: CapError) -> None:
        self.reply.fail(error)

    def cancel(self) -> None:
        self.reply.cancel()


class KernelService(CapObject):
    """A kernel object serving one schema interface by method name."""

    interface_name: ClassVar[str]

    def __init__(self) -> None:
        self.interface = Bundle.default().interface(self.interface_name)
        self.interface_id = self.interface.id

    def invoke(self, ctx: CallContext) -> None:
        method = self.interface.method_by_ordinal(ctx.method_id)
        if method is None:
            raise CapError.unimplemented(f"{self.interface_name} has no method @{ctx.method_id}")
        try:
            params = decode(method.params, ctx.params)
        except DecodeError as exc:
            raise CapError.invalid_argument(
                f"{self.interface_name}.{method.name}: malformed params: {exc}"
            ) from None
        ctx.method = method
        outcome = getattr(self, method.name)(ctx, params)
        if outcome is PENDING:
            return
        results, caps = outcome if isinstance(outcome, tuple) else (outcome or {}, [])
        try:
            message = encode(method.results, results)
        except EncodeError as exc:  # a kernel bug, reported rather than fatal
            raise CapError.failed(f"{self.interface_name}.{method.name}: {exc}") from None
        ctx.reply.answer_with_caps(message, caps, prereserved=ctx.prereserved_caps)

    @staticmethod
    def defer(ctx: CallContext) -> Deferred:
        assert ctx.method is not None
        return Deferred(ctx.reply, ctx.method)
