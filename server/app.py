"""The application factory: every part of the site, assembled in one place.

The routes are fixed lists; the running parts (the session directory, the QEMU hosting,
the share hub, the model, the agent operations, health) exist only while the app runs,
so the lifespan makes them and hands them to every request as Starlette's lifespan
state (`request.state.directory`, ...). A route whose part is not running answers 503.

Shutting down goes from the leaves inwards: the sessions end first (each running QEMU
session saves its VM to the data directory, to come back after a restart, and lets its
recorders finish), then the pool (which kills any QEMU left), then the share hub and its
store, which kept the suspended sessions' rows.
"""

from __future__ import annotations

import asyncio
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
from server.admission import Admission
from server.agents import Agents
from server.guard import Guard
from server.headers import SecurityHeaders
from server.health import Health
from server.hosting import QemuHosting, qemu_hosting
from server.mcptasks import ToolTasks
from server.modelhub import ModelHub, model_hub, no_model_reason
from server.origin import HostAllowList
from server.package import build_archive
from server.sessions.directory import SessionDirectory
from server.settings import Settings
from server.sharing import sharing
from server.snapshot import load_snapshot
from server.store import Store
from server.tours import load_tours


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    archive = build_archive()
    snapshot = load_snapshot(settings, archive, assets.vendor_versions(settings)["pyodide"])
    registry = metrics.Metrics()
    allow = HostAllowList(settings.public_hosts, settings.port)
    tool_tasks = ToolTasks()
    mcp = mcpserver.build(tool_tasks)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict]:
        health = Health()
        directory = SessionDirectory(registry)
        admission = Admission(settings.admission)
        tokens_per_hour = settings.admission.model_tokens_per_hour
        async with (
            mcp.session_manager.run(),
            tool_tasks.running(),
            model_hub(settings.model, tokens_per_hour) as model,
        ):
            health.ok("mcp")
            if model is None:
                health.off("model", no_model_reason(settings.model))
            else:
                health.ok("model", model.info.get("name", ""))
            async with (
                asyncio.TaskGroup() as tasks,
                sharing(settings, directory, health) as hub,
                _hosting(
                    settings, directory, registry, health, admission, hub.store, model
                ) as hosting,
            ):
                sessions = tasks.create_task(directory.run())
                try:
                    yield {
                        "health": health,
                        "admission": admission,
                        "directory": directory,
                        "hosting": hosting,
                        "hub": hub,
                        "model": model,
                        "agents": Agents(hosting, directory, hub, registry, settings.agent_limits),
                    }
                finally:
                    sessions.cancel()  # every session ends before the pool and the hub
                    with contextlib.suppress(asyncio.CancelledError):
                        await sessions

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
            *sessionapi.routes(),
            *terminal.routes(registry, settings.output_times),
            *monitorapi.routes(),
            *shareapi.routes(settings, registry),
            *recordapi.routes(settings),
            *relay.routes(settings),
            *modelapi.routes(settings.model),
            mcpserver.route(mcp, allow),
        ],
        exception_handlers={RequestValidationError: agentapi.invalid_request},
        # SecurityHeaders outermost: the Guard's refusals carry the headers too.
        middleware=[Middleware(SecurityHeaders), Middleware(Guard, allow=allow)],
        lifespan=lifespan,
    )
    app.include_router(agentapi.router())
    app.state.settings = settings
    app.state.metrics = registry  # the server's parts count sessions, clients, bytes here
    return app


@contextlib.asynccontextmanager
async def _hosting(
    settings: Settings,
    directory: SessionDirectory,
    registry: metrics.Metrics,
    health: Health,
    admission: Admission,
    store: Store,
    model: ModelHub | None,
) -> AsyncIterator[QemuHosting | None]:
    """The QEMU pool and its sessions, when this server runs them; `store` keeps the
    suspended ones."""
    if settings.qemu is None:
        health.off("pool", "this server runs no QEMU sessions (--max-vms 0)")
        yield None
        return
    async with qemu_hosting(
        settings.qemu,
        settings.cache_dir,
        directory,
        registry,
        health,
        admission,
        store,
        settings.data_path,
        model,
    ) as hosting:
        yield hosting
