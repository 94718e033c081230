"""passphrase: asks for a passphrase twice with echo off, and says whether they matched.

    run "passphrase" with { stdio: client @stdio }

The program that turns the terminal's echo off: its `readLine` asks the shell for a
hidden line, so the shell's line editor shows nothing of what is typed and keeps it out
of history. It never shows the passphrase either: only its length, or that the two
differed.
"""

from __future__ import annotations

from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    stdio = rt.cap("stdio", "StdIO")

    def say(text: str) -> None:
        stdio.write(data=(text + "\n").encode())

    first = stdio.readLine(prompt="passphrase> ", hidden=True)
    if first["eof"]:
        say("passphrase: end of input")
        return 1
    again = stdio.readLine(prompt="again> ", hidden=True)
    if again["eof"] or again["line"] != first["line"]:
        say("passphrase: the two differ")
        return 1
    say(f"passphrase: they match ({len(first['line'])} characters)")
    return 0
