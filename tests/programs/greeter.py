"""Reads lines from its StdIO and greets each, until `bye` or end of input."""

from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    stdio = rt.cap("stdio", "StdIO")
    stdio.write(data=b"greeter ready\n")
    while True:
        answer = stdio.readLine(prompt="name? ")
        if answer["eof"]:
            stdio.write(data=b"greeter: end of input\n")
            return 0
        if answer["line"] == "bye":
            return 3
        stdio.write(data=f"hello, {answer['line']}!\n".encode())
