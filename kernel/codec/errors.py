"""The two exceptions the codec raises: one for bad bytes, one for bad values."""

from __future__ import annotations


class DecodeError(ValueError):
    """The bytes are not a valid message for the requested struct.

    This is the ONLY exception `decode` raises, for any input whatsoever
    (truncated or hostile bytes, out-of-bounds pointers, limits exceeded,
    invalid UTF-8, ...): callers on the ring hot path catch exactly this one
    and answer with an error instead of crashing the kernel.
    """


class EncodeError(ValueError):
    """A value does not fit the schema (unknown field, wrong type, out of range).

    `path` names where in the value the problem is (field names and list
    indices, outermost first) so the message points at the culprit.
    """

    def __init__(self, message: str, path: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = path if path is not None else []

    def __str__(self) -> str:
        if not self.path:
            return self.message
        where = ""
        for part in self.path:
            where += part if part.startswith("[") or not where else "." + part
        return f"{where}: {self.message}"
