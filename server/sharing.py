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

from server.facets import Live
from server.recordings import RecordingRegistry
from server.relay import TabRegistry
from server.sessions import SessionRegistry
from server.settings import Settings
from server.shares import Share, ShareRegistry
from server.store import Store, default_data_dir, open_store


@dataclass
class Sharing:
    store: Store
    shares: ShareRegistry
    recordings: RecordingRegistry
    tabs: TabRegistry
    native: Callable[[], SessionRegistry | None]  # the QEMU registry, while it runs

    def live(self, session_id: str) -> Live | None:
        """The session with this id, of any kind, while it has not ended."""
        registry = self.native()
        session = registry.get(session_id) if registry is not None else None
        if session is None:
            session = self.tabs.get(session_id)
        if session is None or session.state == "ended":
            return None
        return session

    def known(self, session_id: str) -> bool:
        """Whether the id names a session this server knows (live or ended)."""
        registry = self.native()
        return (
            (registry is not None and registry.get(session_id) is not None)
            or self.tabs.get(session_id) is not None
            or bool(self.shares.of_session(session_id))
            or bool(self.recordings.of_session(session_id))
        )


@contextlib.asynccontextmanager
async def sharing(
    settings: Settings, native: Callable[[], SessionRegistry | None]
) -> AsyncIterator[Sharing]:
    data_dir = settings.data_dir or default_data_dir()
    async with open_store(data_dir) as store:
        shares = ShareRegistry(settings.share_limits, save=lambda s: store.put_share(s.row()))
        shares.load([Share(**row) for row in await store.shares()])
        recordings = RecordingRegistry(data_dir / "recordings", store, settings.recording_limits)
        await recordings.load()
        tabs = TabRegistry(settings.tab_limits)
        hub = Sharing(store, shares, recordings, tabs, native)
        async with asyncio.TaskGroup() as tasks:
            owned = [tasks.create_task(recordings.run()), tasks.create_task(tabs.run())]
            try:
                yield hub
            finally:
                for task in owned:
                    task.cancel()
