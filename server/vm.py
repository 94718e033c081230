"""One QEMU VM running the guest image: its terminal, control channel and monitor.

QEMU gets three connected sockets at start (no paths, no races): the first
serial port (the shell's terminal), the second serial port (the Cap'n Proto
control channel) and the QMP monitor. Terminal output goes into an
`OutputStream` the VM is given, so a session's stream outlives the VM that
fed it: a suspended session's VM is saved to a file by migration and a new
QEMU restores it (`-incoming`), writing on into the same stream.

QEMU runs with no network device, a memory cap, one vCPU, and
PR_SET_PDEATHSIG, so it dies with the server even if the server is killed;
server/sandbox.py confines it (seccomp, an unprivileged user, rlimits, a
cgroup). QEMU opens no path itself: the kernel, the initramfs and a state
file to restore (or a pipe that a decompressor fills, server/vmstate.py) are
opened here and inherited, and a suspend hands QEMU the file to save into
over QMP (`getfd`, then `migrate fd:`), so no migration ever goes through a
shell. A pool's template and its clones keep their RAM in a file the server
hands them too (server/templateram.py).

A VM fails alone: whatever goes wrong in one of the tasks that serve it (a
malformed control frame, a connection reset by a QEMU that died with unread
input) kills that QEMU with a reason, which ends the session it served;
`run` itself never raises.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.control import ControlClient
from server.image import Image
from server.modelhub import ModelHub
from server.qmp import Qmp, QmpError
from server.sandbox import Cell, sandbox
from server.stream import OutputStream
from server.templateram import GuestRam
from server.vmcopy import VmCopy
from server.vmmodel import serve_model

log = logging.getLogger("capos.vm")
PROMPT = b"@capos> "  # the shell is up and waiting: the VM is ready
MAX_INPUT_BACKLOG = 256 * 1024  # terminal input not yet taken by QEMU
_STDERR_KEPT = 2000


class InputBacklog(Exception):
    """Terminal input arrives faster than the guest reads it; the message says so."""


@dataclass(frozen=True)
class VmConfig:
    memory_mib: int = 256
    accel: str = "tcg"  # "kvm" or "tcg"; see server/accel.py for the probe
    qemu: str = "qemu-system-x86_64"

    def command(self, image: Image, name: str, model: dict | None = None) -> list[str]:
        """`model`: the ModelInfo of the server's model, for the guest's agent mode."""
        cpu = "host" if self.accel == "kvm" else "max"  # max has RDRAND: no entropy wait
        append = f"quiet panic=-1 tsc_early_khz={host_tsc_khz()} 8250.nr_uarts=2"
        # So that an idle guest sleeps: no clocksource watchdog checking the TSC, no lockup
        # detector. Without them an idle VM under TCG took 4% of a core, with them 0.4%.
        append += " tsc=reliable nowatchdog"
        if model is not None:  # init's environment (no dot): kernel/hosts/guest.py reads it
            encoded = base64.urlsafe_b64encode(json.dumps(model).encode()).decode()
            append += f" CAPOS_MODEL={encoded}"
        if self.accel == "tcg":  # TCG does not speculate: the mitigations only cost time
            append += " mitigations=off"
        return [
            self.qemu,
            "-name", name,
            "-M", "microvm", "-accel", self.accel, "-cpu", cpu, "-smp", "1",
            "-m", f"{self.memory_mib}M",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", append,
        ]  # fmt: skip


def host_tsc_khz() -> int:
    """The host's TSC rate: without it, guests booting together hang calibrating theirs."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]) * 1000)
    return 2_000_000


class Vm:
    def __init__(
        self,
        image: Image,
        config: VmConfig,
        stream: OutputStream,
        *,
        name: str,
        incoming: Path | int | None = None,
        model: ModelHub | None = None,
        serve_model: bool = True,
        ram: GuestRam | None = None,
        awaits_copy: bool = False,
    ) -> None:
        """`incoming`: a saved VM to restore, a file or a descriptor to read it from (the
        caller's: QEMU gets a copy as it starts); `model`: the server's model, which the
        guest's agent mode uses; `serve_model`: False for a template VM, which is saved,
        never used (its clones serve their own); `ram`: guest RAM in a file rather than
        QEMU's own (server/templateram.py), a clone's private view of which already holds
        the RAM, so that `incoming` is device state alone; `awaits_copy`: start with no
        guest at all, on a clone's `ram`, until `load` makes it a running VM's copy (a
        fork's QEMU, started ahead, server/vmcopy.py)."""
        self.image, self.config, self.stream, self.name = image, config, stream, name
        self.incoming = incoming
        self.ram = ram
        self.awaits_copy = awaits_copy
        self.awaiting = asyncio.Event()  # awaits_copy: QEMU is up and may `load` now
        self.model = model
        self._serves: ModelHub | None = model if serve_model else None  # this VM's agent mode
        self.ready = asyncio.Event()  # at the prompt (booted) or running again (restored)
        self.exited = asyncio.Event()
        self.exit_reason = ""
        self.exit_status: int | None = None  # QEMU's, as a shell reports it, unless we ended it
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        self.pid = 0
        self._planned_exit: str | None = None  # set before we end QEMU on purpose
        self._term, term_theirs = socket.socketpair()
        control_ours, control_theirs = socket.socketpair()
        qmp_ours, qmp_theirs = socket.socketpair()
        self.control = ControlClient(control_ours)
        self.qmp = Qmp(qmp_ours)
        self._theirs = [term_theirs, control_theirs, qmp_theirs]
        self._term_writer: asyncio.StreamWriter | None = None
        self._unseen: bytearray | None = None  # the guest's output while the pool warms it
        self._warmed = asyncio.Event()
        self._stderr = b""
        self._cell: Cell | None = None  # this VM's confinement, while QEMU runs
        self._incoming_fd = -1  # QEMU's number for the saved VM's descriptor
        # Where a forkable VM saves its device state for a copy: our descriptor, and the path
        # QEMU opens (a memfd it inherits: it opens no file of ours by name).
        self.devices_out = -1
        self.devices_path = ""

    def _open_files(self) -> list[int]:
        """What QEMU reads, opened here and inherited: the kernel, the initramfs, the guest's
        RAM file if any and the state to restore (each VM its own descriptor: a template
        restores many at once)."""
        paths = [self.image.kernel, self.image.initrd]
        if isinstance(self.incoming, Path):
            paths.append(self.incoming)
        files: list[int] = []
        try:
            for path in paths:
                files.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            if isinstance(self.incoming, int):
                files.append(os.dup(self.incoming))
            if self.ram is not None:
                files.append(os.dup(self.ram.fd))
            if self._forkable:
                self.devices_out = os.memfd_create("capos-vm-devices", os.MFD_CLOEXEC)
                files.append(os.dup(self.devices_out))
        except OSError:
            for fd in files:
                os.close(fd)
            raise
        return files

    def _command(self, files: list[int]) -> list[str]:
        term, control, qmp = (s.fileno() for s in self._theirs)
        kernel, initrd, *incoming = files
        if self._forkable:  # QEMU writes its device state into this one (Vm.devices_out)
            self.devices_path = f"/proc/self/fd/{incoming.pop()}"
        ram = incoming.pop() if self.ram is not None else None
        inherited = dataclasses.replace(
            self.image,
            kernel=Path(f"/proc/self/fd/{kernel}"),
            initrd=Path(f"/proc/self/fd/{initrd}"),
        )
        command = self.config.command(inherited, self.name, self.model.info if self.model else None)
        command += sandbox().options()
        command += ["-chardev", f"socket,id=term,fd={term}", "-serial", "chardev:term"]
        command += ["-chardev", f"socket,id=ctl,fd={control}", "-device", "isa-serial,chardev=ctl"]
        command += ["-chardev", f"socket,id=qmp,fd={qmp}", "-mon", "chardev=qmp,mode=control"]
        if ram is not None and self.ram is not None:
            memory = f"size={self.config.memory_mib}M,mem-path=/proc/self/fd/{ram}"
            share = "on" if self.ram.shared else "off"
            # The id of microvm's own RAM: the saved VM's RAM has one name either way.
            backend = f"memory-backend-file,id=microvm.ram,{memory},share={share}"
            command += ["-object", backend, "-machine", "memory-backend=microvm.ram"]
        if incoming:
            # A stream without RAM is read once the monitor has said so (`_monitor`).
            command += ["-incoming", "defer" if self._devices_only else f"fd:{incoming[0]}"]
            self._incoming_fd = incoming[0]
        elif self.awaits_copy:
            command += ["-incoming", "defer"]
        return command

    @property
    def _forkable(self) -> bool:
        """A clone of the template (or a fork's QEMU), whose copy is its written pages and
        its device state alone (server/vmcopy.py)."""
        return self.ram is not None and not self.ram.shared

    @property
    def _devices_only(self) -> bool:
        """Restoring device state onto RAM a clone maps from the template's file."""
        return self.incoming is not None and self.ram is not None and not self.ram.shared

    async def run(self) -> None:
        """Run QEMU until it exits; the caller's task group owns this. Never leaves QEMU behind."""
        try:
            process = await self._start()
        except (OSError, subprocess.SubprocessError) as exc:
            self.exit_reason = f"QEMU could not start: {exc}"
            if self._cell is not None:
                await self._cell.remove()
            self.exited.set()
            return
        finally:
            for sock in self._theirs:
                sock.close()
        self.pid = process.pid
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._part(self._pump_terminal(), "terminal"))
                tasks.create_task(self._part(self._control(), "control channel"))
                stderr = process.stderr
                assert stderr is not None  # stderr=PIPE
                tasks.create_task(self._part(self._read_stderr(stderr), "error output"))
                tasks.create_task(self._part(self._monitor(), "monitor"))
                model = None
                if self._serves is not None:
                    model = tasks.create_task(self._part(self._serve_model(), "model"))
                await process.wait()
                if model is not None:  # it waits for the prompt, which a VM may never reach
                    model.cancel()
        finally:
            if process.returncode is None:
                process.kill()
                await asyncio.shield(process.wait())
            self.exit_reason = self._planned_exit or _describe(process.returncode, self._stderr)
            if self._planned_exit is None and process.returncode is not None:
                code = process.returncode  # -N: killed by signal N, which a shell says as 128+N
                self.exit_status = 128 - code if code < 0 else code
            if self.devices_out >= 0:
                os.close(self.devices_out)
            assert self._cell is not None  # made by _start
            await self._cell.remove()
            self.exited.set()

    async def _start(self) -> asyncio.subprocess.Process:
        """QEMU, confined: the child enters this VM's cell before it executes QEMU."""
        files = self._open_files()
        try:
            self._cell = sandbox().cell(self.name, self.config.memory_mib)
            return await asyncio.create_subprocess_exec(
                *self._command(files),
                pass_fds=[s.fileno() for s in self._theirs] + files,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=self._cell.enter,
            )
        finally:
            for fd in files:
                os.close(fd)

    async def _part(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """One of the tasks serving this VM; when it fails, the VM ends (and only it)."""
        try:
            await work
        except Exception as exc:
            log.warning("capOS: VM %s: its %s failed: %r", self.name, what, exc)
            self.kill(f"the VM's {what} failed ({exc or type(exc).__name__})")

    async def _control(self) -> None:
        """The control channel; a guest that breaks its framing is ended with the reason."""
        await self.control.run()
        if self.control.broken is not None:
            self.kill(self.control.broken)

    async def _monitor(self) -> None:
        with contextlib.suppress(QmpError, OSError):
            await self.qmp.connect()
            if self.awaits_copy:
                self.awaiting.set()
            if self._devices_only:
                await self._ignore_shared(True)
                await self.qmp.command("migrate-incoming", uri=f"fd:{self._incoming_fd}")
            if self.incoming is not None:
                await self._run_loaded()

    async def _run_loaded(self) -> None:
        """The saved VM was stopped, so the restored one comes up paused: continue it."""
        while (status := (await self.qmp.command("query-status"))["status"]) == "inmigrate":
            await asyncio.sleep(0.01)
        if status != "running":
            await self.qmp.command("cont")
        self._mark_ready()

    async def load(self, copy: VmCopy) -> None:
        """Become `copy` of a running VM (this VM `awaits_copy`), its screen first in this
        VM's stream; QmpError or CopyFailed when it cannot. The pages go into RAM first, as
        devices may read RAM while their state loads."""
        assert self.awaiting.is_set(), "load only a VM that awaits a copy, once it is up"
        self.awaiting.clear()
        self.stream.append(copy.screen)
        await asyncio.to_thread(copy.write_into, self.pid, self.config.memory_mib << 20)
        devices = _memfd("capos-fork-devices", copy.devices)
        try:
            await self.qmp.command("getfd", fdname="copy", fds=[devices])
        finally:
            os.close(devices)
        await self.qmp.command("migrate-incoming", uri="fd:copy")
        await self._run_loaded()

    async def _serve_model(self) -> None:
        """Once the guest's control channel listens (at the prompt), for as long as it runs."""
        await self.ready.wait()
        if self._serves is not None:
            await serve_model(self.control, self._serves, f"vm:{self.name}")

    async def _pump_terminal(self) -> None:
        reader, self._term_writer = await asyncio.open_connection(sock=self._term)
        tail = b""
        while data := await _read(reader):
            if self._unseen is not None:
                self._unseen += data
                end = self._unseen.find(PROMPT)
                if end < 0:
                    continue
                data = bytes(self._unseen[end + len(PROMPT) :])
                self._unseen = None
                self._warmed.set()
                if not data:
                    continue
            self.stream.append(data)
            if not self.ready.is_set():
                tail = (tail + data)[-64:]
                if PROMPT in tail:
                    self._mark_ready()
        self._term_writer.close()

    def _mark_ready(self) -> None:
        self.ready_at = time.monotonic()
        self.ready.set()

    async def warm_up(self, timeout: float) -> bool:
        """Press Enter once, unseen, before the VM is handed out; False if no fresh prompt
        comes within `timeout` s.

        A restored QEMU starts with no translated code, so under TCG the first keystroke
        after a restore takes about twice as long as the next ones: the pool pays for that
        once, not the visitor's first key. The guest's answer (a newline and a fresh
        prompt) stays out of the session's output, whose screen is the template's.
        """
        self._warmed.clear()
        self._unseen = bytearray()
        self.write(b"\r")
        try:
            await asyncio.wait_for(self._warmed.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._unseen = None
        return True

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        while data := await _read(stderr, 4096):
            self._stderr = (self._stderr + data)[-_STDERR_KEPT:]

    def write(self, data: bytes) -> None:
        """Terminal input; the socket's buffer absorbs bursts, QEMU drains it into the UART.

        Raises InputBacklog rather than buffer without bound when input comes
        faster than the guest takes it.
        """
        writer = self._term_writer
        if writer is None or writer.is_closing():
            return
        if writer.transport.get_write_buffer_size() + len(data) > MAX_INPUT_BACKLOG:
            raise InputBacklog(
                f"over {MAX_INPUT_BACKLOG // 1024} KiB of input is still on its way to the "
                "session: wait for it to catch up"
            )
        writer.write(data)

    async def _ignore_shared(self, on: bool) -> None:
        """Whether migrations leave out RAM shared with a file (both ends must agree)."""
        capability = {"capability": "x-ignore-shared", "state": on}
        await self.qmp.command("migrate-set-capabilities", capabilities=[capability])

    async def suspend(self, path: Path, devices: Path | None = None) -> None:
        """Save the whole VM to `path` (migration to a file), and its device state alone to
        `devices` if given (a template whose RAM is shared with a file), then end this QEMU."""
        qmp = self.qmp
        unlimited: dict[str, Any] = {"max-bandwidth": 1 << 40}
        await qmp.command("migrate-set-parameters", **unlimited)
        await qmp.command("stop")
        await self._ignore_shared(False)
        await self._save(path)
        if devices is not None:  # QEMU 7.2 saves a VM only once, unless it ran in between
            await qmp.command("cont")
            await qmp.command("stop")
            await self._ignore_shared(True)
            await self._save(devices)
        self._planned_exit = "suspended"
        with contextlib.suppress(QmpError):
            await qmp.command("quit")
        await self.exited.wait()

    async def save_running(self, path: Path) -> bytes:
        """Save the whole VM into `path` and let it run on (a fork of a VM whose RAM is its
        own, server/pool.py); the screen as it stood while the VM was stopped."""
        unlimited: dict[str, Any] = {"max-bandwidth": 1 << 40}
        await self.qmp.command("migrate-set-parameters", **unlimited)
        await self.qmp.command("stop")
        try:
            await self._ignore_shared(False)
            await self._save(path)
            return self.stream.snapshot().data.encode()
        finally:
            await self.qmp.command("cont")

    async def _save(self, path: Path) -> None:
        """Migrate the stopped VM into `path`; on failure it runs on and QmpError says why."""
        qmp = self.qmp
        state = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            await qmp.command("getfd", fdname="state", fds=[state])
        finally:
            os.close(state)  # QEMU holds its own copy now, and closes it when the save ends
        await qmp.command("migrate", uri="fd:state")
        while True:
            status = (await qmp.command("query-migrate")).get("status")
            if status == "completed":
                break
            if status in ("failed", "cancelled"):
                await qmp.command("cont")
                raise QmpError(f"saving the VM failed (migration {status})")
            await asyncio.sleep(0.01)

    async def shutdown(self, reason: str, grace: float = 2.0) -> None:
        """Ask the guest to power off; kill QEMU if it has not within `grace` seconds."""
        self._planned_exit = reason
        with contextlib.suppress(Exception):
            async with asyncio.timeout(grace):
                await self.control.call(shutdown=None)
                await self.exited.wait()
        self.kill(reason)
        await self.exited.wait()

    def kill(self, reason: str) -> None:
        if self._planned_exit is None:
            self._planned_exit = reason
        if self.pid and not self.exited.is_set():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def cpu_seconds(self) -> float:
        """CPU time QEMU has used, for the session's CPU limit."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _memfd(name: str, data: bytes) -> int:
    """A descriptor that reads `data` from its start."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


async def _read(reader: asyncio.StreamReader, size: int = 65536) -> bytes:
    """What `reader` has next; b"" at its end, a reset connection included (a QEMU that
    exits with input we had not read yet resets the socket rather than closing it)."""
    try:
        return await reader.read(size)
    except ConnectionResetError:
        return b""


def _describe(returncode: int | None, stderr: bytes) -> str:
    if returncode == 0:
        return "the system powered off (the shell exited)"
    if returncode is not None and returncode < 0:
        return f"the VM crashed: QEMU was killed by {signal.Signals(-returncode).name}"
    detail = stderr.decode(errors="replace").strip().splitlines()
    return f"the VM crashed: QEMU exited with status {returncode}" + (
        f" ({detail[-1]})" if detail else ""
    )
