"""echo-server: serves Echo on the endpoint it exports, forever."""

from __future__ import annotations

from kernel.runtime import Runtime


class EchoService:
    def echo(self, incoming: object, data: bytes) -> dict:
        return {"data": data}


def main(rt: Runtime) -> int:
    rt.serve(rt.cap("echo", "Endpoint"), "Echo", EchoService())
    return 0
