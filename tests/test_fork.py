"""Forking a live session on real QEMU (TCG): the REST API and the MCP tool.

One server serves the module, its client allowed two running sessions; the tests run in
file order: the first leaves its source and fork running for the second's refusals.
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


@pytest.fixture(scope="module")
def server():
    with pool_server("--warm", "1", "--max-vms", "5", "--client-sessions", "2") as served:
        yield served


@pytest.fixture(scope="module")
def pair(server):
    """A source running the counter client, and its fork: {"source", "fork", "answer"}."""
    source = server.new_session()
    client = TerminalClient(server, source)
    client.read_prompt()
    client.command("counter.increment(by=5)")
    client.send(type="input", data=COUNTER + "\r")
    client.read_until(lambda: client.text.endswith(COUNTER_PROMPT), "the counter's prompt")
    client.close()
    answer = server.http.post(f"/api/sessions/{source['id']}/fork")
    assert answer.status_code == 201, answer.text
    return {"source": source, "fork": answer.json(), "answer": answer}


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


def test_a_fork_runs_on_from_the_sources_screen_and_both_go_their_own_way(server, pair):
    source, fork = pair["source"], pair["fork"]
    assert fork["id"] != source["id"] and fork["state"] == "running"
    assert pair["answer"].json()["fork"]["copied_bytes"] > 0
    original = TerminalClient(server, source)
    copy = TerminalClient(server, fork)
    # The fork's screen is the source's: the counter's value, its program still running.
    copy.read_until(lambda: copy.text.endswith(COUNTER_PROMPT), "the source's screen")
    assert "value = 5" in copy.text
    original.read_until(lambda: original.text.endswith(COUNTER_PROMPT), "the source's screen")
    # The same program in each, each its own: keys typed into one never reach the other.
    _say(copy, "inc 10", "[counter] 15")
    _say(original, "inc 1", "[counter] 6")
    _say(copy, "get", "[counter] 15")
    _say(original, "get", "[counter] 6")
    assert "15" not in original.text and "[counter] 6" not in copy.text
    # Fresh entropy: the two RNGs, identical at the fork, draw different bytes.
    for client in (original, copy):
        _say(client, "exit", PROMPT)
        client.command("guest")
    assert _random(original) != _random(copy)
    original.close()
    copy.close()


def test_a_fork_is_refused_to_a_stranger_and_over_the_owners_limit(server, pair):
    stranger = server.http.post("/api/sessions/not-a-session-id/fork")
    assert stranger.status_code == 404
    # The owner's two running sessions (the source and its fork) are its limit.
    refused = server.http.post(f"/api/sessions/{pair['fork']['id']}/fork")
    assert refused.status_code == 429, refused.text
    assert "running sessions" in refused.json()["error"] and refused.headers["retry-after"]
    for session in (pair["source"], pair["fork"]):
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
