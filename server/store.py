"""What outlives a restart: share links and recording metadata, in SQLite (aiosqlite).

One file, `capos.sqlite3`, in the data directory, next to `recordings/`.
The registries keep their working state in memory and write each change
through here, so a restart reloads links (which then answer as before, or
410 once their session is gone) and recordings (which keep playing).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiosqlite

from server.health import Health

T = TypeVar("T")

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


class StoreError(Exception):
    """The store could not keep a change (a full disk, a broken database file)."""


class Store:
    """Every write says whether it worked to `/healthz` (the `store` part), and a failed
    one raises StoreError, which the callers turn into a clear refusal or a stopped
    recording, never a lost session."""

    def __init__(self, db: aiosqlite.Connection, health: Health) -> None:
        self._db = db
        self.health = health

    async def _write(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await operation()
            await self._db.commit()
        except (sqlite3.Error, OSError) as exc:
            with contextlib.suppress(sqlite3.Error, OSError):
                await self._db.rollback()
            self.health.down("store", f"SQLite could not keep a change ({exc})")
            raise StoreError(f"the server could not save this ({exc}); try again later") from None
        self.health.ok("store")
        return result

    async def _put(self, table: str, row: dict) -> None:
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        sql = f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})"
        await self._write(lambda: self._db.execute(sql, list(row.values())))

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
        sql = "DELETE FROM recordings WHERE id = ?"
        await self._write(lambda: self._db.execute(sql, (recording_id,)))


@contextlib.asynccontextmanager
async def open_store(data_dir: Path, health: Health) -> AsyncIterator[Store]:
    data_dir.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(data_dir / "capos.sqlite3") as db:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.executescript(SCHEMA)
        await db.commit()
        health.ok("store")
        yield Store(db, health)
