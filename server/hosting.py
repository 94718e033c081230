"""Server-hosted sessions, assembled: the guest image, the accelerator, the pool, the
sessions kept on disk, and `QemuHosting.create`, which makes a QEMU session and hands it
to the directory.

One async context for the app's lifespan. The pool's refill loop runs supervised (one
that fails starts again, and `/healthz` says so meanwhile, while every VM runs on).
Leaving the context stops the pool, which kills any QEMU left; the app's lifespan ends
the sessions before that (each running one saving its VM first, server/sessions/qemu.py),
so stopping the server leaves no QEMU behind and every session on disk.

Suspended sessions are kept under the data directory (`vms/` and the store's `sessions`
table, server/sessions/kept.py); after a restart the directory asks `claim` for an id it
does not know, and a session kept under that id comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
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
from server.sessions.kept import KeptSessions
from server.sessions.live import SessionError
from server.sessions.qemu import QemuSession, SessionLimits
from server.settings import QemuSettings
from server.store import Store, StoreError
from server.supervise import supervised
from server.vm import Vm, VmConfig
from server.vmcopy import CopyFailed
from server.vmstate import StateFiles, zstd_missing

BACKENDS = ("qemu",)


class QemuHosting:
    """Makes QEMU sessions on warm VMs from the pool, and brings back kept ones."""

    def __init__(
        self,
        pool: VmPool,
        limits: SessionLimits,
        kept: KeptSessions,
        directory: SessionDirectory,
        admission: Admission,
    ) -> None:
        self.pool, self.limits, self.kept = pool, limits, kept
        self.directory, self.admission = directory, admission
        self._forking = asyncio.Lock()

    def create(self, backend: str, client: str) -> QemuSession:
        """A new session on a warm VM for `client`; PoolFull (from the pool) when there is
        none, Refused when the client holds its share already."""
        if backend not in BACKENDS:
            raise SessionError(
                f"unknown backend {backend!r}; this server offers {list(BACKENDS)}", status=400
            )
        self._admit(client)
        return self.adopt(self.pool.take(), client)

    async def fork(self, source: QemuSession) -> tuple[QemuSession, dict]:
        """A new session whose VM is a copy of `source`'s as it runs now, counted against
        `source`'s client, and what the copy cost the source; Refused, PoolFull, or
        SessionError when it cannot be made."""
        async with source.attached(), self._forking:  # awake; one fork at a time
            self._admit(source.client)
            running = await source.running_vm(self.limits.restore_timeout_s)  # it may wake
            try:
                vm, cost = await self.pool.fork(running)
            except CopyFailed as exc:
                raise SessionError(f"the session could not be forked: {exc}", 409) from None
            try:  # a session created meanwhile counts too
                self._admit(source.client)
            except SessionError:
                await vm.shutdown("its session was refused")
                raise
            return self.adopt(vm, source.client), cost

    def _admit(self, client: str) -> None:
        """Refuse one more running session for `client` when the server or the client's
        share is full."""
        if not self.directory.accepting:
            raise SessionError("the server is not accepting sessions (starting or stopping)")
        live = self.directory.live(QemuSession)
        if len(live) + self.kept.waiting() >= self.limits.max_sessions:
            limit = self.limits.max_sessions
            raise SessionError(f"this server holds its maximum of {limit} sessions")
        mine = [s for s in live if s.client == client]
        suspended = sum(1 for s in mine if s.phase == "suspended")
        running = len(mine) - suspended
        suspended += self.kept.waiting(client)  # kept from before a restart, not claimed yet
        limits, end_one = self.admission.limits, "end one (DELETE /api/sessions/{id}) first"
        self.admission.check("running sessions", running, limits.qemu_sessions, end_one)
        self.admission.check("suspended sessions", suspended, limits.suspended_sessions, end_one)

    def adopt(self, vm: Vm, client: str = "") -> QemuSession:
        """A new session on `vm`, a VM of the pool's."""
        session = QemuSession(self.pool, self.limits, self.kept, vm.stream, vm=vm, client=client)
        return self.directory.add(session)

    def claim(self, session_id: str) -> QemuSession | None:
        """The session kept under this id from before a restart, live again (suspended:
        it restores its VM when a client attaches); None when none is kept."""
        suspension = self.kept.claim(session_id)
        if suspension is None:
            return None
        session = QemuSession.revived(self.pool, self.limits, self.kept, session_id, suspension)
        return self.directory.add(session)


@contextlib.asynccontextmanager
async def qemu_hosting(
    settings: QemuSettings,
    cache_dir: Path,
    directory: SessionDirectory,
    metrics: Metrics,
    health: Health,
    admission: Admission,
    store: Store,
    data_dir: Path,
    model: ModelHub | None = None,
) -> AsyncIterator[QemuHosting]:
    """`store` and `data_dir`: where suspended sessions are kept; `model`: the server's
    model, for agent mode in the sessions."""
    if shutil.which(VmConfig.qemu) is None:
        raise RuntimeError(
            f"{VmConfig.qemu} is not installed: server-hosted sessions need it "
            "(apt-get install qemu-system-x86; `make run` does it), "
            "or start the server with --max-vms 0"
        )
    if (missing := zstd_missing()) is not None:
        raise RuntimeError(f"{missing}, or start the server with --max-vms 0")
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
    states = StateFiles(data_dir / "vms")
    kept = KeptSessions(store, states)
    await kept.load()
    vm_config = VmConfig(memory_mib=settings.memory_mib, accel=accel)
    template = states.new_template()
    pool = VmPool(image, vm_config, pool_config, template, metrics, health, model)
    hosting = QemuHosting(pool, limits, kept, directory, admission)
    async with asyncio.TaskGroup() as tasks:
        running = tasks.create_task(pool.run())
        sweeping = tasks.create_task(supervised("store", health, lambda: kept.run(template)))
        directory.keeper = hosting
        try:
            yield hosting
        finally:
            directory.keeper = None
            running.cancel()
            sweeping.cancel()
    with contextlib.suppress(StoreError, OSError):  # the next start sweeps as it loads
        await kept.sweep(template=None)  # the pool's template too, unless a session needs it
