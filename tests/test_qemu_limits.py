"""A session's wall-clock lifetime, on real QEMU: it ends with the reason, and its VM goes."""

from __future__ import annotations

import pytest

from bench.poolserver import PROMPT, TerminalClient, pool_server

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]

LIFETIME_S = 6


def test_a_session_ends_at_its_lifetime_with_the_reason_and_frees_its_vm():
    options = ["--accel", "tcg", "--warm", "1", "--max-vms", "1", "--cold-boot"]
    with pool_server(*options, "--lifetime", str(LIFETIME_S)) as server:
        session = server.new_session()
        client = TerminalClient(server, session)
        client.read_prompt()
        assert client.text.endswith(PROMPT)
        reason = client.read_exit(timeout=LIFETIME_S + 30)
        assert reason == f"the session reached its lifetime of {LIFETIME_S} s"
        info = server.http.get(f"/api/sessions/{session['id']}").json()
        assert info["state"] == "ended" and info["reason"] == reason and info["vm"] is None
        # its slot is free again: the pool boots a replacement for the next visitor
        server.wait_for(lambda: server.pool()["warm"] == 1, "a replacement VM")
        client.close()
