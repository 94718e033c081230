"""A QEMU session: a system booted in a VM from the pool, driven by a visitor or an agent.

The session owns its output stream (which outlives any one VM) and, while it runs, a
VM the pool handed out. Its supervisor (`serve`) enforces the limits: a wall-clock
lifetime, a CPU budget, and an idle timeout after which the VM is saved to a file and
ended, to be restored when a client attaches again. A VM that exits on its own ends
the session with the reason. The pool keeps owning the QEMU processes (it caps them
all); the session decides their fate and shuts its VM down whenever it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from server.control import ControlError
from server.monitorfeed import MonitorFeed
from server.pool import VmPool
from server.qmp import QmpError
from server.sessions.live import LiveSession, SessionError
from server.supervise import any_set
from server.vm import InputBacklog, Vm

MAX_PENDING_INPUT = 64 * 1024  # typed while a session is being restored
_TICK_S = 1.0


@dataclass(frozen=True)
class SessionLimits:
    idle_timeout_s: float = 300.0  # no client attached for this long: suspend
    lifetime_s: float = 3600.0
    cpu_seconds: float = 900.0
    restore_timeout_s: float = 30.0
    max_sessions: int = 64  # running and suspended


class QemuSession(LiveSession):
    backend = "qemu"

    def __init__(
        self, pool: VmPool, vm: Vm, limits: SessionLimits, state_dir: Path, client: str = ""
    ) -> None:
        super().__init__(vm.stream, client=client)
        self.pool, self.limits = pool, limits
        self.vm: Vm | None = vm  # None while suspended
        self._deadline = time.monotonic() + limits.lifetime_s
        self._state_file = state_dir / f"{self.id}.vmstate"
        self.phase = "running"  # running | suspending | suspended | resuming | ended
        # CPU seconds charged before the current VM's own count: minus what it
        # spent booting (not the session's doing), plus what earlier VMs used.
        self._cpu_before = -vm.cpu_seconds()
        self._pending_input = bytearray()
        self._poke = asyncio.Event()  # a client came or went
        self.monitor = MonitorFeed(self)  # the monitor sockets' one poll of the guest

    @property
    def state(self) -> str:
        return self.phase

    def info(self) -> dict:
        return {
            **super().info(),
            "terminal": f"/api/sessions/{self.id}/terminal",
            "vm": self.vm.name if self.vm is not None else None,  # QEMU's -name, for operators
        }

    # --- what clients do --------------------------------------------------------------

    def attach_changed(self) -> None:
        self._poke.set()  # the supervisor may suspend or resume now

    def input(self, data: bytes) -> None:
        self.observe("i", data.decode(errors="replace"))
        if self.phase == "running" and self.vm is not None:
            try:
                self.vm.write(data)
            except InputBacklog as exc:
                raise SessionError(str(exc)) from None
            return
        room = MAX_PENDING_INPUT - len(self._pending_input)
        if len(data) > room:
            raise SessionError(
                f"the session is being restored and {MAX_PENDING_INPUT} bytes of input "
                "are already waiting; send the rest once output resumes"
            )
        self._pending_input += data

    async def resize(self, cols: int, rows: int) -> None:
        await super().resize(cols, rows)
        if self.phase == "running" and self.vm is not None:
            with contextlib.suppress(ControlError, TimeoutError):
                await self.vm.control.call(resize={"cols": cols, "rows": rows})

    async def running_vm(self, timeout: float) -> Vm:
        """The session's VM once it runs (restoring it if it was suspended): keep the
        session attached meanwhile. SessionError when it ends or does not wake in time."""
        deadline = time.monotonic() + timeout
        while not (self.phase == "running" and self.vm is not None):
            if self.reason is not None:
                raise SessionError(f"the session ended: {self.reason}", 410)
            if time.monotonic() > deadline:
                raise SessionError("the session could not be woken", 503)
            await any_set(self.ending, timeout=0.05)
        return self.vm

    # --- the supervisor ---------------------------------------------------------------

    async def serve(self) -> None:
        try:
            while self.reason is None:
                await self._step()
        finally:
            await self._finish()

    async def _step(self) -> None:
        now = time.monotonic()
        vm = self.vm
        if now >= self._deadline:
            self.end(f"the session reached its lifetime of {self.limits.lifetime_s:.0f} s")
        elif vm is not None and vm.exited.is_set():
            self.end(vm.exit_reason)
        elif vm is not None and self._cpu_before + vm.cpu_seconds() > self.limits.cpu_seconds:
            self.end(f"the session used its CPU budget of {self.limits.cpu_seconds:.0f} s")
        elif vm is not None and self._idle(now):
            await self._suspend(vm)
        elif vm is None and self.clients > 0:
            await self._resume()
        else:
            await self._wait(vm)

    def _idle(self, now: float) -> bool:
        return self.clients == 0 and now - self.idle_since >= self.limits.idle_timeout_s

    async def _wait(self, vm: Vm | None) -> None:
        """Until a client comes or goes, the VM exits, the session ends, or a tick passes."""
        self._poke.clear()
        events = [self._poke, self.ending] if vm is None else [self._poke, self.ending, vm.exited]
        await any_set(*events, timeout=_TICK_S)

    async def _suspend(self, vm: Vm) -> None:
        self.phase = "suspending"
        cpu = vm.cpu_seconds()
        try:
            await vm.suspend(self._state_file)
        except (QmpError, OSError):
            self.phase = "running"
            if vm.exited.is_set():
                self.end(vm.exit_reason)
            else:  # stay awake: a VM that cannot be saved is still a working session
                self.idle_since = time.monotonic()
            return
        self._cpu_before += cpu
        self.vm = None
        self.phase = "suspended"

    async def _resume(self) -> None:
        if not self.pool.make_room():
            await self._wait(None)  # every slot is busy: try again on the next tick
            return
        self.phase = "resuming"
        vm = self.pool.start(self.stream, incoming=self._state_file)
        self.vm = vm
        await any_set(vm.ready, vm.exited, timeout=self.limits.restore_timeout_s)
        if not vm.ready.is_set() or vm.exited.is_set():
            vm.kill("it could not be restored")
            why = vm.exit_reason or "timeout"
            self.end(f"the suspended session could not be restored ({why})")
            return
        self._state_file.unlink(missing_ok=True)
        self.phase = "running"
        self.idle_since = time.monotonic()
        if self._pending_input:
            vm.write(bytes(self._pending_input))
            self._pending_input.clear()

    async def _finish(self) -> None:
        vm, self.vm = self.vm, None
        self.reason = self.reason or "the server is shutting down"
        try:
            if vm is not None and not vm.exited.is_set():
                await vm.shutdown(self.reason)
        finally:
            self._state_file.unlink(missing_ok=True)
            self.phase = "ended"
