"""A visitor hands their tab to an agent: the real tab in Chromium, the MCP SDK's client.

One page boot serves the whole story: the owner makes an agent link from the
share panel, an agent holding only that link drives the tab's own shell with
the same MCP tools as a server session (served by the tab's kernel, over the
relay), the page shows the agent attached and what it called, and revoking
the link refuses the agent's next call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from mcp import Client

from bench.liveserver import ONE_ADDRESS_RIG
from bench.tab import become_guest, has_prompt, screen, serving, wait_screen
from server.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory) -> Iterator[str]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), admission=ONE_ADDRESS_RIG)
    with serving(settings) as url:
        yield url


def agent(base_url: str, name: str, **arguments) -> tuple[bool, dict]:
    """One MCP tool call with the SDK's client, as an agent's host makes it (in a thread of
    its own: the page's Playwright owns this one's event loop)."""

    async def call() -> tuple[bool, dict]:
        async with Client(f"{base_url}/mcp") as client:
            result = await client.call_tool(name, arguments)
            return result.is_error, result.structured_content

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, call()).result(timeout=60)


def calls_shown(page) -> list[str]:
    return page.locator("#agent-calls li").all_inner_texts()


def test_an_agent_drives_a_tab_through_its_agent_link_until_the_owner_revokes_it(browser, base_url):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base_url + "/play")
    wait_screen(page, has_prompt, 120)
    page.click("#share-toggle")
    page.click("#share-agent")
    link = page.locator("#share-links li[data-mode=agent] a.link")
    link.wait_for()
    session = {"session": link.get_attribute("href")}  # the link's address, no owner token
    assert "/mcp" in page.inner_text("#share-links li[data-mode=agent]")
    assert page.is_hidden("#agent-attached")

    # The agent holds exactly what the tab's shell holds: anonymous's caps, then a guest's.
    failed, held = agent(base_url, "list_caps", **session)
    assert not failed, held
    names = {cap["name"]: cap["interface"] for cap in held["caps"]}
    assert names["manual"] == "Manual" and "launcher" not in names and "echo" not in names
    page.wait_for_selector("#agent-attached", state="visible")
    become_guest(page)
    failed, held = agent(base_url, "list_caps", **session)
    names = {cap["name"]: cap["interface"] for cap in held["caps"]}
    assert names["echo"] == "Echo" and names["launcher"] == "ProcessSpawner"

    echo = {"cap": "echo", "method": "echo", "arguments": {"data": "from an agent"}}
    assert agent(base_url, "call_method", **session, **echo) == (
        False,
        {"results": {"data": "from an agent"}},
    )
    failed, written = agent(base_url, "terminal_write", **session, data="timer.now()\r")
    assert not failed, written
    wait_screen(page, lambda rows: any(r.startswith("ns = ") for r in rows), 30)  # in the tab
    failed, read = agent(
        base_url, "terminal_read", **session, offset=written["output_offset"], wait_ms=5000
    )
    assert not failed and "timer.now()" in read["data"], read
    failed, refused = agent(base_url, "end_session", **session)
    assert failed and refused["error"]["kind"] == "forbidden"
    assert "only its owner" in refused["error"]["message"]
    assert not page.is_closed() and any(r.startswith("ns = ") for r in screen(page))

    page.wait_for_function("() => document.querySelectorAll('#agent-calls li').length >= 5")
    shown = calls_shown(page)
    assert any("list_caps" in c for c in shown)
    assert any("call_method echo.echo" in c and "refused" not in c for c in shown)
    assert any("terminal_write" in c for c in shown)
    assert any("end_session" in c and "refused: forbidden" in c for c in shown)

    page.locator("#share-links li[data-mode=agent] button.revoke").click()
    page.wait_for_selector("#agent-attached", state="hidden")
    failed, after = agent(base_url, "list_caps", **session)
    assert failed and after["error"]["kind"] == "gone" and "revoked" in after["error"]["message"]
    page.wait_for_function(
        "() => [...document.querySelectorAll('#agent-calls li')].pop().textContent"
        ".includes('refused: gone')"
    )
    assert errors == []
    page.close()
