"""The native host: the kernel in this OS process, each capOS process in its own.

Every process's region (ring, CapSet, buffers) is a memfd mapped only here
and in that process. `cap_enter` is two eventfds: the process writes its
submit doorbell and blocks reading its wake doorbell; this host's loop
blocks in epoll on every submit doorbell, lets the kernel drain that ring,
and writes the wake doorbell of each process the kernel woke. A waiter (this
loop, or a process in cap_enter) with no work blocks at once, or, given a
spin window (`spin_us`; by default only on a host with more than one CPU, see
default_spin_us), first keeps looking for work for up to that long (never
past its timeout), yielding the CPU on each look; the kernel benchmark
measures both.
Children are forked by the zygote (see zygote.py), never by the kernel, so
they share no memory with it.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.abi import Header
from kernel.host import ModelBackend
from kernel.hosts import zygote
from kernel.hosts.control import ControlChannel
from kernel.hosts.jitter import jitter_for
from kernel.hosts.models.runner import ModelRunner, Provider
from kernel.hosts.models.settings import ModelSettings, open_provider
from kernel.hosts.tty import LocalTerminal
from kernel.kernel import BootError, Kernel, KernelConfig
from kernel.manifest import ManifestError, build
from kernel.manual import build_corpus
from kernel.process import Process
from kernel.region import MemoryRegion

if TYPE_CHECKING:
    import subprocess

SPAWN_REPLY_TIMEOUT_S = 10.0
# How long a waiter (the kernel loop, or a process in cap_enter) looks for
# work before it blocks on its eventfd; see NativeSyscalls. 0: block at once.
# `bench kernel` shows the trade. Back to back, the window makes round trips
# about three times faster and NOPs several times more per second, for less
# CPU per call (a wake costs more than a short look). With gaps between calls
# (its `_paced` figures) every waiter spins through its window with nothing to
# find, so each call costs about twice the CPU. The window ships where the
# host has more than one CPU: the native host runs there as a developer's
# `capos-playground shell`, where an answer usually comes from a process on
# another CPU within the window. On one CPU (each QEMU guest of the public
# server's pool has one vCPU) nothing else can make progress while a waiter
# looks, so there it blocks at once and an idle guest costs nothing.
SPIN_WINDOW_US = 200


def default_spin_us() -> int:
    """The window that ships on this machine: SPIN_WINDOW_US, or 0 on one CPU."""
    return SPIN_WINDOW_US if len(os.sched_getaffinity(0)) > 1 else 0


ZYGOTE_START_TIMEOUT_S = 30.0


class HostError(Exception):
    """The native host cannot run; the message says what to do."""


@dataclass(slots=True)
class _Native:
    """What the host keeps per process, beside the kernel's Process."""

    region: mmap.mmap
    memfd: int  # kept only until the child has its own copy
    submit_fd: int
    wake_fd: int
    os_pid: int = 0


class NativeHost:
    def __init__(
        self,
        manifest: bytes,
        config: KernelConfig | None = None,
        *,
        console: Callable[[Process, bytes], None] | None = None,
        spin_us: int | None = None,
        terminal: LocalTerminal | None = None,
        model: Provider | None = None,
        jitter_us: int = 0,
        forked_zygote: tuple[socket.socket, zygote.Forked] | None = None,
    ) -> None:
        """`model`: a language model provider to attach as the languageModel kernel cap.
        `spin_us`: how long each waiter looks for work before it blocks; None: the
        default for this machine (see default_spin_us).
        `jitter_us` (stress tests only): pause up to this long at random between the
        steps of this loop and of every process's cap_enter (see jitter.py).
        `forked_zygote`: one `zygote.fork` made (the guest's); else a fresh one is started."""
        self._console = console or _write_stdout
        self._spin_ns = (default_spin_us() if spin_us is None else spin_us) * 1000
        self._jitter = jitter_for(jitter_us)
        self._terminal = terminal
        self._natives: dict[int, _Native] = {}
        self._by_fd: dict[int, int] = {}
        self._exits: list[dict] = []
        self._watched: dict[int, Callable[[], None]] = {}
        # Where answers to outside agents go (the control channel sets it).
        self.agent_replies: Callable[[dict], None] | None = None
        self._faults_seen = 0
        self._epoll = select.epoll()
        self._zygote_sock, self._zygote = self._start_zygote(forked_zygote)
        self._epoll.register(self._zygote_sock.fileno(), select.EPOLLIN)
        self.kernel = Kernel(self, manifest, config, manual=build_corpus())
        if terminal is not None:
            cols, rows = terminal.size()
            self._attached = self.kernel.attach_terminal(
                interactive=terminal.interactive, cols=cols, rows=rows
            )
            self._epoll.register(terminal.stdin, select.EPOLLIN)
            if terminal.resized_fd >= 0:
                self.watch(terminal.resized_fd, self._terminal_resized)
        self._model: ModelBackend | None = None
        self._model_fd = -1
        self._model_events: deque[tuple[int, dict]] = deque()  # from the runner's thread
        if model is not None:
            self._model_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._epoll.register(self._model_fd, select.EPOLLIN)
            self.use_model(model.info(), ModelRunner(model, self._model_posted))

    def use_model(self, info: dict, backend: ModelBackend) -> None:
        """Attach a model (a ModelInfo dict) that `backend` runs: a provider on a thread of
        ours, or the server's model across a guest's control channel. Before boot."""
        self.kernel.attach_model(info, backend)
        self._model = backend

    def watch(self, fd: int, readable: Callable[[], None]) -> None:
        """Call `readable()` from the loop whenever `fd` has input (a host's own channel)."""
        self._watched[fd] = readable
        self._epoll.register(fd, select.EPOLLIN)

    def resize_terminal(self, cols: int, rows: int) -> None:
        """The attached terminal changed size; a shell waiting in waitResize hears of it."""
        self._attached.resize(cols, rows)

    # --- zygote ----------------------------------------------------------------------

    @staticmethod
    def _start_zygote(
        forked: tuple[socket.socket, zygote.Forked] | None,
    ) -> tuple[socket.socket, subprocess.Popen | zygote.Forked]:
        process: subprocess.Popen | zygote.Forked
        if forked is not None:
            ours, process = forked
        else:
            import subprocess  # here: a guest's forked zygote never needs it, nor its import

            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            process = subprocess.Popen(
                [sys.executable, "-m", "kernel.hosts.zygote", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                cwd=Path(__file__).resolve().parents[2],
            )
            theirs.close()
        ours.settimeout(ZYGOTE_START_TIMEOUT_S)
        try:
            message, _ = zygote.receive(ours)
        except TimeoutError:
            process.kill()
            raise HostError("the process zygote did not start within 30 s") from None
        if "ready" not in message:
            process.kill()
            raise HostError("the process zygote failed to start (see the error above)")
        ours.settimeout(None)
        return ours, process

    def _ask_zygote(self, message: dict, fds: list[int]) -> dict:
        zygote.send(self._zygote_sock, message, fds)
        self._zygote_sock.settimeout(SPAWN_REPLY_TIMEOUT_S)
        try:
            while True:
                reply, _ = zygote.receive(self._zygote_sock)
                if not reply:
                    raise HostError("the process zygote died")
                if "exited" in reply:  # an unrelated exit; handle it in the loop
                    self._exits.append(reply)
                    continue
                return reply
        finally:
            self._zygote_sock.settimeout(None)

    # --- Host protocol -------------------------------------------------------------------

    def allocate_region(self, pid: int, size: int) -> MemoryRegion:
        memfd = os.memfd_create(f"capos-pid{pid}", os.MFD_CLOEXEC)
        try:
            os.ftruncate(memfd, size)
            region = mmap.mmap(memfd, size)
        except OSError:
            os.close(memfd)
            raise
        submit_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        wake_fd = os.eventfd(0, os.EFD_CLOEXEC)
        self._natives[pid] = _Native(region, memfd, submit_fd, wake_fd)
        return MemoryRegion(memoryview(region))

    def start(self, proc: Process, module: str) -> None:
        native = self._natives[proc.pid]
        try:
            reply = self._ask_zygote(
                {
                    "spawn": proc.pid,
                    "module": module,
                    "size": len(native.region),
                    "spin_ns": self._spin_ns,
                    "jitter_us": self._jitter.max_us if self._jitter else 0,
                },
                [native.memfd, native.submit_fd, native.wake_fd],
            )
        finally:
            os.close(native.memfd)
            native.memfd = -1
        if "spawned" not in reply:
            self._forget(proc.pid)
            raise HostError(f"cannot start {module}: {reply.get('error', 'unknown error')}")
        native.os_pid = reply["os_pid"]
        self._by_fd[native.submit_fd] = proc.pid
        self._epoll.register(native.submit_fd, select.EPOLLIN)

    def os_pids(self) -> dict[int, int]:
        """The OS process id of each running capOS process, by capOS pid."""
        return {pid: n.os_pid for pid, n in self._natives.items() if n.os_pid}

    def stop(self, proc: Process) -> None:
        native = self._natives.get(proc.pid)
        if native is None:
            return
        if native.os_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(native.os_pid, signal.SIGKILL)
        self._forget(proc.pid)

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def entropy(self, size: int) -> bytes:
        return os.urandom(size)

    def console_write(self, proc: Process, data: bytes) -> None:
        self._console(proc, data)

    def terminal_write(self, name: str, data: bytes) -> None:
        if self._terminal is not None:
            self._terminal.write(data)

    def agent_reply(self, response: dict) -> None:
        if self.agent_replies is not None:
            self.agent_replies(response)

    def _model_posted(self, stream: int, event: dict) -> None:
        """On the runner's thread: hand the event to the loop (deque appends are atomic)."""
        self._model_events.append((stream, event))
        os.eventfd_write(self._model_fd, 1)

    def _model_input(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._model_fd)
        model = self.kernel.model
        assert model is not None  # the eventfd is registered only with a model attached
        while self._model_events:
            model.feed(*self._model_events.popleft())

    def _forget(self, pid: int) -> None:
        native = self._natives.pop(pid, None)
        if native is None:
            return
        if native.memfd >= 0:
            os.close(native.memfd)
        if self._by_fd.pop(native.submit_fd, None) is not None:
            self._epoll.unregister(native.submit_fd)
        os.close(native.submit_fd)
        os.close(native.wake_fd)

    # --- the loop --------------------------------------------------------------------------

    def boot(self) -> Process:
        init = self.kernel.boot()
        self._wake()
        return init

    def run(
        self, *, until: Callable[[], bool] = lambda: False, timeout: float | None = None
    ) -> None:
        """Serve the system until it halts, `until()` is true, or `timeout` seconds pass."""
        kernel = self.kernel
        stop_at = None if timeout is None else time.monotonic() + timeout
        zygote_fd = self._zygote_sock.fileno()
        terminal_fd = self._terminal.stdin if self._terminal is not None else -1
        by_fd = self._by_fd
        eventfd_read, doorbell, jitter = os.eventfd_read, self._doorbell, self._jitter
        while not kernel.halted and not until():
            deadline = kernel.next_deadline()
            wait = None if deadline is None else _seconds_until(deadline, self.now_ns())
            if stop_at is not None:
                left = stop_at - time.monotonic()
                if left <= 0:
                    return
                wait = left if wait is None else min(wait, left)
            for fd, _ in self._poll(wait):
                pid = by_fd.get(fd)
                if pid is not None:  # a doorbell: by far the most common event
                    if jitter:
                        jitter()
                    with contextlib.suppress(BlockingIOError):
                        eventfd_read(fd)
                    if jitter:
                        jitter()
                    doorbell(pid)
                elif fd == zygote_fd:
                    self._zygote_message()
                elif fd == terminal_fd:
                    self._terminal_input()
                elif fd == self._model_fd:
                    self._model_input()
                elif fd in self._watched:
                    self._watched[fd]()
            if self._exits:
                self._handle_exits()
            if deadline is not None:
                kernel.run_timers(self.now_ns())
            if jitter:
                jitter()
            self._wake()
            if kernel.fault_count != self._faults_seen:
                self._report_faults()

    def _terminal_input(self) -> None:
        terminal = self._terminal
        assert terminal is not None  # only its stdin is terminal_fd
        data = terminal.read()
        if data is None:
            return
        if data:
            self._attached.feed(data)
        else:  # end of input: readers see eof; stop watching the descriptor
            self._epoll.unregister(terminal.stdin)
            self._attached.close()

    def _terminal_resized(self) -> None:
        assert self._terminal is not None  # only its resized_fd is watched with this
        self.resize_terminal(*self._terminal.take_resize())

    def _poll(self, wait: float | None) -> list[tuple[int, int]]:
        """Ready descriptors: block for them, or with a spin window first look for a
        bounded while (yielding the CPU on each look)."""
        if not self._spin_ns:
            return self._epoll.poll(-1 if wait is None else wait)
        events = self._epoll.poll(0)
        if events:
            return events
        limit_ns = self._spin_ns if wait is None else min(self._spin_ns, int(wait * 1e9))
        spin_until = time.monotonic_ns() + limit_ns
        while time.monotonic_ns() < spin_until:
            os.sched_yield()
            events = self._epoll.poll(0)
            if events:
                return events
        return self._epoll.poll(-1 if wait is None else wait)

    def _report_faults(self) -> None:
        """A contained kernel bug still deserves a line on stderr."""
        new = min(self.kernel.fault_count - self._faults_seen, len(self.kernel.faults))
        for fault in self.kernel.faults[len(self.kernel.faults) - new :]:
            print(f"capOS kernel fault (contained): {fault}", file=sys.stderr)
        self._faults_seen = self.kernel.fault_count

    def _doorbell(self, pid: int) -> None:
        ring = self.kernel.processes[pid].ring
        if ring.get(Header.EXIT_REQUESTED):
            code = ring.get(Header.EXIT_CODE)
            self.kernel.exit(pid, code - (1 << 32) if code >= 1 << 31 else code)
        else:
            self.kernel.enter(pid)

    def _zygote_message(self) -> None:
        """Drain the zygote's exit notices without blocking.

        Non-blocking because a spawn earlier in the same loop pass may have
        read the very message that made the socket readable.
        """
        self._zygote_sock.setblocking(False)
        try:
            while True:
                try:
                    message, fds = zygote.receive(self._zygote_sock)
                except BlockingIOError:
                    return
                for fd in fds:
                    os.close(fd)
                if not message:
                    raise HostError("the process zygote died; the system cannot spawn any more")
                if "exited" in message:
                    self._exits.append(message)
        finally:
            self._zygote_sock.setblocking(True)

    def _handle_exits(self) -> None:
        exits, self._exits = self._exits, []
        for message in exits:
            pid = message["exited"]
            if pid in self.kernel.processes:  # it died without the exit syscall
                self.kernel.lost(pid, _describe_status(message["status"]))

    def _wake(self) -> None:
        """Ring the wake doorbell of each process whose cap_enter can now return."""
        jitter = self._jitter
        for proc in self.kernel.take_woken():
            native = self._natives.get(proc.pid)
            if native is None:
                continue
            if jitter:
                jitter()
            wanted = proc.ring.get(Header.ENTER_MIN)
            if not proc.alive or proc.ring.available() >= wanted:
                os.eventfd_write(native.wake_fd, 1)
            elif not proc.expecting and not proc.ring.sq_pending():
                # It waits for more than can ever come (nothing outstanding, nothing
                # submitted): wake it anyway. A process still submitting will ring.
                proc.ring.set(Header.IDLE_WAKES, proc.ring.get(Header.IDLE_WAKES) + 1)
                os.eventfd_write(native.wake_fd, 1)

    def shutdown(self) -> None:
        """End every process, then the zygote. Safe to call more than once."""
        if self._model is not None:
            self._model.close()
            self._model = None
        if self._model_fd >= 0:
            os.close(self._model_fd)
            self._model_fd = -1
        for pid in list(self.kernel.processes):
            self.kernel.kill(pid, "system shutdown")
        self._wake()
        if self._zygote.poll() is None:
            self._zygote_sock.close()
            import subprocess  # as in _start_zygote; a guest imports it only at shutdown

            try:
                self._zygote.wait(timeout=5)
            except (subprocess.TimeoutExpired, TimeoutError):
                self._zygote.kill()
                self._zygote.wait()
        self._epoll.close()

    def __enter__(self) -> NativeHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _seconds_until(deadline_ns: int | None, now_ns: int) -> float | None:
    if deadline_ns is None:
        return None
    return max(0.0, (deadline_ns - now_ns) / 1e9)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    code = os.waitstatus_to_exitcode(status)
    return f"crashed (OS exit status {code}, no exit call)"


def _write_stdout(proc: Process, data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def boot_command(
    manifest: str | None, overlay: str | None, model: ModelSettings | None = None
) -> int:
    """`capos-playground boot`: run the manifest's system until it halts or Ctrl-C."""
    try:
        image = build(Path(manifest) if manifest else None, Path(overlay) if overlay else None)
    except ManifestError as exc:
        print(f"capos-playground: bad manifest: {exc}", file=sys.stderr)
        return 2
    try:
        with NativeHost(image, model=open_provider(model or ModelSettings())) as host:
            print(
                "capOS: booting natively, every process isolated; Ctrl-C stops it.", file=sys.stderr
            )
            host.boot()
            try:
                host.run()
            except KeyboardInterrupt:
                print("\ncapOS: shutting down", file=sys.stderr)
            return 0
    except (BootError, HostError) as exc:
        print(f"capos-playground: {exc}", file=sys.stderr)
        return 1


def shell_command(
    manifest: str | None,
    overlay: str | None,
    model: ModelSettings | None = None,
    *,
    control: int = -1,
    remote_model: dict | None = None,
    forked_zygote: tuple[socket.socket, zygote.Forked] | None = None,
    built_manifest: bytes | None = None,
) -> int:
    """`capos-playground shell`: boot natively with this terminal attached to the shell.

    `remote_model` (a ModelInfo dict, with a `control` channel): the model the server
    serves over that channel, attached as the languageModel kernel cap. `forked_zygote`:
    see NativeHost. `built_manifest`: the manifest already encoded (a guest image's
    BUILT_MANIFEST), booted instead of reading `manifest` and `overlay`.

    Runs until the shell exits (or, with a `control` channel's descriptor, as
    in a QEMU guest, until the server asks for a shutdown), then shuts
    everything down; the exit status is the shell's.
    """
    try:
        image = built_manifest or build(
            Path(manifest) if manifest else None, Path(overlay) if overlay else None
        )
    except ManifestError as exc:
        print(f"capos-playground: bad manifest: {exc}", file=sys.stderr)
        return 2
    terminal = LocalTerminal()
    shells: list[Process] = []

    def console(proc: Process, data: bytes) -> None:
        terminal.write(data.replace(b"\n", b"\r\n") if terminal.interactive else data)

    channel: ControlChannel | None = None

    def shell_gone() -> bool:
        if channel is not None and channel.shutdown_requested:
            return True
        live = [p for p in host.kernel.processes.values() if p.binary == "shell"]
        if live and not shells:
            shells.extend(live)
        return bool(shells) and not live

    try:
        provider = open_provider(model or ModelSettings())
        with (
            terminal,
            NativeHost(
                image,
                console=console,
                terminal=terminal,
                model=provider,
                forked_zygote=forked_zygote,
            ) as host,
        ):
            if control >= 0:
                channel = ControlChannel(control, host)
                host.watch(control, channel.readable)
                if remote_model is not None:
                    host.use_model(remote_model, channel)
            host.boot()
            try:
                host.run(until=shell_gone)
            except KeyboardInterrupt:
                return 130
            if not shells:
                print("capos-playground: the system halted before a shell started", file=sys.stderr)
                return 1
            return shells[0].exit_code or 0
    except (BootError, HostError) as exc:
        print(f"capos-playground: {exc}", file=sys.stderr)
        return 1
