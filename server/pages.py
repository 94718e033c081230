"""Pages and the health probe: the landing page, the playground, the API reference, /healthz."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from server.health import Health
from server.settings import Settings


def routes(settings: Settings) -> list[Route]:
    def page(name: str):
        path = settings.web_dir / name

        async def endpoint(request: Request) -> Response:
            return FileResponse(
                path, media_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"}
            )

        return endpoint

    async def healthz(request: Request) -> Response:
        """200 with each part's state while every part runs; 503 naming what is down."""
        health: Health | None = getattr(request.state, "health", None)
        if health is None:
            status, body = 503, {"status": "starting", "down": ["server"]}
        else:
            status, body = health.report()
        return JSONResponse(body, status, headers={"cache-control": "no-store"})

    return [
        Route("/", page("index.html"), methods=["GET", "HEAD"]),
        # The tab's own kernel, or a server-hosted session's owner page: the page picks, since
        # the owner's credential never reaches the server in its address (owner-credential.js).
        Route("/play", page("play.html"), methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/docs", page("docs.html"), methods=["GET", "HEAD"]),  # the REST API reference
    ]
