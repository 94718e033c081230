"""Sessions: a booted system a visitor or agent drives, and the registry that holds them.

A session owns its output stream (which outlives any one VM) and, while it
runs, a VM from the pool. Its supervisor enforces the limits: a wall-clock
lifetime, a CPU budget, and an idle timeout after which the VM is saved to
a file and ended, to be restored when a client attaches again. A VM that
exits on its own ends the session with the reason. The registry knows
sessions, not VMs: the pool owns those.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from server.control import ControlError
from server.metrics import Metrics
from server.pool import VmPool
from server.qmp import QmpError
from server.vm import InputBacklog, Vm

MAX_PENDING_INPUT = 64 * 1024  # typed while a session is being restored
_TICK_S = 1.0
BACKENDS = ("qemu",)


class SessionError(Exception):
    """A request about a session cannot be met; the message says why."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status that fits


@dataclass(frozen=True)
class SessionLimits:
    idle_timeout_s: float = 300.0  # no client attached for this long: suspend
    lifetime_s: float = 3600.0
    cpu_seconds: float = 900.0
    restore_timeout_s: float = 30.0
    max_sessions: int = 64  # running and suspended
    ended_kept: int = 64  # ended sessions still answering GET with their reason


class Session:
    def __init__(self, pool: VmPool, vm: Vm, limits: SessionLimits, state_dir: Path) -> None:
        self.id = secrets.token_urlsafe(16)
        self.backend = "qemu"
        self.pool, self.vm, self.limits = pool, vm, limits
        self.stream = vm.stream
        self.created = time.time()
        self._deadline = time.monotonic() + limits.lifetime_s
        self._state_file = state_dir / f"{self.id}.vmstate"
        self.state = "running"  # running | suspending | suspended | resuming | ended
        self.reason: str | None = None  # why it ended
        self.clients = 0
        self.idle_since = time.monotonic()
        # CPU seconds charged before the current VM's own count: minus what it
        # spent booting (not the session's doing), plus what earlier VMs used.
        self._cpu_before = -vm.cpu_seconds()
        self._pending_input = bytearray()
        self._poke = asyncio.Event()

    def info(self) -> dict:
        info = {
            "id": self.id,
            "backend": self.backend,
            "state": self.state,
            "terminal": f"/api/sessions/{self.id}/terminal",
            "created": self.created,
            "clients": self.clients,
            "output_offset": self.stream.end,
            "vm": self.vm.name if self.vm is not None else None,  # QEMU's -name, for operators
        }
        if self.reason is not None:
            info["reason"] = self.reason
        return info

    # --- what clients do --------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def attached(self) -> AsyncIterator[None]:
        """A client is here: keep the session awake (restoring it if it was suspended)."""
        self.clients += 1
        self._poke.set()
        try:
            yield
        finally:
            self.clients -= 1
            self.idle_since = time.monotonic()
            self._poke.set()

    def input(self, data: bytes) -> None:
        if self.state == "running" and self.vm is not None:
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
        if self.state == "running" and self.vm is not None:
            with contextlib.suppress(ControlError, TimeoutError):
                await self.vm.control.call(resize={"cols": cols, "rows": rows})

    def end(self, reason: str) -> None:
        """Ask the supervisor to end the session (it shuts the VM down)."""
        if self.reason is None:
            self.reason = reason
        self._poke.set()

    # --- the supervisor ---------------------------------------------------------------

    async def supervise(self) -> None:
        """Enforce the limits until the session ends; owned by the registry's task group."""
        try:
            while self.reason is None:
                await self._step()
        finally:
            await self._finish()

    async def _step(self) -> None:
        now = time.monotonic()
        vm = self.vm
        if now >= self._deadline:
            self.reason = f"the session reached its lifetime of {self.limits.lifetime_s:.0f} s"
        elif vm is not None and vm.exited.is_set():
            self.reason = vm.exit_reason
        elif vm is not None and self._cpu_before + vm.cpu_seconds() > self.limits.cpu_seconds:
            self.reason = f"the session used its CPU budget of {self.limits.cpu_seconds:.0f} s"
        elif vm is not None and self._idle(now):
            await self._suspend()
        elif vm is None and self.clients > 0:
            await self._resume()
        else:
            await self._wait(vm)

    def _idle(self, now: float) -> bool:
        return self.clients == 0 and now - self.idle_since >= self.limits.idle_timeout_s

    async def _wait(self, vm: Vm | None) -> None:
        self._poke.clear()
        waits = [asyncio.ensure_future(self._poke.wait())]
        if vm is not None:
            waits.append(asyncio.ensure_future(vm.exited.wait()))
        try:
            await asyncio.wait(waits, timeout=_TICK_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _suspend(self) -> None:
        vm = self.vm
        self.state = "suspending"
        cpu = vm.cpu_seconds()
        try:
            await vm.suspend(self._state_file)
        except (QmpError, OSError):
            self.state = "running"
            if vm.exited.is_set():
                self.reason = vm.exit_reason
            else:  # stay awake: a VM that cannot be saved is still a working session
                self.idle_since = time.monotonic()
            return
        self._cpu_before += cpu
        self.vm = None
        self.state = "suspended"

    async def _resume(self) -> None:
        if not self.pool.make_room():
            await self._wait(None)  # every slot is busy: try again on the next tick
            return
        self.state = "resuming"
        vm = self.pool.start(self.stream, incoming=self._state_file)
        self.vm = vm
        ready = asyncio.ensure_future(vm.ready.wait())
        exited = asyncio.ensure_future(vm.exited.wait())
        try:
            await asyncio.wait(
                [ready, exited],
                timeout=self.limits.restore_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ready.cancel()
            exited.cancel()
        if not vm.ready.is_set() or vm.exited.is_set():
            vm.kill("it could not be restored")
            why = vm.exit_reason or "timeout"
            self.reason = f"the suspended session could not be restored ({why})"
            return
        self._state_file.unlink(missing_ok=True)
        self.state = "running"
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
            self.state = "ended"
            self.stream.close(self.reason)


class SessionRegistry:
    def __init__(
        self, pool: VmPool, limits: SessionLimits, state_dir: Path, metrics: Metrics
    ) -> None:
        self.pool, self.limits, self.state_dir = pool, limits, state_dir
        self.metrics = metrics
        self.sessions: dict[str, Session] = {}
        self._tasks: asyncio.TaskGroup | None = None

    async def run(self) -> None:
        """Own every session's supervisor until cancelled (which ends them all)."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            try:
                await asyncio.Future()  # until cancelled
            finally:
                self._tasks = None
                for session in self.sessions.values():
                    session.end("the server is shutting down")

    def create(self, backend: str) -> Session:
        """A new session on a warm VM; PoolFull (from the pool) when there is none."""
        if backend not in BACKENDS:
            raise SessionError(
                f"unknown backend {backend!r}; this server offers {list(BACKENDS)}", status=400
            )
        if self._tasks is None:
            raise SessionError("the server is not accepting sessions (starting or stopping)")
        live = [s for s in self.sessions.values() if s.state != "ended"]
        if len(live) >= self.limits.max_sessions:
            limit = self.limits.max_sessions
            raise SessionError(f"this server holds its maximum of {limit} sessions")
        session = Session(self.pool, self.pool.take(), self.limits, self.state_dir)
        self._forget_old()
        self.sessions[session.id] = session
        self._tasks.create_task(self._supervise(session))
        return session

    async def _supervise(self, session: Session) -> None:
        live = self.metrics.sessions.labels(backend="native")  # hosted here, in QEMU
        live.inc()
        try:
            await session.supervise()
        finally:
            live.dec()

    def get(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    def _forget_old(self) -> None:
        ended = [s for s in self.sessions.values() if s.state == "ended"]
        for session in ended[: max(0, len(ended) - self.limits.ended_kept)]:
            del self.sessions[session.id]
