"""Retention: what has expired is deleted, so the disk holds only what may still be opened.

Every `sweep_interval_s` the sweep deletes each expired recording (its row and its
cast; a recording expires at most `retention_s` after it started) and each share link
that expired more than `expired_kept_s` ago (until then it answers 410 "expired", then
404 like any unknown link). In Redis the links need no sweep: their keys' TTLs end at
the same moment (server/replicas.py). The sweep runs supervised in the share hub's
lifespan (as the `store` part): a failure (a broken disk, a locked database) is logged,
`/healthz` shows the store down until a write works again, and the sweep is tried again
with backoff; it never ends the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from server.recordings import RecordingRegistry
from server.shares import ShareRegistry
from server.store import Store

log = logging.getLogger("capos.retention")


@dataclass
class Retention:
    store: Store
    shares: ShareRegistry
    recordings: RecordingRegistry

    async def sweep(self) -> tuple[int, int]:
        """Delete what has expired now; how many recordings and links went."""
        now = time.time()
        expired = self.recordings.expired(now)
        for recording in expired:
            await self.recordings.delete(recording)  # ShareError: the sweep fails, is retried
        purged = self.shares.purgeable(now)
        for share in purged:
            await self.store.delete_share(share.id)
            self.shares.forget(share)
        if expired or purged:
            log.info("capOS: deleted %d expired recordings, %d links", len(expired), len(purged))
        return len(expired), len(purged)

    async def run(self) -> None:
        """Sweep every `sweep_interval_s` until cancelled."""
        while True:
            await self.sweep()
            await asyncio.sleep(self.recordings.limits.sweep_interval_s)
