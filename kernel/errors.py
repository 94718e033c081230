"""The kernel's two error layers below the schema's own result unions.

`TransportError` becomes a negative CQE result: the request never reached a
live target. `CapError` is a `CapException` for a valid target that failed;
the kernel encodes it into the caller's result buffer. Neither is ever
allowed to escape the dispatcher: a hostile SQE costs its sender a
completion, never the kernel its life.
"""

from __future__ import annotations

from enum import StrEnum

from kernel.abi import Err


class ExceptionType(StrEnum):
    """Mirrors the schema's `ExceptionType` enumerants by name."""

    FAILED = "failed"
    OVERLOADED = "overloaded"
    DISCONNECTED = "disconnected"
    UNIMPLEMENTED = "unimplemented"
    INVALID_ARGUMENT = "invalidArgument"


class TransportError(Exception):
    def __init__(self, code: Err, detail: str = "") -> None:
        super().__init__(f"{code.name}: {detail}" if detail else code.name)
        self.code = code
        self.detail = detail


class CapError(Exception):
    """A CapException raised by (or on behalf of) a live target."""

    def __init__(self, type: ExceptionType, message: str) -> None:
        super().__init__(f"{type.value}: {message}")
        self.type = type
        self.message = message

    @classmethod
    def failed(cls, message: str) -> CapError:
        return cls(ExceptionType.FAILED, message)

    @classmethod
    def overloaded(cls, message: str) -> CapError:
        return cls(ExceptionType.OVERLOADED, message)

    @classmethod
    def disconnected(cls, message: str) -> CapError:
        return cls(ExceptionType.DISCONNECTED, message)

    @classmethod
    def unimplemented(cls, message: str) -> CapError:
        return cls(ExceptionType.UNIMPLEMENTED, message)

    @classmethod
    def invalid_argument(cls, message: str) -> CapError:
        return cls(ExceptionType.INVALID_ARGUMENT, message)
