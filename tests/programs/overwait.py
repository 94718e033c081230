"""Asks cap_enter for more completions than it has calls outstanding."""

from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    console = rt.cap("console", "Console")
    console.writeLine(text="overwait: waiting for 5 with none outstanding")
    available = rt.syscalls.cap_enter(5, None)
    console.writeLine(text=f"overwait: returned with {available}")
    return 0
