"""A plain page that tells a visitor why a link does not work (gone, unknown), never a trace."""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} · capOS Playground</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/static/style.css">
</head>
<body class="notice">
  <main>
    <h1>{title}</h1>
    <p id="reason">{message}</p>
    <p><a href="/">capOS Playground</a> · <a href="/play">start your own session</a></p>
  </main>
</body>
</html>
"""


def notice(title: str, message: str, status: int) -> HTMLResponse:
    page = _PAGE.format(title=html.escape(title), message=html.escape(message))
    return HTMLResponse(page, status, headers={"cache-control": "no-store"})
