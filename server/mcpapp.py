"""The MCP App for a session: the extension `io.modelcontextprotocol/ui` (MCP Apps).

create_session names this App (`_meta.ui.resourceUri`), so an agent's host that renders
Apps shows the new session beside the conversation: its live terminal and the
processes its shell's monitor sees (web/mcp-app.html). The App holds nothing of its
own: it reads the session through the host's tools/call, with the owner token the
create_session result gave it, so it sees exactly what the agent may. A host without
Apps shows the result as it always did.
"""

from __future__ import annotations

from mcp.server.apps import Apps

from server.settings import REPO_ROOT

SESSION_APP = "ui://capos-playground/session.html"


def session_app() -> Apps:
    apps = Apps()
    apps.add_html_resource(
        SESSION_APP,
        (REPO_ROOT / "web" / "mcp-app.html").read_text(encoding="utf-8"),
        name="capOS session",
        description="a session's live terminal and processes, beside the conversation",
        prefers_border=True,
    )
    return apps
