"""What keeps suspended sessions across a restart, without QEMU: the rows and files a
server leaves (server/sessions/kept.py), the stream that goes on at its offset, and the
directory that asks for ids it does not know. The restart itself, with real QEMU and a
second server process, is tests/test_session_restart.py."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import stat
import time
from pathlib import Path

from server.health import Health
from server.metrics import Metrics
from server.sessions.directory import SessionDirectory
from server.sessions.kept import KeptSessions, Suspension
from server.sessions.live import LiveSession
from server.sessions.tab import TabSession
from server.settings import TabLimits
from server.store import open_store
from server.stream import Chunk, OutputStream, Reset
from server.vmstate import StateFiles


def test_a_resumed_stream_goes_on_at_the_offset_where_it_stopped():
    stream = OutputStream.resumed(8, 100, b"hello")
    assert (stream.start, stream.end) == (100, 105)
    assert stream.read(100, 64) == Chunk(100, "hello")
    assert stream.read(0, 64) == Reset(100)  # before what was kept: a reset, as ever
    stream.append(b" world")
    assert (stream.start, stream.end) == (103, 111)  # the scrollback still bounds it
    assert stream.read(105, 64) == Chunk(105, " world")


def suspension(session_id: str, file: str, template: str | None, **changes) -> Suspension:
    kept = Suspension(
        owner_digest=hashlib.sha256(session_id.encode()).hexdigest(),
        file=file,
        template=template,
        client="10.0.0.1",
        created=time.time() - 60,
        expires_at=time.time() + 3600,
        cpu_seconds=1.5,
        suspended_at=time.time() - 30,
        why="no client for 300 s",
        size=4,
        scroll_start=0,
        scrollback=b"capos> ",
    )
    return dataclasses.replace(kept, **changes)


def test_a_restart_keeps_the_sessions_that_may_come_back_and_no_file_besides(tmp_path: Path):
    vms = tmp_path / "vms"
    kept = {
        "alive": suspension("alive", "a.zst", "template-1.vmstate"),
        "expired": suspension("expired", "b.zst", None, expires_at=time.time() - 1),
        "no-file": suspension("no-file", "c.zst", None),
        "no-template": suspension("no-template", "d.zst", "template-gone.vmstate"),
    }

    async def scenario() -> tuple[int, Suspension | None, Suspension | None, list[str]]:
        async with open_store(tmp_path, Health()) as store:
            states = StateFiles(vms)
            for name in ("a.zst", "b.zst", "d.zst", "template-1.vmstate"):
                (vms / name).write_bytes(b"saved")
            for name in ("orphan.zst", "e.zst.partial", "template-old.vmstate"):
                (vms / name).write_bytes(b"left")
            for row in kept.values():
                await store.put_session(dataclasses.asdict(row))
            sessions = KeptSessions(store, states)
            await sessions.load()
            waiting = sessions.waiting()
            claimed, again = sessions.claim("alive"), sessions.claim("alive")
            return waiting, claimed, again, [row["owner_digest"] for row in await store.sessions()]

    waiting, claimed, again, rows = asyncio.run(scenario())
    assert waiting == 1 and claimed == kept["alive"] and again is None  # claimed once
    assert rows == [kept["alive"].owner_digest]  # the others' rows went with them
    assert sorted(p.name for p in vms.iterdir()) == ["a.zst", "template-1.vmstate"]
    assert stat.S_IMODE(vms.stat().st_mode) == 0o700
    assert b"alive" not in (tmp_path / "capos.sqlite3").read_bytes()  # only its digest


def test_the_directory_asks_its_keeper_for_an_id_it_does_not_know():
    class Keeper:
        def __init__(self, directory: SessionDirectory) -> None:
            self.directory, self.asked = directory, []

        def claim(self, session_id: str) -> LiveSession | None:
            self.asked.append(session_id)
            if session_id != "kept":
                return None
            session = TabSession(TabLimits())
            session.id = session_id
            return self.directory.add(session)

    async def scenario() -> None:
        directory = SessionDirectory(Metrics())
        keeper = Keeper(directory)
        directory.keeper = keeper
        assert directory.find("kept") is None  # not running: nothing comes back yet
        running = asyncio.create_task(directory.run())
        await asyncio.sleep(0)
        found = directory.get("kept", TabSession)
        assert found is not None and found.id == "kept"
        assert directory.find("kept") is found and directory.find("never") is None
        assert keeper.asked == ["kept", "never"]  # a known id is not asked for again
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    asyncio.run(scenario())


def test_the_sweep_drops_sessions_past_their_lifetime_and_templates_none_needs(tmp_path: Path):
    vms = tmp_path / "vms"
    soon = suspension("soon", "a.zst", "template-1.vmstate", expires_at=time.time() + 0.5)
    later = suspension("later", "b.zst", "template-2.vmstate")

    async def scenario() -> list[str]:
        async with open_store(tmp_path, Health()) as store:
            states = StateFiles(vms)
            for name in ("a.zst", "b.zst", "template-1.vmstate", "template-2.vmstate"):
                (vms / name).write_bytes(b"saved")
            for row in (soon, later):
                await store.put_session(dataclasses.asdict(row))
            sessions = KeptSessions(store, states)
            await sessions.load()
            (vms / "template-pool.vmstate").write_bytes(b"being made")
            (vms / "c.zst.partial").write_bytes(b"a save under way")
            await asyncio.sleep(0.6)
            await sessions.sweep(vms / "template-pool.vmstate")
            assert sessions.claim("soon") is None and sessions.waiting() == 1
            return sorted(p.name for p in vms.iterdir())

    assert asyncio.run(scenario()) == [
        "b.zst",
        "c.zst.partial",  # a running server's saves are left alone
        "template-2.vmstate",
        "template-pool.vmstate",
    ]
