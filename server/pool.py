"""The warm pool: VMs waiting at the shell's prompt, and a cap on all VMs.

The pool owns every QEMU process (warm, booting, handed out, restoring) in
its task group, so stopping the pool ends them all. `take` hands out a warm
VM at once or raises `PoolFull`: nothing ever waits for a boot. Whenever
the warm count falls below its target and the cap allows, the pool starts
another in the background.

Refills restore a snapshot rather than boot: at start the pool boots one VM
to the prompt and saves it to a file (the template); each new VM is QEMU
restoring that file, a fraction of a second instead of seconds of CPU
under TCG (see `bench pool`). The template's RAM is kept in a sealed memfd
that each clone maps copy-on-write, so clones share the pages none of them
has written (server/templateram.py); where that cannot be set up, each clone
loads the whole stream. A restored clone is sent fresh entropy over the
control channel and one unseen Enter (so TCG has translated its input path
before the visitor's first key) before it is handed out, and its output
stream starts with the screen the template had. Values drawn before the snapshot (the
guest kernel's secret) are shared by the clones, each in its own VM.

`fork` makes a VM that is a copy of a running one (server/vmcopy.py): a clone of
the template like the rest, onto which the source's written pages and device state
are loaded. Its QEMU is the spare, started ahead: once a fork has been asked for, the
pool keeps one waiting for the next (within the cap, and the first to go for room).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.control import ControlError
from server.health import Health
from server.image import Image
from server.metrics import Metrics
from server.modelhub import ModelHub
from server.qmp import QmpError
from server.sandbox import sandbox
from server.stream import OutputStream
from server.supervise import any_set, supervised
from server.templateram import GuestRam, TemplateRam
from server.vm import Vm, VmConfig
from server.vmcopy import CopyFailed, copy_vm

log = logging.getLogger("capos.pool")
MAX_BACKOFF_S = 60
FAILURES_DOWN = 3  # VMs in a row that did not come up before the pool says it is down
REFILL_DELAY_S = 0.25  # after a handout, so the new session's first round trips go first
WARM_UP_TIMEOUT_S = 10  # for a restored VM's unseen Enter (Vm.warm_up)
FORK_TIMEOUT_S = 30  # a fork's QEMU, started to running and reseeded


class PoolFull(Exception):
    """No VM can be handed out now; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class PoolConfig:
    warm: int = 2  # VMs kept booted and waiting
    max_vms: int = 8  # every QEMU process this server runs, of any kind
    scrollback: int = 256 * 1024
    boot_timeout_s: float = 120.0
    snapshot: bool = True  # refill by restoring a booted template (else: boot each VM)


class VmPool:
    def __init__(
        self,
        image: Image,
        vm_config: VmConfig,
        config: PoolConfig,
        template: Path,
        metrics: Metrics,
        health: Health,
        model: ModelHub | None = None,
    ) -> None:
        """`template`: where to save the template (server/vmstate.py keeps it while saved
        sessions need it); `model`: the server's model, which each VM's agent mode uses."""
        self.image, self.vm_config, self.config = image, vm_config, config
        self.metrics = metrics
        self.health = health
        self.model = model
        self._template = template
        self._template_screen: bytes | None = None  # set once the template is saved
        self.vms: set[Vm] = set()  # every live QEMU
        self._warm: list[Vm] = []  # ready, not handed out
        self._booting: set[Vm] = set()
        self._names = (f"capos-{os.getpid()}-{n}" for n in itertools.count(1))
        self._changed = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self.boot_seconds: list[float] = []  # start to ready, of every VM so far
        self._failures = 0  # VMs in a row that did not come up
        self._refill_at = 0.0  # monotonic time before which no refill starts
        self._making_template = False  # the first VM boots to be saved, then warm ones follow
        self._shared: TemplateRam | None = None  # the template's RAM, once sealed
        self._spare: Vm | None = None  # a fork's QEMU, up and waiting for its copy
        self._want_spare = False  # set by the first fork

    async def run(self) -> None:
        """Keep the pool filled until cancelled; every VM lives in this task group.

        The refill loop runs supervised inside it: if it fails, it starts again (and
        `/healthz` says the pool is down meanwhile), while every VM runs on."""
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                try:
                    await supervised("pool", self.health, self._keep_filled)
                finally:
                    self._tasks = None
        finally:
            if self._shared is not None:  # every VM, each clone that mapped it, has exited
                self._shared.close()

    async def _keep_filled(self) -> None:
        if self.config.snapshot and self._template_screen is None:
            self.health.starting("pool", "booting the template VM")
            self._making_template = True
            try:
                await self._make_template()
            finally:
                self._making_template = False
        self.health.ok("pool", self.describe())
        while True:
            if self._failures:  # a VM that fails to start would fail again at once
                await asyncio.sleep(min(MAX_BACKOFF_S, 2**self._failures))
            # A refill competes for the CPU with the visitor just handed a VM.
            await asyncio.sleep(max(0.0, self._refill_at - time.monotonic()))
            while (
                len(self._warm) + len(self._booting) < self.config.warm
                and len(self.vms) < self.config.max_vms
            ):
                self._boot()
            if self._want_spare and self._spare is None and len(self.vms) < self.config.max_vms:
                self._spare = self._start_spare()
            self._changed.clear()
            await self._changed.wait()

    async def _make_template(self) -> None:
        """Boot one VM to the prompt and save it; on failure, refills boot instead."""
        shared = None
        with contextlib.suppress(OSError):  # no memfd: each clone loads the whole stream
            shared = TemplateRam(self.vm_config.memory_mib)
        vm = self.start(
            OutputStream(self.config.scrollback),
            serve_model=False,
            ram=shared.for_template() if shared else None,
        )
        self._booting.add(vm)  # for Retry-After meanwhile
        ready = await self._ready(vm)
        self._booting.discard(vm)
        if ready:
            screen = vm.stream.snapshot().data.encode()
            try:
                await vm.suspend(self._template, shared.devices if shared else None)
                self._template_screen = screen
                if shared is not None:
                    shared.seal()
                    self._shared = shared
                return
            except (QmpError, OSError) as exc:
                print(
                    f"capOS pool: cannot save a template VM ({exc}); booting each VM instead",
                    file=sys.stderr,
                )
        vm.kill("no template")
        if shared is not None:
            await vm.exited.wait()
            shared.close()

    async def _ready(self, vm: Vm) -> bool:
        """Wait for `vm` to reach the prompt (or be restored); False if it exits or times out."""
        await any_set(vm.ready, vm.exited, timeout=self.config.boot_timeout_s)
        if vm.ready.is_set() and not vm.exited.is_set():
            self.boot_seconds.append((vm.ready_at or vm.started_at) - vm.started_at)
            self.metrics.vm_boots.inc()
            if self._failures >= FAILURES_DOWN:
                self.health.ok("pool", self.describe())
            self._failures = 0
            return True
        vm.kill(f"it did not reach the prompt within {self.config.boot_timeout_s:.0f} s")
        self.metrics.vm_boot_failures.inc()
        self._failures += 1
        why = vm.exit_reason or "timeout"
        print(f"capOS pool: a VM did not come up: {why}", file=sys.stderr)
        if self._failures >= FAILURES_DOWN:
            self.health.down("pool", f"{self._failures} VMs in a row did not come up ({why})")
        return False

    @property
    def template(self) -> Path | None:
        """The saved template VM every refill restores, once there is one."""
        return self._template if self._template_screen is not None else None

    def _boot(self) -> None:
        stream = OutputStream(self.config.scrollback)
        if self._template_screen is None:
            vm = self.start(stream)
        else:
            stream.append(self._template_screen)
            if self._shared is not None:
                vm = self.start(stream, self._shared.devices, ram=self._shared.for_clone())
            else:
                vm = self.start(stream, incoming=self._template)
        self._booting.add(vm)
        self._own_task(self._await_boot(vm), vm)

    def _own_task(self, work: Coroutine[Any, Any, None], vm: Vm) -> None:
        """A task for `vm` in the pool's group; a failure in it ends that VM, never the pool."""

        async def guarded() -> None:
            try:
                await work
            except Exception as exc:
                log.exception("capOS pool: serving VM %s failed", vm.name)
                vm.kill(f"the server failed serving this VM ({exc or type(exc).__name__})")

        if self._tasks is None:
            work.close()
            raise RuntimeError("the pool is not running")
        self._tasks.create_task(guarded())

    async def _await_boot(self, vm: Vm) -> None:
        try:
            if await self._ready(vm) and vm.incoming is not None:
                await vm.control.call(reseed=os.urandom(32))
                if not await vm.warm_up(WARM_UP_TIMEOUT_S):
                    vm.kill(f"the restored VM did not answer Enter within {WARM_UP_TIMEOUT_S} s")
        except (ControlError, TimeoutError) as exc:
            vm.kill(f"the restored VM did not take fresh entropy: {exc}")
        finally:
            self._booting.discard(vm)
        if vm.ready.is_set() and not vm.exited.is_set():
            self._warm.append(vm)
        self._note_change()

    def start(
        self,
        stream: OutputStream,
        incoming: Path | int | None = None,
        *,
        serve_model: bool = True,
        image: Image | None = None,
        ram: GuestRam | None = None,
        awaits_copy: bool = False,
    ) -> Vm:
        """A new QEMU writing into `stream` (restored from `incoming` if given), owned here;
        `image`: another guest than the pool's (the fault tests boot misbehaving ones);
        `ram`: its RAM in a file (server/templateram.py); `awaits_copy`: a fork's QEMU,
        started ahead (Vm.load)."""
        vm = Vm(
            image or self.image,
            self.vm_config,
            stream,
            name=next(self._names),
            incoming=incoming,
            model=self.model,
            serve_model=serve_model,
            ram=ram,
            awaits_copy=awaits_copy,
        )
        self._own_task(self._own(vm), vm)
        self.vms.add(vm)
        return vm

    async def _own(self, vm: Vm) -> None:
        try:
            await vm.run()
        finally:
            self.vms.discard(vm)
            if vm in self._warm:
                self._warm.remove(vm)
            if vm is self._spare:
                self._spare = None
            self._note_change()

    def _note_change(self) -> None:
        """Wake the refill loop and publish the counts."""
        self._changed.set()
        warm, booting = len(self._warm), len(self._booting)
        gauge = self.metrics.pool_vms
        gauge.labels(state="warm").set(warm)
        gauge.labels(state="booting").set(booting)
        spare = int(self._spare is not None)
        gauge.labels(state="spare").set(spare)
        gauge.labels(state="in_use").set(max(0, len(self.vms) - warm - booting - spare))

    def take(self) -> Vm:
        """A warm VM, now; PoolFull if there is none."""
        while self._warm:
            vm = self._warm.pop(0)
            self._refill_at = time.monotonic() + REFILL_DELAY_S
            self._note_change()
            if not vm.exited.is_set():
                return vm
        raise PoolFull(
            "every VM is in use or still booting; try again shortly",
            retry_after=self._retry_after(),
        )

    async def fork(self, source: Vm) -> tuple[Vm, dict]:
        """A new VM that is a copy of `source` as it is now (which pauses for the copy and
        runs on), with fresh entropy, and what the copy cost the source (VmCopy.info).
        PoolFull when no slot is free; CopyFailed, with nothing left running, when it
        cannot be made.

        The fork's QEMU is the spare, started ahead; the first fork starts one (while the
        source is copied), and from then on the pool keeps one waiting for the next. A
        source whose RAM is all its own (restored from disk) is copied whole instead."""
        if self._shared is None or source.ram is None:
            return await self._fork_whole(source)
        self._want_spare = True
        vm, self._spare = self._spare, None
        if vm is None or vm.exited.is_set():
            if not self.make_room():
                raise PoolFull("every VM slot is in use; try again shortly", self._retry_after())
            vm = self._start_spare()
        try:
            copy = await copy_vm(source)
        except CopyFailed:
            if self._spare is None and not vm.exited.is_set():  # the spare waits for the next
                self._spare = vm
            else:
                vm.kill("a spare QEMU was not needed")
            raise
        try:
            await any_set(vm.awaiting, vm.exited, timeout=FORK_TIMEOUT_S)
            if not vm.awaiting.is_set() or vm.exited.is_set():
                raise CopyFailed(vm.exit_reason or f"QEMU was not up within {FORK_TIMEOUT_S} s")
            async with asyncio.timeout(FORK_TIMEOUT_S):
                await vm.load(copy)
            await self._reseed_fork(vm)
        except (CopyFailed, QmpError, TimeoutError) as exc:
            vm.kill(f"the fork did not come up: {exc}")
            await vm.exited.wait()
            raise CopyFailed(f"the fork did not come up ({exc or 'timeout'})") from None
        finally:
            self._refill_at = time.monotonic() + REFILL_DELAY_S
            self._note_change()  # the refill loop starts the next spare
        return vm, copy.info()

    async def _fork_whole(self, source: Vm) -> tuple[Vm, dict]:
        """A fork of a VM whose RAM is its own: its whole migration stream, through a memfd
        the fork's QEMU restores (slower: every page the guest ever touched)."""
        if not self.make_room():
            raise PoolFull("every VM slot is in use; try again shortly", self._retry_after())
        saved = os.memfd_create("capos-fork-whole", os.MFD_CLOEXEC)
        try:
            started = time.monotonic()
            try:
                screen = await source.save_running(Path(f"/proc/self/fd/{saved}"))
            except (QmpError, OSError) as exc:
                raise CopyFailed(f"its VM could not be copied ({exc})") from None
            paused = time.monotonic() - started
            stream = OutputStream(self.config.scrollback)
            stream.append(screen)
            vm = self.start(stream, incoming=saved)
            await any_set(vm.ready, vm.exited, timeout=FORK_TIMEOUT_S)
            size = os.fstat(saved).st_size
        finally:
            os.close(saved)  # QEMU has its own by now, or is gone
        if not vm.ready.is_set() or vm.exited.is_set():
            vm.kill("the fork did not come up")
            await vm.exited.wait()
            raise CopyFailed(vm.exit_reason or f"it was not running within {FORK_TIMEOUT_S} s")
        await self._reseed_fork(vm)
        return vm, {"source_pause_ms": round(paused * 1000, 1), "copied_bytes": size}

    async def _reseed_fork(self, vm: Vm) -> None:
        """Fresh entropy, before anyone reaches the fork: its RNG was its source's."""
        try:
            await vm.control.call(reseed=os.urandom(32))
        except (ControlError, TimeoutError) as exc:
            vm.kill(f"the fork did not take fresh entropy: {exc}")
            await vm.exited.wait()
            raise CopyFailed(f"the fork did not take fresh entropy ({exc})") from None

    def _start_spare(self) -> Vm:
        assert self._shared is not None
        return self.start(
            OutputStream(self.config.scrollback), ram=self._shared.for_clone(), awaits_copy=True
        )

    def filling(self) -> bool:
        """A warm VM is on its way: one is booting, or the pool is short and has room."""
        short = len(self._warm) < self.config.warm and len(self.vms) < self.config.max_vms
        return bool(self._booting) or short or self._making_template

    def make_room(self) -> bool:
        """Free a slot under the cap for a restore or a fork, by ending the spare or a warm VM
        if need be."""
        if len(self.vms) < self.config.max_vms:
            return True
        if self._spare is not None:
            self._spare.kill("its slot went to a session")
            self._spare = None
            return True
        if self._warm:
            self._warm.pop().kill("its slot went to a session")
            return True
        return False

    def _retry_after(self) -> int:
        if self._booting and self.boot_seconds:
            return max(1, round(sorted(self.boot_seconds)[len(self.boot_seconds) // 2]))
        return 5 if self._booting else 30

    def describe(self) -> str:
        return "snapshot restore" if self._template_screen is not None else "cold boot"

    def stats(self) -> dict:
        return {
            "warm": len(self._warm),
            "booting": len(self._booting),
            "vms": len(self.vms),
            "spare": int(self._spare is not None and self._spare.awaiting.is_set()),
            "max_vms": self.config.max_vms,
            "refill": self.describe(),
            "sandbox": sandbox().stats(self.vm_config.memory_mib),
        }
