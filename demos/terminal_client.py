"""The loop every interactive demo client runs: the user's next line and the server's
next event, waited for at once.

A client holds a `StdIO` cap from the shell. It keeps one `readLine` in
flight and, when it has one, one long-poll to its server (`chat.next`);
`Runtime.first` returns whichever completes first, so a message that
arrives while the user is typing is printed at once and the same
`readLine` stays outstanding. The loop ends on end of input, `exit` or
`/exit`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernel.runtime import Cap, Pending, RemoteError, Runtime, TransportFailure

EXIT_WORDS = frozenset({"exit", "/exit"})
WRITE_CHUNK = 2048  # bytes a write: shells receive StdIO calls into small buffers


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    eof: bool


@dataclass(frozen=True, slots=True)
class Event:
    results: dict[str, Any]


class ServerGone(Exception):
    """The server behind a long-poll or a call has ended or failed for good."""


def printable(text: str) -> str:
    """Text from elsewhere, safe for a terminal: control characters become '?'."""
    return "".join("?" if unicodedata.category(ch) == "Cc" and ch != "\n" else ch for ch in text)


class Terminal:
    def __init__(self, rt: Runtime, stdio: Cap) -> None:
        self.rt = rt
        self.stdio = stdio
        self._line: Pending | None = None
        self._poll: Pending | None = None

    def write(self, text: str) -> None:
        """Write text in chunks of at most WRITE_CHUNK bytes, cut after a newline
        where possible and never inside a UTF-8 character."""
        data = text.encode()
        start = 0
        while start < len(data):
            end = min(len(data), start + WRITE_CHUNK)
            if end < len(data):
                newline = data.rfind(b"\n", start, end)
                if newline >= start:
                    end = newline + 1
                else:
                    while data[end] & 0xC0 == 0x80:  # a continuation byte: back up
                        end -= 1
            self.stdio.write(data=data[start:end])
            start = end

    def say(self, *lines: str) -> None:
        """Write whole lines (nothing at all for none)."""
        if lines:
            self.write("".join(line + "\n" for line in lines))

    def next(self, prompt: str, poll: Callable[[], Pending | None] | None = None) -> Line | Event:
        """The user's next line, or the long-poll's answer if that comes first.

        `poll` starts a long-poll when none is in flight (it may return None
        for "nothing to wait for"). A failed long-poll raises ServerGone.
        """
        rt = self.rt
        if self._line is None:
            self._line = rt.begin(self.stdio, "readLine", {"prompt": prompt})
        if self._poll is None and poll is not None:
            self._poll = poll()
        done = rt.first([p for p in (self._line, self._poll) if p is not None])
        if done is self._line:
            self._line = None
            result = rt.result(done)
            return Line(result["line"], bool(result["eof"]))
        self._poll = None
        try:
            return Event(rt.result(done))
        except (RemoteError, TransportFailure) as exc:
            raise ServerGone(str(exc)) from None

    def loop(
        self,
        prompt: Callable[[], str],
        on_line: Callable[[str], bool | None],
        *,
        poll: Callable[[], Pending | None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Read lines until end of input or an exit word; `on_line` returns False to stop."""
        while True:
            event = self.next(prompt(), poll)
            if isinstance(event, Event):
                if on_event is not None:
                    on_event(event.results)
                continue
            if event.eof:
                return
            line = event.text.strip()
            if line in EXIT_WORDS or on_line(line) is False:
                return

    def close(self) -> None:
        """Stop waiting for whatever is in flight (answers are dropped when they come)."""
        for pending in (self._line, self._poll):
            if pending is not None:
                self.rt.abandon(pending)
        self._line = self._poll = None
