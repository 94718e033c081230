"""Sharing, assembled: the store, share links, recordings and the replicas behind them.

One async context for the app's lifespan. Sessions of every kind live in the
directory (server/sessions/); `live(id)` finds one here or, with Redis, a mirror of
one another replica hosts, which is all the share and recording APIs need to know
about sessions. The replica loops and the retention sweep (server/retention.py) run
supervised: when they fail they start again, and `/healthz` says Redis (or the store) is
down meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis

from server.health import Health
from server.recordings import RecordingRegistry
from server.replicas import RedisClients, RedisDown, Replicas
from server.retention import Retention
from server.sessions.directory import SessionDirectory
from server.sessions.live import LiveSession
from server.sessions.mirror import Mirror
from server.settings import Settings
from server.shares import TOKEN_RE, Share, ShareError, ShareRegistry
from server.store import Store, StoreError, open_store
from server.stream import DEFAULT_SCROLLBACK
from server.supervise import supervised


@dataclass
class Sharing:
    store: Store
    shares: ShareRegistry
    recordings: RecordingRegistry
    directory: SessionDirectory
    replicas: Replicas | None = None  # with --redis: the other server processes

    def hosts(self, session: LiveSession) -> bool:
        """Whether this process runs the session (not a mirror of another's)."""
        return not isinstance(session, Mirror)

    async def live(self, session_id: str) -> LiveSession | None:
        """The session with this id, of any kind, on any replica, while it has not ended.

        RedisDown when it is not here and Redis cannot say where it is."""
        session = self.directory.find(session_id)
        if session is None and self.replicas is not None:
            session = await self.replicas.mirror(session_id)
        if session is None or session.state == "ended":
            return None
        return session

    async def share(
        self, session: LiveSession, mode: object, expires_in: object, creator: str
    ) -> tuple[Share, str]:
        """A new link to `session` and its token (handed out once: not kept), announced first
        when this replica runs it, so that every replica can open the link at once.
        ShareError or SessionError (Redis) when it cannot."""
        if self.replicas is not None and self.hosts(session):
            await self.replicas.host(session)
        return await self.shares.create(session.id, mode, expires_in, creator)

    async def known(self, session_id: str) -> bool:
        """Whether the id names a session this service knows (live or ended)."""
        if self.directory.find(session_id) is not None:
            return True
        if self.shares.of_session(session_id) or self.recordings.of_session(session_id):
            return True
        with contextlib.suppress(RedisDown):
            return await self.live(session_id) is not None
        return False

    async def find_share(self, token: str) -> Share | None:
        """The link a token opens, as the whole service knows it now; while Redis is away,
        as this replica knows it (RedisDown when it knows nothing of it)."""
        if self.replicas is not None and TOKEN_RE.fullmatch(token):
            try:
                shared = await self.replicas.fetch_share(token)
            except RedisDown:
                if self.shares.find(token) is None:
                    raise
                shared = None
            if shared is not None:
                self.shares.adopt(shared)
        return self.shares.find(token)

    async def share_infos(self, session_id: str) -> list[dict]:
        """The session's links, each with its viewers on every replica (on this one only
        while Redis is away)."""
        infos = [share.info() for share in self.shares.of_session(session_id)]
        if self.replicas is not None:
            with contextlib.suppress(RedisDown):
                everywhere = await self.replicas.viewers(session_id)
                for info in infos:
                    info["viewers"] = [v for v in everywhere if v["share_id"] == info["id"]]
        return infos

    async def end_viewer(self, session_id: str, viewer_id: str) -> bool:
        """End a viewer wherever it is connected; False when none is known here."""
        for viewer in self.shares.viewers(session_id):
            if viewer.id == viewer_id:
                viewer.end("the session's owner ended your connection")
                return True
        if self.replicas is not None:
            await self.replicas.end_viewer(session_id, viewer_id)
            return True
        return False


class RedisUnavailable(Exception):
    """--redis names a server that does not answer; the message says which and why."""


@contextlib.asynccontextmanager
async def _redis(url: str | None) -> AsyncIterator[RedisClients | None]:
    if url is None:
        yield None
        return
    client = RedisClients(url)
    try:
        try:
            await client.commands.ping()
        except (aioredis.RedisError, OSError) as exc:
            raise RedisUnavailable(
                f"Redis at {url} does not answer ({exc}); is it running?"
            ) from None
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def sharing(
    settings: Settings, directory: SessionDirectory, health: Health
) -> AsyncIterator[Sharing]:
    data_dir = settings.data_path
    async with open_store(data_dir, health) as store, _redis(settings.redis_url) as client:
        replicas: list[Replicas] = []

        async def save(share: Share) -> None:
            try:
                await store.put_share(share.row())
            except StoreError as exc:
                raise ShareError(str(exc), 503) from None
            for replica in replicas:
                try:
                    await replica.save_share(share)
                except RedisDown as exc:
                    raise ShareError(str(exc), 503) from None

        shares = ShareRegistry(settings.share_limits, save=save)
        shares.load([Share(**row) for row in await store.shares()])
        recordings = RecordingRegistry(data_dir / "recordings", store, settings.recording_limits)
        await recordings.load()
        hub = Sharing(store, shares, recordings, directory)
        retention = Retention(store, shares, recordings)
        async with asyncio.TaskGroup() as tasks:
            loops = [tasks.create_task(supervised("store", health, retention.run))]
            if client is None:
                health.off("redis", "this server runs alone (no --redis)")
            else:
                scrollback = settings.qemu.scrollback if settings.qemu else DEFAULT_SCROLLBACK
                hub.replicas = Replicas(client, shares, directory, scrollback, health)
                replicas.append(hub.replicas)
                loops.append(tasks.create_task(supervised("redis", health, hub.replicas.run)))
            health.ok("share_hub")
            try:
                yield hub
            finally:
                for loop in loops:
                    loop.cancel()
