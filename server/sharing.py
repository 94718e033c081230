"""Sharing, assembled: the store, share links, recordings and relayed tab sessions.

One async context for the app's lifespan. `live(id)` finds a session of
either kind (a native one from the QEMU registry, a relayed tab), which is
all the share and recording APIs need to know about sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from server.facets import Live
from server.recordings import RecordingRegistry
from server.relay import TabRegistry
from server.replicas import RedisClients, Replicas
from server.sessions import SessionRegistry
from server.settings import Settings
from server.shares import TOKEN_RE, Share, ShareRegistry
from server.store import Store, default_data_dir, open_store
from server.stream import DEFAULT_SCROLLBACK


@dataclass
class Sharing:
    store: Store
    shares: ShareRegistry
    recordings: RecordingRegistry
    tabs: TabRegistry
    native: Callable[[], SessionRegistry | None]  # the QEMU registry, while it runs
    replicas: Replicas | None = None  # with --redis: the other server processes

    def local(self) -> list[Live]:
        """Every session this process hosts."""
        registry = self.native()
        native = list(registry.sessions.values()) if registry is not None else []
        return [*native, *self.tabs.tabs.values()]

    async def live(self, session_id: str) -> Live | None:
        """The session with this id, of any kind, on any replica, while it has not ended."""
        registry = self.native()
        session = registry.get(session_id) if registry is not None else None
        if session is None:
            session = self.tabs.get(session_id)
        if session is None and self.replicas is not None:
            session = await self.replicas.mirror(session_id)
        if session is None or session.state == "ended":
            return None
        return session

    async def known(self, session_id: str) -> bool:
        """Whether the id names a session this service knows (live or ended)."""
        registry = self.native()
        return (
            (registry is not None and registry.get(session_id) is not None)
            or self.tabs.get(session_id) is not None
            or bool(self.shares.of_session(session_id))
            or bool(self.recordings.of_session(session_id))
            or await self.live(session_id) is not None
        )

    async def find_share(self, token: str) -> Share | None:
        """The link a token opens, as the whole service knows it now."""
        if self.replicas is not None and TOKEN_RE.fullmatch(token):
            shared = await self.replicas.load_share(token)
            if shared is not None:
                self.shares.adopt(shared)
        return self.shares.find(token)

    async def share_infos(self, session_id: str) -> list[dict]:
        """The session's links, each with its viewers on every replica."""
        infos = [share.info() for share in self.shares.of_session(session_id)]
        if self.replicas is not None:
            everywhere = await self.replicas.viewers(session_id)
            for info in infos:
                info["viewers"] = [v for v in everywhere if v["share_id"] == info["id"]]
        return infos

    async def end_viewer(self, session_id: str, viewer_id: str) -> bool:
        """End a viewer wherever it is connected; False when none is known here."""
        if self.replicas is not None:
            await self.replicas.end_viewer(session_id, viewer_id)
        for viewer in self.shares.viewers(session_id):
            if viewer.id == viewer_id:
                viewer.end("the session's owner ended your connection")
                return True
        return self.replicas is not None


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
    settings: Settings, native: Callable[[], SessionRegistry | None]
) -> AsyncIterator[Sharing]:
    data_dir = settings.data_dir or default_data_dir()
    async with open_store(data_dir) as store, _redis(settings.redis_url) as client:
        replicas: list[Replicas] = []

        async def save(share: Share) -> None:
            await store.put_share(share.row())
            for replica in replicas:
                await replica.save_share(share)

        shares = ShareRegistry(settings.share_limits, save=save)
        shares.load([Share(**row) for row in await store.shares()])
        recordings = RecordingRegistry(data_dir / "recordings", store, settings.recording_limits)
        await recordings.load()
        tabs = TabRegistry(settings.tab_limits)
        hub = Sharing(store, shares, recordings, tabs, native)
        async with asyncio.TaskGroup() as tasks:
            owned = [tasks.create_task(recordings.run()), tasks.create_task(tabs.run())]
            if client is not None:
                scrollback = settings.qemu.scrollback if settings.qemu else DEFAULT_SCROLLBACK
                hub.replicas = Replicas(client, shares, hub.local, scrollback)
                replicas.append(hub.replicas)
                owned.append(tasks.create_task(hub.replicas.run()))
            try:
                yield hub
            finally:
                for task in owned:
                    task.cancel()
