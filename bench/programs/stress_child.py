"""A stress spawner's child: one checked Echo call to its parent, then exit."""

from __future__ import annotations

from kernel.runtime import Runtime

WRONG_ANSWER = 3


def main(rt: Runtime) -> int:
    token = f"child {rt.pid}".encode()
    answer = rt.cap("parent", "Echo").echo(data=token)["data"]
    return 0 if answer == token else WRONG_ANSWER
