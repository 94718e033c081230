"""The REST API's reference at /docs, drawn in Chromium by the swagger-ui the server serves.

Nothing may come from another origin (the CSP would block it, and the
page would be blank): the test fails on any console error or any request
that leaves the server.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_docs_page_lists_the_agent_operations_with_their_schemas(browser, base_url):
    page = browser.new_page()
    errors, foreign = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(base_url) else None)
    page.goto(f"{base_url}/docs")
    calls = page.get_by_text("/api/sessions/{session_id}/calls", exact=True)
    calls.wait_for(timeout=30_000)
    calls.click()  # opens the operation: its request body's schema
    page.get_by_text("kind: capException").first.wait_for()  # errors are documented too
    body = page.inner_text("body")
    for path in ("/caps", "/caps/{name}", "/processes", "/terminal/input", "/terminal/output"):
        assert f"/api/sessions/{{session_id}}{path}" in body
    assert "CallAnswer" in body and "ErrorBody" in body
    assert not foreign, foreign
    assert not errors, errors
    page.close()
