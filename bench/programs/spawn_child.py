"""The child spawn_probe times: one call to its parent, then exit."""

from __future__ import annotations

from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    rt.cap("parent", "Echo").echo(data=b"")
    return 0
