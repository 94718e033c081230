"""What outlives a restart: share links and recording metadata, in SQLite (aiosqlite).

One file, `capos.sqlite3`, in the data directory, next to `recordings/`.
The registries keep their working state in memory and write each change
through here, so a restart reloads links (which then answer as before, or
410 once their session is gone) and recordings (which keep playing).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    created REAL NOT NULL,
    expires_at REAL NOT NULL,
    creator_ip TEXT NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    file TEXT NOT NULL,
    started REAL NOT NULL,
    expires_at REAL NOT NULL,
    record_input INTEGER NOT NULL,
    stopped REAL,
    reason TEXT,
    size INTEGER NOT NULL DEFAULT 0
);
"""


def default_data_dir() -> Path:
    """The user's data directory ($XDG_DATA_HOME, else ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "capos-playground"


class Store:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def _put(self, table: str, row: dict) -> None:
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        await self._db.execute(
            f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})", list(row.values())
        )
        await self._db.commit()

    async def _all(self, table: str) -> list[dict]:
        async with self._db.execute(f"SELECT * FROM {table}") as cursor:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]

    async def put_share(self, row: dict) -> None:
        await self._put("shares", row)

    async def shares(self) -> list[dict]:
        return await self._all("shares")

    async def put_recording(self, row: dict) -> None:
        await self._put("recordings", row)

    async def recordings(self) -> list[dict]:
        return await self._all("recordings")

    async def delete_recording(self, recording_id: str) -> None:
        await self._db.execute("DELETE FROM recordings WHERE id = ?", (recording_id,))
        await self._db.commit()


@contextlib.asynccontextmanager
async def open_store(data_dir: Path) -> AsyncIterator[Store]:
    data_dir.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(data_dir / "capos.sqlite3") as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.executescript(SCHEMA)
        await db.commit()
        yield Store(db)
