"""What outlives a restart: share links, recording metadata and suspended sessions, in
SQLite (aiosqlite).

One file, `capos.sqlite3`, in the data directory, next to `recordings/` and `vms/`.
The registries keep their working state in memory and write each change
through here, so a restart reloads links (which then answer as before, or
410 once their session is gone), recordings (which keep playing) and suspended
QEMU sessions (server/sessions/kept.py, which come back under the same id).

Tokens are not kept in clear: a share link's token and a recording's replay token
are kept as their SHA-256 digests (`token_digest`), and a suspended session is kept
under the digest of its id (`owner_digest`: the id is its owner's credential).
Deleted rows are overwritten (`secure_delete`), and only the server's user may read
the directory (0700) and the files in it (0600). A database made by
the first schema (tokens in clear, a recording's replay token as its id) is
migrated when opened.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import aiosqlite

from server.health import Health
from server.shares import digest

T = TypeVar("T")

# PRAGMA user_version; 0: the first schema (or a new file). A table added since (sessions)
# needs no migration: CREATE TABLE IF NOT EXISTS makes it in an older file.
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    id TEXT PRIMARY KEY,
    token_digest TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    created REAL NOT NULL,
    expires_at REAL NOT NULL,
    creator_ip TEXT NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    token_digest TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    file TEXT NOT NULL,
    started REAL NOT NULL,
    expires_at REAL NOT NULL,
    record_input INTEGER NOT NULL,
    stopped REAL,
    reason TEXT,
    size INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    owner_digest TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    template TEXT,
    client TEXT NOT NULL,
    created REAL NOT NULL,
    expires_at REAL NOT NULL,
    cpu_seconds REAL NOT NULL,
    suspended_at REAL NOT NULL,
    why TEXT NOT NULL,
    size INTEGER NOT NULL,
    scroll_start INTEGER NOT NULL,
    scrollback BLOB NOT NULL
);
"""


class StoreError(Exception):
    """The store could not keep a change (a full disk, a broken database file)."""


def _insert(table: str, row: dict) -> tuple[str, list]:
    """The statement (and its values) that writes `row`, replacing a row of the same id."""
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    return f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})", list(row.values())


async def _rows(db: aiosqlite.Connection, table: str) -> list[dict]:
    async with db.execute(f"SELECT * FROM {table}") as cursor:
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


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
        await self._write(lambda: self._db.execute(*_insert(table, row)))

    async def _all(self, table: str) -> list[dict]:
        return await _rows(self._db, table)

    async def put_share(self, row: dict) -> None:
        await self._put("shares", row)

    async def shares(self) -> list[dict]:
        return await self._all("shares")

    async def put_recording(self, row: dict) -> None:
        await self._put("recordings", row)

    async def update_recording(self, row: dict) -> None:
        """Change a recording's row if it still exists: a recorder that stops after its
        recording was deleted must not bring the row back."""
        sets = ", ".join(f"{name} = ?" for name in row)
        sql = f"UPDATE recordings SET {sets} WHERE id = ?"
        await self._write(lambda: self._db.execute(sql, [*row.values(), row["id"]]))

    async def recordings(self) -> list[dict]:
        return await self._all("recordings")

    async def delete_recording(self, recording_id: str) -> None:
        await self._delete("recordings", recording_id)

    async def delete_share(self, share_id: str) -> None:
        await self._delete("shares", share_id)

    async def put_session(self, row: dict) -> None:
        await self._put("sessions", row)

    async def sessions(self) -> list[dict]:
        return await self._all("sessions")

    async def session_files(self) -> set[str]:
        """The files the suspended sessions' rows name: their saved VMs and templates."""
        try:
            async with self._db.execute("SELECT file, template FROM sessions") as cursor:
                rows = await cursor.fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"the server could not read its sessions ({exc})") from None
        return {name for row in rows for name in row if name is not None}

    async def delete_session(self, owner_digest: str) -> None:
        await self._delete("sessions", owner_digest, key="owner_digest")

    async def _delete(self, table: str, row_id: str, key: str = "id") -> None:
        sql = f"DELETE FROM {table} WHERE {key} = ?"
        await self._write(lambda: self._db.execute(sql, (row_id,)))


def private_dir(path: Path) -> None:
    """A directory only the server's user may enter (0700), made if missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


async def _migrate_v0(db: aiosqlite.Connection) -> None:
    """The first schema kept tokens in clear (`shares.token`; a recording's id was its
    replay token): keep their digests instead, give each recording a new public id (its
    cast is renamed when the recordings load), and rewrite the file so no page keeps
    the old values."""
    shares, recordings = await _rows(db, "shares"), await _rows(db, "recordings")
    for row in shares:
        row["token_digest"] = digest(row.pop("token"))
    for row in recordings:
        row.update(token_digest=digest(row["id"]), id=secrets.token_urlsafe(9), client_ip="")
    await db.execute("BEGIN")
    await db.execute("DROP TABLE shares")
    await db.execute("DROP TABLE recordings")
    for statement in filter(str.strip, SCHEMA.split(";")):
        await db.execute(statement)  # in the transaction: executescript would commit
    for table, rows in (("shares", shares), ("recordings", recordings)):
        for row in rows:
            await db.execute(*_insert(table, row))
    await db.commit()
    await db.execute("VACUUM")


@contextlib.asynccontextmanager
async def open_store(data_dir: Path, health: Health) -> AsyncIterator[Store]:
    private_dir(data_dir)
    path = data_dir / "capos.sqlite3"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # SQLite gives -wal, -shm its mode
    path.chmod(0o600)
    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA secure_delete=ON")
        await db.execute("PRAGMA journal_mode=WAL")
        async with db.execute("PRAGMA user_version") as cursor:
            [version] = await cursor.fetchone() or [0]
        async with db.execute("SELECT 1 FROM sqlite_master WHERE name = 'shares'") as cursor:
            first_schema = version == 0 and await cursor.fetchone() is not None
        if first_schema:
            await _migrate_v0(db)
        await db.executescript(SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
        await db.commit()
        health.ok("store")
        yield Store(db, health)
