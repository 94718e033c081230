"""The application factory: every part of the site, assembled in one place."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.middleware import Middleware

from server import assets, metrics, monitorapi, pages, sessionapi, terminal, tourapi
from server.headers import SecurityHeaders
from server.hosting import qemu_sessions
from server.package import build_archive
from server.sessions import SessionRegistry
from server.settings import Settings
from server.snapshot import load_snapshot
from server.tours import load_tours


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    archive = build_archive()
    snapshot = load_snapshot(settings, archive, assets.vendor_versions(settings)["pyodide"])
    registry = metrics.Metrics()
    sessions: list[SessionRegistry] = []  # filled while the QEMU pool runs

    def sessions_of() -> SessionRegistry | None:
        return sessions[0] if sessions else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.qemu is None:
            yield
            return
        async with qemu_sessions(settings.qemu, settings.cache_dir, registry) as running:
            sessions.append(running)
            try:
                yield
            finally:
                sessions.clear()

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
            *sessionapi.routes(sessions_of),
            *terminal.routes(sessions_of, registry),
            *monitorapi.routes(sessions_of),
        ],
        middleware=[Middleware(SecurityHeaders)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = registry  # the server's parts count sessions, clients, bytes here
    return app
