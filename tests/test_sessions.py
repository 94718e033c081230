"""The session directory: each session runs by its own task, and a fault in one ends it
alone, with a reason its clients, the API and the fault counter all show."""

from __future__ import annotations

import asyncio

import pytest

from server.metrics import Metrics
from server.sessions.directory import SessionDirectory
from server.sessions.live import SessionError
from server.sessions.tab import TabSession
from server.settings import TabLimits
from server.stream import Ended


async def _failing() -> None:
    await asyncio.sleep(0.01)
    raise OSError("the disk went away")


async def _forever(stopped: list[str]) -> None:
    try:
        await asyncio.Future()
    finally:
        stopped.append("cancelled")


def test_a_failing_task_ends_its_session_alone_with_the_reason_shown():
    async def scenario() -> None:
        metrics = Metrics()
        directory = SessionDirectory(metrics)
        running = asyncio.create_task(directory.run())
        await asyncio.sleep(0)
        faulty, bystander = (directory.add(TabSession(TabLimits())) for _ in range(2))
        await asyncio.sleep(0)
        stopped: list[str] = []
        faulty.start(_forever(stopped), "a recorder")  # ends with its session
        faulty.start(_failing(), "its replica publisher")
        ended = await asyncio.wait_for(faulty.stream.next(faulty.stream.end, 100), 5)
        assert isinstance(ended, Ended)  # what the page shows: the terminal's `exit`
        assert ended.reason.startswith("the server failed serving this session")
        assert "its replica publisher" in ended.reason and "the disk went away" in ended.reason
        assert faulty.info()["reason"] == ended.reason  # what the API shows
        while faulty.ended_at is None:  # its other tasks get a moment to finish, then go
            await asyncio.sleep(0.05)
        assert stopped == ["cancelled"]  # its other tasks ended with it
        assert bystander.state == "running" and directory.get(bystander.id, TabSession)
        faults = metrics.session_faults.labels(backend="tab")._value.get()
        assert faults == 1  # what the counter shows
        with pytest.raises(SessionError):  # nothing more starts in an ended session
            faulty.start(_forever([]), "a late recorder")
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert bystander.reason == "the server is shutting down"

    asyncio.run(scenario())


def test_the_directory_refuses_sessions_while_it_is_not_running():
    directory = SessionDirectory(Metrics())
    with pytest.raises(SessionError, match="not accepting sessions"):
        directory.add(TabSession(TabLimits()))
