"""Several server processes, one service: sessions, share links and live output through Redis.

With `--redis URL` each replica:
- announces the sessions it hosts (`capos:session:{id}` -> its replica id, with a TTL it
  keeps refreshing, so a dead replica's sessions fade away),
- publishes each hosted session's output to a Redis stream (`capos:out:{id}`: entries
  `o` offset, `d` text; a last entry `end` with the reason), trimmed to about the
  scrollback, and applies input that other replicas append to `capos:in:{id}`,
- keeps every share link in Redis (`capos:share:{token digest}`), so any replica opens
  any link, and announces revocations and ended viewers on the `capos:events` channel,
  so a viewer is cut off on whichever replica it is connected to.

A viewer on a replica that does not host the session watches a `Mirror`: a local
session object whose output stream is fed from the Redis stream at the same offsets
as the host's, and whose input goes back through Redis. Everything here is a task
in this object's task group. Redis streams and pub/sub only: no protocol of our own
between replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable

import redis.asyncio as aioredis

from server.facets import Live
from server.sessions import SessionError
from server.shares import Share, ShareRegistry, Viewer, digest
from server.stream import Chunk, Ended, OutputStream, Reset

ANNOUNCE_TTL_S = 30
SYNC_S = 0.25  # how often local sessions are looked for and announced
STREAM_ENTRIES = 4096  # output entries kept per session (about the scrollback)
MIRROR_IDLE_S = 30.0  # a mirror with no viewers this long is dropped
EVENTS = "capos:events"


def _key(kind: str, name: str) -> str:
    return f"capos:{kind}:{name}"


class RedisClients:
    """Two pools: one for short commands (callers queue for a connection rather than
    fail), one for the blocking stream reads each hosted session and mirror holds."""

    def __init__(self, url: str) -> None:
        self.commands = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                url, max_connections=32, timeout=20
            )
        )
        self.readers = aioredis.Redis(
            connection_pool=aioredis.ConnectionPool.from_url(url, max_connections=4096)
        )

    async def aclose(self) -> None:
        await self.commands.aclose()
        await self.readers.aclose()


class Mirror:
    """A session hosted by another replica, as seen here: its output, and a way to type."""

    def __init__(self, session_id: str, scrollback: int) -> None:
        self.id = session_id
        self.stream = OutputStream(scrollback)
        self.reason: str | None = None
        self.clients = 0
        self.idle_since = time.monotonic()
        self.observers: list[Callable[[str, str], None]] = []
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue(256)
        self._positioned = False

    @property
    def state(self) -> str:
        return "ended" if self.reason is not None else "running"

    @contextlib.asynccontextmanager
    async def attached(self) -> AsyncIterator[None]:
        self.clients += 1
        try:
            yield
        finally:
            self.clients -= 1
            self.idle_since = time.monotonic()

    def input(self, data: bytes) -> None:
        for observe in self.observers:
            observe("i", data.decode(errors="replace"))
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
        if offset + len(data.encode()) > self.stream.end:
            skip = max(0, self.stream.end - offset)
            self.stream.append(data.encode()[skip:])

    def end(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.stream.close(reason)


class Replicas:
    def __init__(
        self,
        clients: RedisClients,
        shares: ShareRegistry,
        local_sessions: Callable[[], Iterable[Live]],
        scrollback: int,
    ) -> None:
        self.redis = clients.commands
        self.readers = clients.readers  # blocking reads only
        self.id = secrets.token_hex(6)
        self.shares = shares
        self.local_sessions = local_sessions
        self.scrollback = scrollback
        self.mirrors: dict[str, Mirror] = {}
        self._hosted: set[str] = set()
        self._tasks: asyncio.TaskGroup | None = None

    async def run(self) -> None:
        """Announce and publish local sessions, serve mirrors, follow events; until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            tasks.create_task(self._events())
            try:
                while True:
                    self._sync()
                    await asyncio.sleep(SYNC_S)
            finally:
                self._tasks = None

    async def host(self, session: Live) -> None:
        """Announce a local session now (a link to it was just made), not on the next sync."""
        if session.id not in self._hosted and self._tasks is not None:
            await self.redis.set(_key("session", session.id), self.id, ex=ANNOUNCE_TTL_S)
            self._start_hosting(session)

    def _start_hosting(self, session: Live) -> None:
        self._hosted.add(session.id)
        self._tasks.create_task(self._host(session))

    def _sync(self) -> None:
        for session in self.local_sessions():
            if session.id not in self._hosted and session.state != "ended":
                self._start_hosting(session)
        now = time.monotonic()
        for mirror in list(self.mirrors.values()):
            if mirror.clients == 0 and now - mirror.idle_since > MIRROR_IDLE_S:
                mirror.end("no viewer left on this replica")

    # --- hosting: publish a local session's output, apply remote input ------------------

    async def _host(self, session: Live) -> None:
        key = _key("session", session.id)
        try:
            async with asyncio.TaskGroup() as tasks:
                publisher = tasks.create_task(self._publish(session))
                keeper = tasks.create_task(self._keep_announced(key))
                applier = tasks.create_task(self._apply_input(session))
                publisher.add_done_callback(lambda _: (keeper.cancel(), applier.cancel()))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.redis.delete(key))

    async def _keep_announced(self, key: str) -> None:
        while True:
            await self.redis.set(key, self.id, ex=ANNOUNCE_TTL_S)
            await asyncio.sleep(ANNOUNCE_TTL_S / 3)

    async def _publish(self, session: Live) -> None:
        stream, out = session.stream, _key("out", session.id)
        await self.redis.delete(out)
        offset = stream.start
        while True:
            item = await stream.next(offset, 16 * 1024)
            if isinstance(item, Chunk):
                fields = {"o": item.offset, "d": item.data}
                await self.redis.xadd(out, fields, maxlen=STREAM_ENTRIES, approximate=True)
                offset = item.offset + len(item.data.encode())
            elif isinstance(item, Reset):
                offset = item.offset
            elif isinstance(item, Ended):
                await self.redis.xadd(out, {"end": item.reason})
                await self.redis.expire(out, 600)
                return

    async def _apply_input(self, session: Live) -> None:
        inbox, last = _key("in", session.id), "$"
        while True:
            answer = await self.readers.xread({inbox: last}, block=1000)
            for _, entries in answer or []:
                for entry_id, fields in entries:
                    last = entry_id
                    with contextlib.suppress(SessionError):
                        session.input(fields[b"d"])

    # --- viewing a session hosted elsewhere -------------------------------------------

    async def mirror(self, session_id: str) -> Mirror | None:
        """A local mirror of a session another replica hosts, or None if none does."""
        mirror = self.mirrors.get(session_id)
        if mirror is not None and mirror.reason is None:
            return mirror
        host = await self.redis.get(_key("session", session_id))
        if host is None or host.decode() == self.id or self._tasks is None:
            return None
        mirror = Mirror(session_id, self.scrollback)
        self.mirrors[session_id] = mirror
        self._tasks.create_task(self._follow(mirror))
        return mirror

    async def _follow(self, mirror: Mirror) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                reader = tasks.create_task(self._read_output(mirror))
                sender = tasks.create_task(self._send_input(mirror))
                reader.add_done_callback(lambda _: sender.cancel())
        finally:
            mirror.end("this replica stopped following the session")
            if self.mirrors.get(mirror.id) is mirror:
                del self.mirrors[mirror.id]

    async def _read_output(self, mirror: Mirror) -> None:
        out, last = _key("out", mirror.id), "0-0"
        while mirror.reason is None:
            answer = await self.readers.xread({out: last}, block=1000)
            for _, entries in answer or []:
                for entry_id, fields in entries:
                    last = entry_id
                    if b"end" in fields:
                        mirror.end(fields[b"end"].decode())
                        return
                    mirror.take(int(fields[b"o"]), fields[b"d"].decode())

    async def _send_input(self, mirror: Mirror) -> None:
        inbox = _key("in", mirror.id)
        while True:
            data = await mirror.outbox.get()
            await self.redis.xadd(inbox, {"d": data}, maxlen=1024, approximate=True)

    # --- share links ------------------------------------------------------------------

    async def save_share(self, share: Share) -> None:
        await self.redis.set(_key("share", digest(share.token).hex()), json.dumps(share.row()))
        if share.revoked_at is not None:
            event = {"kind": "revoke", "share": share.id, "session": share.session_id}
            await self.redis.publish(EVENTS, json.dumps(event))

    async def load_share(self, token: str) -> Share | None:
        """The link as Redis has it now (another replica may have made or revoked it)."""
        row = await self.redis.get(_key("share", digest(token).hex()))
        return Share(**json.loads(row)) if row is not None else None

    async def joined(self, viewer: Viewer) -> None:
        """A viewer connected here: the owner sees it whichever replica they ask."""
        key = _key("viewers", viewer.share.session_id)
        await self.redis.hset(key, viewer.id, json.dumps({**viewer.info(), "replica": self.id}))
        await self.redis.expire(key, 24 * 3600)

    async def left(self, viewer: Viewer) -> None:
        await self.redis.hdel(_key("viewers", viewer.share.session_id), viewer.id)

    async def viewers(self, session_id: str) -> list[dict]:
        """Every viewer of the session, on every replica."""
        found = await self.redis.hgetall(_key("viewers", session_id))
        return [json.loads(value) for value in found.values()]

    async def end_viewer(self, session_id: str, viewer_id: str) -> None:
        event = {"kind": "end-viewer", "session": session_id, "viewer": viewer_id}
        await self.redis.publish(EVENTS, json.dumps(event))

    async def _events(self) -> None:
        pubsub = self.readers.pubsub()
        await pubsub.subscribe(EVENTS)
        try:
            async for message in pubsub.listen():
                if message["type"] == "message":
                    self._apply_event(json.loads(message["data"]))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(pubsub.aclose())

    def _apply_event(self, event: dict) -> None:
        share = self.shares.get(event.get("session", ""), event.get("share", ""))
        if event.get("kind") == "revoke" and share is not None:
            share.revoked_at = share.revoked_at or time.time()
            self.shares.cut_off(share)
        elif event.get("kind") == "end-viewer":
            for viewer in self.shares.viewers(event.get("session", "")):
                if viewer.id == event.get("viewer"):
                    viewer.end("the session's owner ended your connection")
