"""Calls Echo once and prints the outcome: the answer, or the exception type."""

from kernel.runtime import RemoteError, Runtime


def main(rt: Runtime) -> int:
    console = rt.cap("console", "Console")
    try:
        answer = rt.cap("echo", "Echo").echo(data=b"once")["data"]
        console.writeLine(text=f"echo_once: {answer.decode()}")
    except RemoteError as exc:
        console.writeLine(text=f"echo_once: {exc.type}")
    return 0
