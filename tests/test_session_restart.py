"""Sessions outlive a server restart: the real server as a process, stopped (gracefully, or
by SIGKILL) and started again on the same data directory, with real QEMU (TCG)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from bench.poolserver import PROMPT, PoolServer, TerminalClient, pool_server
from server.sessions.directory import SHUTDOWN_GRACE_S
from server.vmstate import SAVE_TIMEOUT_S

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning"),
]

GAME = "[paperclips]> "
START_GAME = 'run "paperclips" with { stdio: client @stdio, game: client @paperclips }'


def options(data: Path, *more: str) -> list[str]:
    return ["--accel", "tcg", "--warm", "1", "--max-vms", "3", "--data-dir", str(data), *more]


def play(client: TerminalClient, line: str) -> str:
    """Type a line to the paperclips client; its answer, up to its next prompt."""
    start = len(client.text) + len(line)
    client.send(type="input", data=line + "\r")
    client.read_until(lambda: GAME in client.text[start:], f"the game's prompt after {line!r}")
    return client.text[start:]


def kept_rows(data: Path) -> list[dict]:
    with sqlite3.connect(data / "capos.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM sessions")]


def owner_digest(session: dict) -> str:
    return hashlib.sha256(session["id"].encode()).hexdigest()


def qemu_pid(name: str) -> int:
    """The QEMU started with `-name name`."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                args = (entry / "cmdline").read_bytes().split(b"\0")
                if args[0].endswith(b"qemu-system-x86_64") and name.encode() in args:
                    return int(entry.name)
    raise AssertionError(f"no QEMU named {name}")


def share_link(server: PoolServer, session: dict, mode: str) -> str:
    response = server.http.post(f"/api/sessions/{session['id']}/shares", json={"mode": mode})
    assert response.status_code == 201, response.text
    return response.json()["url"].rsplit("/s/", 1)[1]


def test_a_session_with_a_running_program_and_a_share_link_comes_back_after_a_restart(tmp_path):
    with pool_server(*options(tmp_path)) as server:
        session = server.new_session()
        owner = TerminalClient(server, session)
        owner.read_prompt()
        owner.command("guest")  # the demo bundle: paperclips
        owner.send(type="input", data=START_GAME + "\r")
        owner.read_until(lambda: owner.text.endswith(GAME), "the game's prompt")
        assert "Made 42 clips." in play(owner, "make 42")
        token = share_link(server, session, "view")
        screen, offset = owner.text, owner.offset
        owner.close()
    # The server stopped gracefully: the session was suspended to the data directory.
    [row] = kept_rows(tmp_path)
    assert row["owner_digest"] == owner_digest(session)
    assert session["id"] not in json.dumps({k: str(v) for k, v in row.items()})
    assert "server stopped" in row["why"]
    state = tmp_path / "vms" / row["file"]
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "vms").stat().st_mode) == 0o700
    assert state.stat().st_size == row["size"] < 16 << 20  # not a 146 MiB stream
    assert row["scroll_start"] + len(row["scrollback"]) == offset

    with pool_server(*options(tmp_path)) as again:
        info = again.http.get(f"/api/sessions/{session['id']}").json()
        assert info["state"] == "suspended" and info["output_offset"] == offset
        assert "server stopped" in info["suspended"]["why"]
        # The link shows the same screen; the owner goes on from its offset, in the same game.
        viewer = connect(f"ws://127.0.0.1:{again.port}/s/{token}/terminal", open_timeout=30)
        viewer.send(json.dumps({"type": "resume", "offset": 0}))
        seen = ""
        while len(seen.encode()) < offset:
            frame = json.loads(viewer.recv(60))
            assert frame["type"] == "output", frame
            seen += frame["data"]
        assert seen == screen
        owner = TerminalClient(again, session, offset=offset)
        status = play(owner, "status")  # a frame at another offset than `offset` fails here
        assert "42 made" in status
        assert "Made 1 clip." in play(owner, "make")
        while "Made 1 clip." not in seen:
            seen += json.loads(viewer.recv(60))["data"]
        viewer.close()
        owner.close()
        assert again.http.get(f"/api/sessions/{session['id']}").json()["state"] == "running"
        assert kept_rows(tmp_path) == [] and not state.exists()  # restored: no longer kept
        assert again.http.delete(f"/api/sessions/{session['id']}").status_code == 204
    assert kept_rows(tmp_path) == []
    assert [p.name for p in (tmp_path / "vms").iterdir()] == []  # templates go when unneeded


def test_a_crash_keeps_what_was_suspended_and_a_damaged_state_file_refuses_only_its_session(
    tmp_path,
):
    with pool_server(*options(tmp_path, "--idle-timeout", "2")) as server:
        sessions = []
        for _ in range(3):  # one at a time: a visitor may run two sessions at once
            session = server.new_session()
            sessions.append(session)
            client = TerminalClient(server, session)
            client.read_prompt()
            client.command("guest")  # the demo bundle: the counter
            assert "value = 3" in client.command("counter.increment(by=3)")
            client.close()
            server.wait_for(lambda s=session: server.state(s) == "suspended", "a suspend", 60)
        kept, truncated, garbage = sessions
        live = server.new_session()
        client = TerminalClient(server, live)
        client.read_prompt()
        os.kill(server.process.pid, signal.SIGKILL)  # a crash: nothing is saved now
        server.process.wait()
        client.close()
    files = {row["owner_digest"]: tmp_path / "vms" / row["file"] for row in kept_rows(tmp_path)}
    assert set(files) == {owner_digest(s) for s in sessions}  # the live one was not kept
    cut = files[owner_digest(truncated)]
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    files[owner_digest(garbage)].write_bytes(os.urandom(4096))

    with pool_server(*options(tmp_path)) as again:
        assert again.http.get(f"/api/sessions/{live['id']}").status_code == 404
        for session in (truncated, garbage):
            client = TerminalClient(again, session)
            reason = client.read_exit()
            client.close()
            assert "could not be restored: its saved VM is damaged or cut short" in reason
            info = again.http.get(f"/api/sessions/{session['id']}").json()
            assert info["state"] == "ended" and info["reason"] == reason
        client = TerminalClient(again, kept)
        client.read_until(lambda: client.text.endswith(PROMPT), "the kept session's prompt")
        assert "value = 6" in client.command("counter.increment(by=3)")
        client.close()
        fresh = TerminalClient(again, again.new_session())
        fresh.read_prompt()
        fresh.close()
    kept_now = {row["owner_digest"] for row in kept_rows(tmp_path)}
    assert owner_digest(kept) in kept_now  # suspended again as the server stopped
    for refused in (truncated, garbage):  # gone, with their files
        assert owner_digest(refused) not in kept_now
        assert not files[owner_digest(refused)].exists()


def test_a_stuck_vm_holds_the_stop_only_until_its_save_times_out(tmp_path):
    with pool_server(*options(tmp_path)) as server:
        stuck, healthy = server.new_session(), server.new_session()
        for session in (stuck, healthy):
            client = TerminalClient(server, session)
            client.read_prompt()
            client.close()
        os.kill(qemu_pid(stuck["vm"]), signal.SIGSTOP)  # it answers nothing from now on
        stopping = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=SHUTDOWN_GRACE_S + 30) == 0
        took = time.monotonic() - stopping
    assert SAVE_TIMEOUT_S <= took < SHUTDOWN_GRACE_S + 30
    # The healthy one was saved meanwhile; the stuck one is lost, as in a crash.
    assert [row["owner_digest"] for row in kept_rows(tmp_path)] == [owner_digest(healthy)]
