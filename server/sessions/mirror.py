"""A mirror: a session another replica hosts, as seen here, for the viewers connected here.

Its output stream is fed from the host's Redis stream at the host's offsets, so a
viewer's offsets mean the same on every replica; its input goes back through Redis.
Its own work (`serve`) is following that stream and sending that input, both through
`Replicas`, which retries while Redis is away: the mirror resumes from the last entry
it read, and output it already has (a publisher that wrote an entry twice across a
reconnect) is skipped by offset, so nothing is lost or shown twice. A mirror nobody
watches for a while ends.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from server.sessions.live import LiveSession, SessionError
from server.stream import OutputStream
from server.supervise import any_set, race

if TYPE_CHECKING:
    from server.replicas import Replicas

MIRROR_IDLE_S = 30.0  # a mirror with no viewers this long ends
UNWATCHED = "no viewer left on this replica"


class Mirror(LiveSession):
    backend = "mirror"

    def __init__(self, session_id: str, scrollback: int, replicas: Replicas) -> None:
        super().__init__(OutputStream(scrollback), session_id)
        self.replicas = replicas
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue(256)
        self.last_entry: bytes | str = "0-0"  # the last Redis stream entry taken
        self._positioned = False

    def input(self, data: bytes) -> None:
        self.observe("i", data.decode(errors="replace"))
        try:
            self.outbox.put_nowait(data)
        except asyncio.QueueFull:
            raise SessionError("the session's replica is not keeping up; input dropped") from None

    async def resize(self, cols: int, rows: int) -> None:
        raise SessionError("only the session's owner sets its size", 403)

    def take(self, offset: int, data: str) -> None:
        """Output from the host at `offset`: the mirror's offsets are the host's."""
        if not self._positioned:
            # The stream starts where the host's Redis stream does (older entries were
            # trimmed), so a viewer's offsets mean the same on every replica.
            self.stream.start = offset
            self._positioned = True
        encoded = data.encode()
        if offset + len(encoded) > self.stream.end:
            self.stream.append(encoded[max(0, self.stream.end - offset) :])

    async def serve(self) -> None:
        await race(
            self.replicas.follow_output(self),
            self.replicas.send_input(self),
            self._until_unwatched(),
        )

    async def _until_unwatched(self) -> None:
        while self.reason is None:
            if self.clients == 0 and time.monotonic() - self.idle_since > MIRROR_IDLE_S:
                self.end(UNWATCHED)
                return
            await any_set(self.ending, timeout=1.0)
