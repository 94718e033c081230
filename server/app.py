"""The application factory: every part of the site, assembled in one place."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware

from server import assets, metrics, pages, tourapi
from server.headers import SecurityHeaders
from server.package import build_archive
from server.settings import Settings
from server.snapshot import load_snapshot
from server.tours import load_tours


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    archive = build_archive()
    snapshot = load_snapshot(settings, archive, assets.vendor_versions(settings)["pyodide"])
    registry = metrics.Metrics()
    app = FastAPI(
        title="capOS Playground",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        routes=[
            *pages.routes(settings),
            *assets.routes(settings, archive, snapshot),
            *tourapi.routes(load_tours()),
            *metrics.routes(registry),
        ],
        middleware=[Middleware(SecurityHeaders)],
    )
    app.state.settings = settings
    app.state.metrics = registry  # the server's parts count sessions, clients, bytes here
    return app
