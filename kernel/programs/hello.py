"""hello: greets through Console, shows the MOTD, and round-trips Echo."""

from __future__ import annotations

from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    console = rt.cap("console", "Console")
    console.writeLine(text=rt.cap("info", "SystemInfo").motd()["text"].strip())
    answer = rt.cap("echo", "Echo").echo(data=b"hello through an endpoint")["data"]
    console.writeLine(text=f"hello: echo answered {answer.decode()!r}")
    return 0
