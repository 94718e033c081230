"""The application factory: every part of the site, assembled in one place."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.middleware import Middleware

from server import (
    agentapi,
    assets,
    mcpserver,
    metrics,
    modelapi,
    monitorapi,
    pages,
    recordapi,
    relay,
    sessionapi,
    shareapi,
    terminal,
    tourapi,
)
from server.agents import Agents
from server.headers import SecurityHeaders
from server.hosting import qemu_sessions
from server.modelhub import ModelHub, model_hub
from server.package import build_archive
from server.sessions import SessionRegistry
from server.settings import Settings
from server.sharing import Sharing, sharing
from server.snapshot import load_snapshot
from server.tours import load_tours


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    archive = build_archive()
    snapshot = load_snapshot(settings, archive, assets.vendor_versions(settings)["pyodide"])
    registry = metrics.Metrics()
    sessions: list[SessionRegistry] = []  # filled while the QEMU pool runs

    hub: list[Sharing] = []  # links, recordings, tab sessions: filled while the app runs
    models: list[ModelHub] = []  # the operator's model, while the app runs (if it has one)

    def sessions_of() -> SessionRegistry | None:
        return sessions[0] if sessions else None

    def hub_of() -> Sharing | None:
        return hub[0] if hub else None

    def model_of() -> ModelHub | None:
        return models[0] if models else None

    # What MCP clients and the REST API may do with sessions.
    agents = Agents(sessions_of, settings.agent_limits)
    mcp = mcpserver.build(agents)
    mcp_route = mcpserver.route(mcp)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            mcp.session_manager.run(),
            sharing(settings, sessions_of) as shared,
            model_hub(settings.model) as model,
        ):
            hub.append(shared)
            models.extend([model] if model else [])
            try:
                if settings.qemu is None:
                    yield
                    return
                async with qemu_sessions(
                    settings.qemu, settings.cache_dir, registry, model
                ) as running:
                    sessions.append(running)
                    try:
                        yield
                    finally:
                        sessions.clear()
            finally:
                hub.clear()
                models.clear()

    app = FastAPI(
        title="capOS Playground",
        summary="Typed capability calls on capOS sessions, for agents and scripts",
        version="1",
        docs_url=None,  # /docs is our own page: swagger-ui served from here, not a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
        routes=[
            *pages.routes(settings),
            *assets.routes(settings, archive, snapshot),
            *tourapi.routes(load_tours()),
            *metrics.routes(registry),
            *sessionapi.routes(sessions_of),
            *terminal.routes(sessions_of, registry),
            *monitorapi.routes(sessions_of),
            *shareapi.routes(settings, hub_of, registry),
            *recordapi.routes(settings, hub_of),
            *relay.routes(lambda: hub[0].tabs if hub else None),
            *modelapi.routes(settings.model, model_of),
            mcp_route,
        ],
        exception_handlers={RequestValidationError: agentapi.invalid_request},
        middleware=[Middleware(SecurityHeaders)],
        lifespan=lifespan,
    )
    app.include_router(agentapi.router(agents))
    app.state.settings = settings
    app.state.metrics = registry  # the server's parts count sessions, clients, bytes here
    return app
