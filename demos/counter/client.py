"""counter: the terminal client of the counter.

Caps: `stdio` (StdIO) and `counter` (Counter). Commands: `inc [n]` adds
n (1 by default), `get` shows the value, `exit` (or end of input) quits.
"""

from __future__ import annotations

import contextlib

from demos.terminal_client import Terminal, printable
from kernel.runtime import Cap, RemoteError, Runtime, TransportFailure

TAG = "[counter]"
USAGE = f"{TAG} inc [n], get, exit"


class CounterClient:
    def __init__(self, term: Terminal, counter: Cap) -> None:
        self.term = term
        self.counter = counter

    def on_line(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        try:
            if words[0] == "get" and len(words) == 1:
                self.term.say(f"{TAG} {self.counter.get()['value']:,}")
            elif words[0] == "inc" and len(words) <= 2:
                by = words[1] if len(words) == 2 else "1"
                if not (by.isascii() and by.isdigit()) or len(by) > 9:
                    self.term.say(f"{TAG} inc takes a whole number, like inc 5")
                    return
                self.term.say(f"{TAG} {self.counter.increment(by=int(by))['value']:,}")
            else:
                self.term.say(USAGE)
        except RemoteError as exc:
            if exc.type == "disconnected":
                raise
            self.term.say(f"{TAG} {printable(exc.message)}")


def main(rt: Runtime) -> int:
    term = Terminal(rt, rt.cap("stdio", "StdIO"))
    client = CounterClient(term, rt.cap("counter", "Counter"))
    term.say(USAGE)
    try:
        term.loop(lambda: f"{TAG}> ", client.on_line)
    except (RemoteError, TransportFailure) as exc:
        with contextlib.suppress(RemoteError, TransportFailure):
            term.say(f"{TAG} the counter is gone: {printable(str(exc))}")
        return 1
    return 0
