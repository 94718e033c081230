"""What a share link holds: a narrower object over a live session, not a flag.

The terminal protocol (server/terminal.py) serves any object with `stream`,
`attached()`, `input()` and `resize()`. A view link gets a `ViewTerminal`,
whose `input` refuses, so a view link cannot type however its page is
changed; a drive link gets a `DriveTerminal`, which passes keystrokes on, and so does an
agent link (its agent may type through terminal_write anyway).
Neither may resize: the owner's terminal sets the size everyone sees.
"""

from __future__ import annotations

import contextlib

from server.sessions.live import LiveSession, SessionError


class ViewTerminal:
    """Read-only: the session's output and nothing else."""

    def __init__(self, session: LiveSession) -> None:
        self._session = session
        self.stream = session.stream

    def attached(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._session.attached()

    def input(self, data: bytes) -> None:
        raise SessionError("this is a view link: it shows the session but cannot type", 403)

    async def resize(self, cols: int, rows: int) -> None:
        raise SessionError("a share link cannot resize the session; its owner sets the size", 403)


class DriveTerminal(ViewTerminal):
    """Can type into the session as its owner does."""

    def input(self, data: bytes) -> None:
        self._session.input(data)


def facet_for(mode: str, session: LiveSession) -> ViewTerminal:
    return {"view": ViewTerminal, "drive": DriveTerminal, "agent": DriveTerminal}[mode](session)
