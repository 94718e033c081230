"""Server-hosted sessions, assembled: the guest image, the accelerator, the pool, the registry.

One async context for the app's lifespan. The pool and the registry each
run as a task in one task group; leaving the context ends the sessions
first (each shuts its VM down), then the pool (which kills any QEMU left),
so stopping the server leaves no QEMU behind.
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
from server.image import ensure_image
from server.metrics import Metrics
from server.modelhub import ModelHub
from server.pool import PoolConfig, VmPool
from server.sessions import SessionLimits, SessionRegistry
from server.settings import QemuSettings
from server.vm import VmConfig


@contextlib.asynccontextmanager
async def qemu_sessions(
    settings: QemuSettings, cache_dir: Path, metrics: Metrics, model: ModelHub | None = None
) -> AsyncIterator[SessionRegistry]:
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
        pool = VmPool(image, vm_config, pool_config, Path(state_dir), metrics, model)
        registry = SessionRegistry(pool, limits, Path(state_dir), metrics)
        async with asyncio.TaskGroup() as tasks:
            pool_task = tasks.create_task(pool.run())
            registry_task = tasks.create_task(registry.run())
            try:
                yield registry
            finally:
                for task in (registry_task, pool_task):  # sessions first, then the VMs
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
