"""Server-hosted sessions, assembled: the guest image, the accelerator, the pool, and
`QemuHosting.create`, which makes a QEMU session and hands it to the directory.

One async context for the app's lifespan. The pool's refill loop runs supervised (one
that fails starts again, and `/healthz` says so meanwhile, while every VM runs on).
Leaving the context stops the pool, which kills any QEMU left; the app's lifespan ends
the sessions before that, so stopping the server shuts every VM down and leaves no
QEMU behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from server.accel import probe_accel
from server.admission import Admission
from server.health import Health
from server.image import ensure_image
from server.metrics import Metrics
from server.modelhub import ModelHub
from server.pool import PoolConfig, VmPool
from server.sandbox import sandbox
from server.sessions.directory import SessionDirectory
from server.sessions.live import SessionError
from server.sessions.qemu import QemuSession, SessionLimits
from server.settings import QemuSettings
from server.vm import VmConfig

BACKENDS = ("qemu",)


class QemuHosting:
    """Makes QEMU sessions on warm VMs from the pool."""

    def __init__(
        self,
        pool: VmPool,
        limits: SessionLimits,
        state_dir: Path,
        directory: SessionDirectory,
        admission: Admission,
    ) -> None:
        self.pool, self.limits, self.state_dir = pool, limits, state_dir
        self.directory, self.admission = directory, admission

    def create(self, backend: str, client: str) -> QemuSession:
        """A new session on a warm VM for `client`; PoolFull (from the pool) when there is
        none, Refused when the client holds its share already."""
        if backend not in BACKENDS:
            raise SessionError(
                f"unknown backend {backend!r}; this server offers {list(BACKENDS)}", status=400
            )
        if not self.directory.accepting:
            raise SessionError("the server is not accepting sessions (starting or stopping)")
        live = self.directory.live(QemuSession)
        if len(live) >= self.limits.max_sessions:
            limit = self.limits.max_sessions
            raise SessionError(f"this server holds its maximum of {limit} sessions")
        mine = [s for s in live if s.client == client]
        suspended = sum(1 for s in mine if s.phase == "suspended")
        limits, end_one = self.admission.limits, "end one (DELETE /api/sessions/{id}) first"
        self.admission.check(
            "running sessions", len(mine) - suspended, limits.qemu_sessions, end_one
        )
        self.admission.check("suspended sessions", suspended, limits.suspended_sessions, end_one)
        vm = self.pool.take()
        return self.directory.add(QemuSession(self.pool, vm, self.limits, self.state_dir, client))


@contextlib.asynccontextmanager
async def qemu_hosting(
    settings: QemuSettings,
    cache_dir: Path,
    directory: SessionDirectory,
    metrics: Metrics,
    health: Health,
    admission: Admission,
    model: ModelHub | None = None,
) -> AsyncIterator[QemuHosting]:
    """`model`: the server's model, for agent mode in the sessions."""
    if shutil.which(VmConfig.qemu) is None:
        raise RuntimeError(
            f"{VmConfig.qemu} is not installed: server-hosted sessions need it "
            "(apt-get install qemu-system-x86; `make run` does it), "
            "or start the server with --max-vms 0"
        )
    image = await asyncio.to_thread(ensure_image, cache_dir)
    accel = settings.accel if settings.accel != "auto" else await probe_accel(image)
    print(f"capOS Playground: QEMU pool ({accel}, {settings.warm} warm)", file=sys.stderr)
    confinement = sandbox().describe(settings.memory_mib)
    print(f"capOS Playground: QEMU sandbox: {confinement}", file=sys.stderr)
    pool_config = PoolConfig(
        warm=settings.warm,
        max_vms=settings.max_vms,
        scrollback=settings.scrollback,
        snapshot=settings.snapshot,
    )
    limits = SessionLimits(
        idle_timeout_s=settings.idle_timeout_s,
        lifetime_s=settings.lifetime_s,
        cpu_seconds=settings.cpu_seconds,
        max_sessions=settings.max_sessions,
    )
    with tempfile.TemporaryDirectory(prefix="capos-sessions-") as state_dir:
        vm_config = VmConfig(memory_mib=settings.memory_mib, accel=accel)
        pool = VmPool(image, vm_config, pool_config, Path(state_dir), metrics, health, model)
        async with asyncio.TaskGroup() as tasks:
            running = tasks.create_task(pool.run())
            try:
                yield QemuHosting(pool, limits, Path(state_dir), directory, admission)
            finally:
                running.cancel()
