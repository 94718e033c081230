"""The server's Prometheus metrics: one registry per app, served at GET /metrics.

The parts of the server update the families here through `app.state.metrics`
(sessions by backend, the QEMU pool, websocket clients, bytes streamed, VM
boots); this module only defines them and renders the text format. A
registry of its own per app, never prometheus_client's global one, so two
apps in one process (tests) do not share counts. The process collectors
add the server's own CPU, memory and garbage-collector figures.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BACKENDS = ("qemu", "tab", "mirror")


class Metrics:
    """The metric families the server's parts increment."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        r = self.registry
        self.sessions = Gauge(
            "capos_sessions",
            "Live sessions, by backend (qemu, tab, or mirror of another replica's)",
            ["backend"],
            registry=r,
        )
        for backend in BACKENDS:  # present at 0 from the start, so a scrape sees both
            self.sessions.labels(backend=backend)
        self.session_faults = Counter(
            "capos_session_faults",
            "Sessions ended because a task serving them failed, by backend",
            ["backend"],
            registry=r,
        )
        for backend in BACKENDS:
            self.session_faults.labels(backend=backend)
        self.pool_vms = Gauge(
            "capos_pool_vms", "VMs in the warm QEMU pool, by state", ["state"], registry=r
        )
        self.pool_waiting = Gauge(
            "capos_pool_waiting_requests", "Session requests waiting for a pool VM", registry=r
        )
        self.websocket_clients = Gauge(
            "capos_websocket_clients", "Connected websocket clients, by role", ["role"], registry=r
        )
        self.bytes_streamed = Counter(
            "capos_bytes_streamed", "Terminal bytes sent to websocket clients", registry=r
        )
        self.vm_boots = Counter("capos_vm_boots", "QEMU VMs booted", registry=r)
        self.vm_boot_failures = Counter(
            "capos_vm_boot_failures", "QEMU VM boots that failed", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def routes(metrics: Metrics) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        return Response(
            metrics.render(),
            media_type=CONTENT_TYPE_LATEST,
            headers={"cache-control": "no-store"},
        )

    return [Route("/metrics", endpoint, methods=["GET"])]
