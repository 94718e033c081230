"""A QEMU session: a system booted in a VM from the pool, driven by a visitor or an agent.

The session owns its output stream (which outlives any one VM) and, while it runs, a
VM the pool handed out. Its supervisor (`serve`) enforces the limits: a wall-clock
lifetime, a CPU budget, and an idle timeout after which the VM is saved to a file and
ended, to be restored when a client attaches again. A VM that exits on its own ends
the session with the reason. The pool keeps owning the QEMU processes (it caps them
all); the session decides their fate and shuts its VM down whenever it ends.

A suspended session is kept on disk (server/sessions/kept.py), so it outlives the
server: when the server stops, every running session is suspended too, and after a
restart each comes back under its id (`revived`) and restores its VM as after any idle
suspend, its terminal at the same offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from server.control import ControlError
from server.monitorfeed import MonitorFeed
from server.pool import VmPool
from server.sessions.kept import KeptSessions, Suspension
from server.sessions.live import SHUTTING_DOWN, LiveSession, SessionError
from server.shares import digest
from server.stream import OutputStream
from server.supervise import any_set
from server.vm import InputBacklog, Vm
from server.vmstate import RestoreFailed, SaveFailed

MAX_PENDING_INPUT = 64 * 1024  # typed while a session is being restored
_TICK_S = 1.0
SERVER_STOPPED = "the server stopped; the session comes back when it starts again"


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
        self,
        pool: VmPool,
        limits: SessionLimits,
        kept: KeptSessions,
        stream: OutputStream,
        *,
        vm: Vm | None = None,
        suspension: Suspension | None = None,
        session_id: str | None = None,
        client: str = "",
    ) -> None:
        """A new session on `vm`, from the pool; or, with `suspension` and the session's
        id instead, one suspended before the server restarted."""
        super().__init__(stream, session_id, client)
        self.pool, self.limits, self.kept = pool, limits, kept
        self.vm = vm  # None while suspended
        self.suspension = suspension  # while suspended: what is kept of it on disk
        self.phase = "running" if vm is not None else "suspended"
        # running | suspending | suspended | resuming | ended
        if suspension is not None:
            self.created = suspension.created
            self._deadline = time.monotonic() + suspension.expires_at - time.time()
            self._cpu_before = suspension.cpu_seconds
        else:
            assert vm is not None, "a session starts on a VM or from a suspension"
            self._deadline = time.monotonic() + limits.lifetime_s
            # CPU seconds charged before the current VM's own count: minus what it
            # spent booting (not the session's doing), plus what earlier VMs used.
            self._cpu_before = -vm.cpu_seconds()
        self._pending_input = bytearray()
        self._size: dict[str, int] | None = None  # the last resize: a resumed VM is told it
        self._poke = asyncio.Event()  # a client came or went
        self.monitor: MonitorFeed = MonitorFeed(self)  # one poll of the guest for all

    @classmethod
    def revived(
        cls,
        pool: VmPool,
        limits: SessionLimits,
        kept: KeptSessions,
        session_id: str,
        suspension: Suspension,
    ) -> QemuSession:
        """The session `suspension` kept from before a restart, under its id again."""
        stream = OutputStream.resumed(
            pool.config.scrollback, suspension.scroll_start, suspension.scrollback
        )
        return cls(
            pool,
            limits,
            kept,
            stream,
            suspension=suspension,
            session_id=session_id,
            client=suspension.client,
        )

    @property
    def state(self) -> str:
        return self.phase

    def info(self) -> dict:
        return {
            **super().info(),
            "terminal": f"/api/sessions/{self.id}/terminal",
            "vm": self.vm.name if self.vm is not None else None,  # QEMU's -name, for operators
            **({"suspended": self.suspension.info()} if self.suspension is not None else {}),
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
        self._size = {"cols": cols, "rows": rows}
        if self.phase == "running" and self.vm is not None:
            await self._tell_size(self.vm)

    async def _tell_size(self, vm: Vm) -> None:
        if self._size is not None:
            with contextlib.suppress(ControlError, TimeoutError):
                await vm.control.call(resize=self._size)

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
            if vm.exit_status is not None:
                self.exit_status = vm.exit_status
            self.end(vm.exit_reason)
        elif vm is not None and self._cpu_before + vm.cpu_seconds() > self.limits.cpu_seconds:
            self.end(f"the session used its CPU budget of {self.limits.cpu_seconds:.0f} s")
        elif vm is not None and self._idle(now):
            await self._suspend(vm, f"no client for {self.limits.idle_timeout_s:g} s")
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

    async def _suspend(self, vm: Vm, why: str) -> bool:
        """Save the VM to disk and end it; whether it was. A VM that cannot be saved but
        still runs keeps the session awake; one that is gone ends the session."""
        self.phase = "suspending"
        cpu = vm.cpu_seconds()
        try:
            saved = await self.kept.states.save(vm, self.pool.template)
        except SaveFailed as exc:
            self.phase = "running"
            if vm.exited.is_set():
                self.end(f"the session could not be suspended: {exc}")
            else:  # stay awake: a VM that cannot be saved is still a working session
                self.idle_since = time.monotonic()
            return False
        self._cpu_before += cpu
        self.vm = None
        kept = self.stream.snapshot()
        self.suspension = Suspension(
            owner_digest=digest(self.id),
            file=saved.name,
            template=saved.template,
            client=self.client,
            created=self.created,
            expires_at=time.time() + self._deadline - time.monotonic(),
            cpu_seconds=self._cpu_before,
            suspended_at=time.time(),
            why=why,
            size=saved.size,
            scroll_start=kept.offset,
            scrollback=kept.data.encode(),
        )
        self.phase = "suspended"
        await self.kept.keep(self.suspension)
        return True

    async def _resume(self) -> None:
        suspension = self.suspension
        assert suspension is not None, "only a suspended session resumes"
        if not self.pool.make_room():
            await self._wait(None)  # every slot is busy: try again on the next tick
            return
        self.phase = "resuming"

        def start(incoming: int) -> Vm:
            self.vm = self.pool.start(self.stream, incoming=incoming)
            return self.vm

        try:
            vm = await self.kept.states.restore(
                suspension.file, suspension.template, start, self.limits.restore_timeout_s
            )
        except (RestoreFailed, OSError) as exc:
            self.end(f"the suspended session could not be restored: {exc}")
            return
        self.suspension = None
        await self.kept.forget(suspension)
        self.phase = "running"
        self.idle_since = time.monotonic()
        if self._pending_input:
            vm.write(bytes(self._pending_input))
            self._pending_input.clear()
        # A page that connects while the VM is restored sends its size meanwhile: the shell
        # would otherwise keep the size it was suspended with.
        await self._tell_size(vm)

    async def _finish(self) -> None:
        """Shut the VM down and forget what is kept of the session; but when the server
        stops, suspend a running session, and keep a suspended one."""
        vm, self.vm = self.vm, None
        self.reason = self.reason or SHUTTING_DOWN
        try:
            if vm is not None and not vm.exited.is_set():
                stopping = self.reason == SHUTTING_DOWN and self.phase == "running"
                if not (stopping and await self._suspend(vm, SERVER_STOPPED)):
                    await vm.shutdown(self.reason)
        finally:
            if self.suspension is not None and self.reason != SHUTTING_DOWN:
                await self.kept.forget(self.suspension)
            self.phase = "ended"
