"""What a failed call looks like to a program: one exception per error layer."""

from __future__ import annotations

from kernel.abi import Err


class TransportFailure(Exception):
    """Layer one: the kernel refused the SQE (a negative CQE result)."""

    def __init__(self, code: int, what: str = "") -> None:
        try:
            name = Err(code).name
        except ValueError:
            name = f"error {code}"
        super().__init__(f"{what}: transport error {name}" if what else f"transport error {name}")
        self.code = code


class RemoteError(Exception):
    """Layer two: a CapException from a live target."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message


class ProcessEnded(BaseException):
    """The kernel ended this process (killed, or its ring is dead): unwind now.

    A BaseException so that `except Exception` in program code cannot
    swallow it and keep a dead process running.
    """
