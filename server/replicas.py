"""Several server processes, one service: sessions, share links and live output through Redis.

With `--redis URL` each replica:
- announces the sessions it hosts (`capos:session:{id}` -> its replica id, with a TTL it
  keeps refreshing, so a dead replica's sessions fade away),
- publishes each hosted session's output to a Redis stream (`capos:out:{id}`: entries
  `o` offset, `d` text; a last entry `end` with the reason), trimmed to about the
  scrollback, and applies input that other replicas append to `capos:in:{id}`,
- keeps every share link in Redis (`capos:share:{token digest}`: the row with the
  digest, never the token), so any replica opens any link, each key with a TTL that ends
  `expired_kept_s` after the link expires, so expired links vanish on their own; and
  announces revocations and ended viewers on the `capos:events` channel,
  so a viewer is cut off on whichever replica it is connected to.

A viewer on a replica that does not host the session watches a `Mirror`
(server/sessions/mirror.py). A hosted session's publisher runs in that session's own
task group; the event follower and the announcer run in this object's.

Redis may go away. Every loop here retries with backoff and jitter, marks Redis down
in `/healthz` meanwhile, and carries on where it was when Redis is back: a publisher
re-sends the entry it was sending (mirrors skip what they have by offset), a mirror
reads on from the last entry it took. A replica that sees Redis come back (perhaps
empty, after a restart) announces its sessions again, re-saves its share links
(a revocation always wins over an older copy), and checks every viewer it serves
against the links as Redis has them, so a revocation made meanwhile cuts them off.
Requests that need Redis while it is down (making or revoking a link) get
`RedisDown`, a clear 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.health import Health
from server.sessions.directory import SessionDirectory
from server.sessions.live import LiveSession, SessionError
from server.sessions.mirror import Mirror
from server.shares import Share, ShareRegistry, Viewer, digest
from server.stream import Chunk, Ended, Reset
from server.supervise import Backoff, any_set, race

log = logging.getLogger("capos.replicas")

ANNOUNCE_TTL_S = 30
SYNC_S = 0.25  # how often local sessions are looked for and announced
PING_S = 1.0  # how often Redis is asked whether it is there
STREAM_ENTRIES = 4096  # output entries kept per session (about the scrollback)
EVENTS = "capos:events"
REDIS_BACKOFF_MOST_S = 2.0  # the longest wait between tries while Redis is away
REDIS_ERRORS = (aioredis.RedisError, OSError)
T = TypeVar("T")
Entry = tuple[bytes, dict[bytes, bytes]]  # a Redis stream entry: its id and fields


class RedisDown(SessionError):
    """Redis does not answer; the request needs it. The message says what to do."""

    why = "which this server cannot reach now"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs Redis, {self.why}; try again in a few seconds", 503)


class RedisBusy(RedisDown):
    """Every pooled connection stayed in use for the pool's whole wait: a burst here (say,
    hundreds of viewers joining at once), not a Redis that is away."""

    why = "and this server's connections to it are all busy"


def pool_busy(exc: BaseException) -> bool:
    """Whether `exc` is the command pool's wait running out (redis-py says "No connection
    available" for it, from a TimeoutError) rather than Redis failing to answer."""
    return isinstance(exc, aioredis.ConnectionError) and isinstance(exc.__cause__, TimeoutError)


def _key(kind: str, name: str) -> str:
    return f"capos:{kind}:{name}"


class RedisClients:
    """Two pools: one for short commands (callers queue briefly for a connection), one for
    the blocking stream reads each hosted session and mirror holds. Neither retries more
    than once on its own: the loops here do, with backoff, and a request fails fast with
    RedisDown."""

    def __init__(self, url: str, commands: int = 32, wait_s: float = 2) -> None:
        """`commands` connections for short commands; a caller waits up to `wait_s` for one."""
        options = {
            "socket_connect_timeout": 2,
            "socket_timeout": 5,  # longer than any blocking read here (1 s)
            # One quick retry: a pooled connection Redis closed (a restart) is replaced
            # without a word; a Redis that is away fails again at once.
            "retry": Retry(NoBackoff(), 1),
        }
        self.commands = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                url, max_connections=commands, timeout=wait_s, **options
            )
        )
        self.readers = aioredis.Redis(
            connection_pool=aioredis.ConnectionPool.from_url(url, max_connections=4096, **options)
        )

    async def aclose(self) -> None:
        await self.commands.aclose()
        await self.readers.aclose()


class Replicas:
    def __init__(
        self,
        clients: RedisClients,
        shares: ShareRegistry,
        directory: SessionDirectory,
        scrollback: int,
        health: Health,
    ) -> None:
        self.redis = clients.commands
        self.readers = clients.readers  # blocking reads only
        self.id = secrets.token_hex(6)
        self.shares = shares
        self.directory = directory
        self.scrollback = scrollback
        self.health = health
        self.up = True  # Redis answered the last thing asked of it
        self._came_back = asyncio.Event()
        self._hosted: set[str] = set()
        self._unsent_revocations: dict[str, Share] = {}  # made while Redis was away

    async def run(self) -> None:
        """Follow events, announce local sessions, watch Redis; until cancelled."""
        self.health.ok("redis")
        await self._retrying(self._upgrade_shares)
        await race(self._follow_events(), self._sync(), self._watch())

    # --- Redis's state ------------------------------------------------------------------

    def _worked(self) -> None:
        if not self.up:
            self.up = True
            log.warning("capOS replicas: Redis is back")
            self.health.ok("redis")
            self._came_back.set()

    def _failed(self, exc: BaseException) -> None:
        if pool_busy(exc):  # Redis is fine; this server asks too much of it at once
            log.debug("capOS replicas: every Redis connection is busy: %s", exc)
            return
        if self.up:
            self.up = False
            log.warning("capOS replicas: Redis does not answer: %s", exc)
        self.health.down("redis", f"Redis does not answer ({exc or type(exc).__name__})")

    async def _retrying(self, call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`call(*args, **kwargs)` once it works, trying again with backoff while Redis is
        away."""
        backoff = Backoff(most=REDIS_BACKOFF_MOST_S)
        while True:
            try:
                result = await call(*args, **kwargs)
            except REDIS_ERRORS as exc:
                self._failed(exc)
                await backoff.wait()
                continue
            self._worked()
            return result

    async def _once(
        self, what: str, call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """`call(*args, **kwargs)`, or RedisDown at once: for a request a client waits on."""
        try:
            result = await call(*args, **kwargs)
        except REDIS_ERRORS as exc:
            self._failed(exc)
            raise (RedisBusy if pool_busy(exc) else RedisDown)(what) from None
        self._worked()
        return result

    async def _watch(self) -> None:
        """Ask Redis every second whether it is there; when it comes back, catch up."""
        while True:
            try:
                await self.redis.ping()
            except REDIS_ERRORS as exc:
                self._failed(exc)
            else:
                self._worked()
            if self._came_back.is_set():
                self._came_back.clear()
                await self._catch_up()
            await any_set(self._came_back, timeout=PING_S)

    async def _catch_up(self) -> None:
        """Redis is back, perhaps empty: say again what this replica knows."""
        for session in self.directory.running():
            if session.id in self._hosted:
                await self._retrying(self._announce, session.id)
        for share in self.shares.all():
            if share.revoked_at is None and share.gone() is not None:
                continue  # expired: nobody can open it anyway
            await self._retrying(self._merge_share, share)
            for viewer in list(share.viewers.values()):
                await self._retrying(self._add_viewer, viewer)
        while self._unsent_revocations:
            _, share = self._unsent_revocations.popitem()
            await self._retrying(self._announce_revocation, share)

    async def _check_viewers(self) -> None:
        """Cut off viewers here whose link was revoked while this replica could not hear.

        Run once subscribed again: a revocation published before that is in Redis by
        then (its replica writes the link before announcing it), one published after
        arrives as an event."""
        for share in self.shares.all():
            if share.viewers and share.revoked_at is None:
                current = await self._retrying(self.load_share, share.token_digest)
                if current is not None:
                    self.shares.adopt(current)

    # --- hosting: publish a local session's output, apply remote input ------------------

    async def _sync(self) -> None:
        while True:
            for session in self.directory.running():
                if not isinstance(session, Mirror) and session.id not in self._hosted:
                    self._start_hosting(session)
            await asyncio.sleep(SYNC_S)

    async def host(self, session: LiveSession) -> None:
        """Announce a local session now (a link to it was just made), not on the next sync."""
        if session.id not in self._hosted:
            await self._once("sharing a session", self._announce, session.id)
            self._start_hosting(session)

    async def _announce(self, session_id: str) -> None:
        await self.redis.set(_key("session", session_id), self.id, ex=ANNOUNCE_TTL_S)

    def _start_hosting(self, session: LiveSession) -> None:
        with contextlib.suppress(SessionError):  # it ended meanwhile
            session.start(self._host(session), "its replica publisher")
            self._hosted.add(session.id)

    async def _host(self, session: LiveSession) -> None:
        try:
            await race(
                self._publish(session),
                self._keep_announced(session.id),
                self._apply_input(session),
            )
        finally:
            self._hosted.discard(session.id)
            with contextlib.suppress(*REDIS_ERRORS):
                await asyncio.shield(self.redis.delete(_key("session", session.id)))

    async def _keep_announced(self, session_id: str) -> None:
        while True:
            await self._retrying(self._announce, session_id)
            await asyncio.sleep(ANNOUNCE_TTL_S / 3)

    async def _publish(self, session: LiveSession) -> None:
        """Until the stream ends; ends with the `end` entry, so mirrors learn why."""
        stream, out = session.stream, _key("out", session.id)
        await self._retrying(self.redis.delete, out)
        offset = stream.start
        while True:
            item = await stream.next(offset, 16 * 1024)
            if isinstance(item, Chunk):
                fields = {"o": item.offset, "d": item.data}
                await self._retrying(
                    self.redis.xadd, out, fields, maxlen=STREAM_ENTRIES, approximate=True
                )
                offset = item.offset + len(item.data.encode())
            elif isinstance(item, Reset):
                offset = item.offset
            elif isinstance(item, Ended):
                await self._retrying(self.redis.xadd, out, {"end": item.reason})
                await self._retrying(self.redis.expire, out, 600)
                return

    async def _apply_input(self, session: LiveSession) -> None:
        inbox, last = _key("in", session.id), b"$"
        while True:
            for entry_id, fields in await self._read(inbox, last):
                last = entry_id
                with contextlib.suppress(SessionError):
                    session.input(fields[b"d"])

    async def _read(self, stream: str, after: bytes | str) -> list[Entry]:
        """The entries of a Redis stream after `after`, waiting up to a second for some."""
        answer = await self._retrying(self.readers.xread, {stream: after}, block=1000)
        return [entry for _, entries in cast(list, answer or []) for entry in entries]

    # --- viewing a session hosted elsewhere -------------------------------------------

    async def mirror(self, session_id: str) -> Mirror | None:
        """A local mirror of a session another replica hosts, or None if none does."""
        mirror = self.directory.get(session_id, Mirror)
        if mirror is not None and mirror.reason is None:
            return mirror
        host = await self._once("watching a session", self.redis.get, _key("session", session_id))
        if host is None or host == self.id.encode() or not self.directory.accepting:
            return None
        return self.directory.add(Mirror(session_id, self.scrollback, self))

    async def follow_output(self, mirror: Mirror) -> None:
        """Feed the mirror from the host's stream until its `end` entry."""
        out = _key("out", mirror.id)
        while mirror.reason is None:
            for entry_id, fields in await self._read(out, mirror.last_entry):
                mirror.last_entry = entry_id
                if b"end" in fields:
                    mirror.end(fields[b"end"].decode())
                    return
                mirror.take(int(fields[b"o"]), fields[b"d"].decode())

    async def send_input(self, mirror: Mirror) -> None:
        inbox = _key("in", mirror.id)
        while True:
            data = await mirror.outbox.get()
            await self._retrying(self.redis.xadd, inbox, {"d": data}, maxlen=1024, approximate=True)

    # --- share links ------------------------------------------------------------------

    async def save_share(self, share: Share) -> None:
        """Keep the link in Redis; RedisDown when it cannot (the caller answers 503).

        A revocation that cannot reach Redis is kept and sent once Redis is back, so the
        viewers other replicas serve are cut off then: a revocation never fails open."""
        try:
            await self._once("changing a share link", self._merge_share, share)
            if share.revoked_at is not None:
                await self._once("revoking a share link", self._announce_revocation, share)
        except RedisDown:
            if share.revoked_at is not None:
                self._unsent_revocations[share.id] = share
            raise

    async def _upgrade_shares(self) -> None:
        """Links an older version kept with their token in clear: kept again as digests,
        with their TTL."""
        async for key in self.redis.scan_iter(match=_key("share", "*"), count=500):
            raw = await self.redis.get(key)
            row = json.loads(raw) if raw is not None else {}
            if "token" in row:
                row["token_digest"] = digest(row.pop("token"))
                share = Share(**row)
                await self.redis.delete(key)
                await self._merge_share(share)

    async def _announce_revocation(self, share: Share) -> None:
        event = {"kind": "revoke", "share": share.id, "session": share.session_id}
        await self.redis.publish(EVENTS, json.dumps(event))

    async def _merge_share(self, share: Share) -> None:
        """Write the link; an unrevoked copy never overwrites a revocation already there."""
        key, row = _key("share", share.token_digest), json.dumps(share.row())
        kept_s = share.expires_at + self.shares.limits.expired_kept_s - time.time()
        ttl = max(1, math.ceil(kept_s))
        if share.revoked_at is not None:
            await self.redis.set(key, row, ex=ttl)
        else:
            await self.redis.set(key, row, ex=ttl, nx=True)

    async def load_share(self, token_digest: str) -> Share | None:
        """The link as Redis has it now (another replica may have made or revoked it)."""
        row = await self.redis.get(_key("share", token_digest))
        return Share(**json.loads(row)) if row is not None else None

    async def fetch_share(self, token: str) -> Share | None:
        """load_share for a request: RedisDown at once when Redis is away."""
        return await self._once("opening a share link", self.load_share, digest(token))

    async def joined(self, viewer: Viewer) -> None:
        """A viewer connected here: the owner sees it whichever replica they ask."""
        with contextlib.suppress(RedisDown):  # caught up when Redis is back
            await self._once("listing a viewer", self._add_viewer, viewer)

    async def _add_viewer(self, viewer: Viewer) -> None:
        key = _key("viewers", viewer.share.session_id)
        async with self.redis.pipeline(transaction=False) as both:  # one connection, one trip
            both.hset(key, viewer.id, json.dumps({**viewer.info(), "replica": self.id}))
            both.expire(key, 24 * 3600)
            await both.execute()

    async def left(self, viewer: Viewer) -> None:
        with contextlib.suppress(RedisDown):
            key = _key("viewers", viewer.share.session_id)
            await self._once("listing a viewer", self.redis.hdel, key, viewer.id)

    async def viewers(self, session_id: str) -> list[dict]:
        """Every viewer of the session, on every replica."""
        found = await self._once("listing viewers", self.redis.hgetall, _key("viewers", session_id))
        return [json.loads(value) for value in found.values()]

    async def end_viewer(self, session_id: str, viewer_id: str) -> None:
        event = json.dumps({"kind": "end-viewer", "session": session_id, "viewer": viewer_id})
        await self._once("ending a viewer", self.redis.publish, EVENTS, event)

    async def _follow_events(self) -> None:
        """Revocations and ended viewers from every replica; resubscribes after an outage."""
        backoff = Backoff(most=REDIS_BACKOFF_MOST_S)
        first = True
        while True:
            pubsub = self.readers.pubsub()
            try:
                await pubsub.subscribe(EVENTS)
                backoff.reset()
                if not first:  # events were missed meanwhile
                    await self._check_viewers()
                first = False
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._apply_event(json.loads(message["data"]))
            except REDIS_ERRORS as exc:
                self._failed(exc)
                await backoff.wait()
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())

    def _apply_event(self, event: dict) -> None:
        share = self.shares.get(event.get("session", ""), event.get("share", ""))
        if event.get("kind") == "revoke" and share is not None:
            self.shares.revoke_here(share)
        elif event.get("kind") == "end-viewer":
            for viewer in self.shares.viewers(event.get("session", "")):
                if viewer.id == event.get("viewer"):
                    viewer.end("the session's owner ended your connection")
