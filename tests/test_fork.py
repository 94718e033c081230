"""Forking a live session on real QEMU (TCG): the REST API, the MCP tool, and a source
restored from disk.

One server serves the module, its client allowed two running sessions, a session with
no client suspended after IDLE_TIMEOUT_S; the tests run in file order.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from mcp import Client

from bench.poolserver import PROMPT, TerminalClient, pool_server

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]

COUNTER = 'run "counter" with { stdio: client @stdio, counter: client @counter }'
COUNTER_PROMPT = "[counter]> "
IDLE_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def server():
    options = ["--warm", "1", "--max-vms", "5", "--client-sessions", "2"]
    with pool_server(*options, "--idle-timeout", str(IDLE_TIMEOUT_S)) as served:
        yield served


def _say(client: TerminalClient, line: str, expect: str) -> None:
    start = len(client.text)
    client.send(type="input", data=line + "\r")
    client.read_until(lambda: expect in client.text[start:], f"{expect!r} after {line!r}")


def _random(client: TerminalClient) -> str:
    """16 bytes from the guest's RNG, as the shell prints them."""
    answer = client.command("entropy.getRandom(len=16)")
    found = re.search(r"data = (\S+)", answer)
    assert found, answer
    return found.group(1)


def test_a_fork_runs_on_from_the_sources_screen_and_both_go_their_own_way(server):
    source = server.new_session()
    original = TerminalClient(server, source)  # attached throughout: it never suspends
    original.read_prompt()
    original.command("guest")  # the counter and entropy are the guest bundle's
    original.command("counter.increment(by=5)")
    _say(original, COUNTER, COUNTER_PROMPT)
    answer = server.http.post(f"/api/sessions/{source['id']}/fork")
    assert answer.status_code == 201, answer.text
    fork = answer.json()
    assert fork["id"] != source["id"] and fork["state"] == "running"
    assert fork["fork"]["copied_bytes"] > 0
    copy = TerminalClient(server, fork)
    # The fork's screen is the source's: the counter's value, its program still running.
    copy.read_until(lambda: copy.text.endswith(COUNTER_PROMPT), "the source's screen")
    assert "value = 5" in copy.text
    # The same program in each, each its own: keys typed into one never reach the other.
    _say(copy, "inc 10", "[counter] 15")
    _say(original, "inc 1", "[counter] 6")
    _say(copy, "get", "[counter] 15")
    _say(original, "get", "[counter] 6")
    assert "15" not in original.text and "[counter] 6" not in copy.text
    # Fresh entropy: the two RNGs, identical at the fork, draw different bytes.
    for client in (original, copy):
        _say(client, "exit", PROMPT)
    assert _random(original) != _random(copy)
    # Refused: to whoever does not hold the id, and over the owner's two running sessions.
    assert server.http.post("/api/sessions/not-a-session-id/fork").status_code == 404
    refused = server.http.post(f"/api/sessions/{fork['id']}/fork")
    assert refused.status_code == 429, refused.text
    assert "running sessions" in refused.json()["error"] and refused.headers["retry-after"]
    original.close()
    copy.close()
    for session in (source, fork):
        assert server.http.delete(f"/api/sessions/{session['id']}").status_code == 204


def test_a_session_restored_from_disk_forks_too(server):
    """Its RAM is all its own, not the template's: it is copied whole."""
    source = server.new_session()
    client = TerminalClient(server, source)
    client.read_prompt()
    client.command("guest")
    client.command("counter.increment(by=3)")
    client.close()
    server.wait_for(lambda: server.state(source) == "suspended", "a suspend", 60)
    answer = server.http.post(f"/api/sessions/{source['id']}/fork")  # wakes it, then forks
    assert answer.status_code == 201, answer.text
    fork = answer.json()
    copy = TerminalClient(server, fork)
    copy.read_until(lambda: "value = 3" in copy.text, "the source's screen")
    assert "value = 4" in copy.command("counter.increment(by=1)")
    copy.close()
    for session in (source, fork):
        assert server.http.delete(f"/api/sessions/{session['id']}").status_code == 204


def test_an_agent_forks_over_mcp_and_the_fork_has_its_own_owner_token(server):
    async def call(client: Client, name: str, **arguments) -> tuple[bool, dict]:
        result = await client.call_tool(name, arguments)
        return result.is_error, result.structured_content

    async def scenario() -> dict:
        async with Client(f"{server.base}/mcp") as client:
            failed, made = await call(client, "create_session", backend="qemu")
            assert not failed, made
            mine = {"session": made["id"], "owner": made["owner"]}
            await call(client, "terminal_write", **mine, data="counter.increment(by=7)\r")
            output, offset = "", None
            while "value = 7" not in output:
                _, read = await call(client, "terminal_read", **mine, offset=offset, wait_ms=5000)
                output, offset = output + read["data"], read["next_offset"]
            failed, forked = await call(client, "fork_session", **mine)
            assert not failed, forked
            theirs = {"session": forked["id"], "owner": forked["owner"]}
            seen = {
                "forked": forked,
                "screen": await call(client, "terminal_read", **theirs, wait_ms=5000),
                "with the source's token": await call(
                    client, "fork_session", session=forked["id"], owner=made["owner"]
                ),
            }
            await call(client, "end_session", **theirs)
            await call(client, "end_session", **mine)
            return seen

    seen = asyncio.run(scenario())
    forked = seen["forked"]
    assert forked["owner"] and forked["watch"].startswith("/s/")
    assert "value = 7" in seen["screen"][1]["data"]
    failed, refused = seen["with the source's token"]
    assert failed and refused["error"]["kind"] == "forbidden"
