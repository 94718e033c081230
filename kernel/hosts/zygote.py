"""The native host's fork server, and the process side of its syscalls.

The kernel never forks itself: a child would inherit a copy of the
kernel's memory and every other process's ring mapping. Instead, at boot
the native host starts this module in a fresh interpreter (the zygote),
which imports the runtime and the system programs once and then forks a
child per spawn request. A child gets exactly three descriptors from the
kernel: the memfd holding its own region (ring, CapSet, buffers), its
submit doorbell and its wake doorbell, all eventfds.

Protocol on the zygote's SOCK_SEQPACKET socket (JSON messages):
  kernel -> zygote  {"spawn": pid, "module": m, "size": n, "spin_ns": s, "jitter_us": j}
                    + SCM_RIGHTS [memfd, submit, wake]
  zygote -> kernel  {"spawned": pid, "os_pid": p}  or  {"failed": pid, "error": text}
  zygote -> kernel  {"exited": pid, "status": wait status}     (whenever a child ends)
The zygote exits when the kernel's end of the socket closes, killing its children.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import gc
import importlib
import json
import mmap
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from typing import NoReturn

from kernel.abi import Header
from kernel.hosts.jitter import Jitter, jitter_for
from kernel.region import MemoryRegion
from kernel.ring import UserRing
from kernel.runtime import ProcessEnded, Runtime

MAX_MESSAGE = 4096
# What every child would otherwise import again: init, and the loop every service runs.
PRELOAD = ("kernel.codec", "kernel.runtime", "kernel.runtime.service", "kernel.programs.init")
_PR_SET_PDEATHSIG = 1
_WAKEUP_PIPE: list[int] = []  # the zygote's SIGCHLD pipe, which a child must not keep


def die_with_parent() -> None:
    """Ask Linux to SIGKILL us when our parent dies, so nothing outlives the kernel."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def send(sock: socket.socket, message: dict, fds: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode()
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.send(data)


def receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict, list[int]]:
    """One message and any descriptors with it; ({}, []) when the peer is gone."""
    fds = array.array("i")
    try:
        data, ancillary, _, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(max_fds * fds.itemsize))
    except ConnectionResetError:
        return {}, []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    if not data:
        return {}, list(fds)
    return json.loads(data), list(fds)


class NativeSyscalls:
    """cap_enter and exit over eventfd doorbells.

    A waiting process blocks reading its wake eventfd. With `spin_ns` (0,
    the native host's default, blocks at once) it first looks at its CQ for
    up to that long, never past its timeout, yielding the CPU on every look:
    when the answer comes within microseconds and a CPU is idle, that saves
    waking it, which costs tens of microseconds on a virtual machine.

    `jitter` (stress tests only) pauses at random between the steps.
    """

    def __init__(
        self,
        ring: UserRing,
        submit_fd: int,
        wake_fd: int,
        spin_ns: int = 0,
        jitter: Jitter | None = None,
    ) -> None:
        self.ring = ring
        self.submit_fd = submit_fd
        self.wake_fd = wake_fd
        self.spin_ns = spin_ns
        self.jitter = jitter

    def cap_enter(self, min_complete: int, timeout_ns: int | None) -> int:
        ring, jitter = self.ring, self.jitter
        idle_wakes = ring.get(Header.IDLE_WAKES)
        if jitter:
            jitter()
        ring.set(Header.ENTER_MIN, min_complete)
        if jitter:
            jitter()
        os.eventfd_write(self.submit_fd, 1)
        if jitter:
            jitter()
        if self.spin_ns:
            window = self.spin_ns if timeout_ns is None else min(self.spin_ns, timeout_ns)
            spin_until = time.monotonic_ns() + window
            while time.monotonic_ns() < spin_until:
                available = ring.available()
                if available >= min_complete and ring.submitted_unconsumed() == 0:
                    return available
                os.sched_yield()
                if jitter:
                    jitter()
        if timeout_ns is None:
            while True:
                os.eventfd_read(self.wake_fd)  # blocks until the kernel posts or wakes us
                if jitter:
                    jitter()
                if ring.dead:
                    raise ProcessEnded("the kernel ended this process")
                available = ring.available()
                if available >= min_complete or ring.get(Header.IDLE_WAKES) != idle_wakes:
                    return available
        poller = select.poll()
        poller.register(self.wake_fd, select.POLLIN)
        deadline = time.monotonic_ns() + timeout_ns
        while True:
            remaining_ms = max(0, (deadline - time.monotonic_ns()) // 1_000_000)
            if poller.poll(remaining_ms):
                os.eventfd_read(self.wake_fd)
                if jitter:
                    jitter()
            if ring.dead:
                raise ProcessEnded("the kernel ended this process")
            available = ring.available()
            if (
                available >= min_complete
                or ring.get(Header.IDLE_WAKES) != idle_wakes
                or time.monotonic_ns() >= deadline
            ):
                return available

    def exit(self, code: int) -> NoReturn:
        self.ring.set(Header.EXIT_CODE, code & 0xFFFFFFFF)
        self.ring.set(Header.EXIT_REQUESTED, 1)
        os.eventfd_write(self.submit_fd, 1)
        sys.stdout.flush()
        os._exit(0)


def run_child(
    module: str, size: int, spin_ns: int, jitter_us: int, memfd: int, submit_fd: int, wake_fd: int
) -> NoReturn:
    """The first and only thing a forked child does."""
    try:
        die_with_parent()
        os.setpgid(0, 0)  # the terminal's Ctrl-C goes to the kernel, not to every process
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        region = MemoryRegion(memoryview(mmap.mmap(memfd, size)))
        os.close(memfd)
        syscalls = NativeSyscalls(
            UserRing.attach(region), submit_fd, wake_fd, spin_ns, jitter_for(jitter_us)
        )
        gc.disable()  # as in the guest's PID 1: no collections while the program imports
        program = importlib.import_module(module)
        gc.freeze()
        gc.enable()
        code = program.main(Runtime(region, syscalls))
        syscalls.exit(int(code or 0))
    except ProcessEnded:
        os._exit(0)
    except BaseException:
        sys.stderr.write(f"capOS process ({module}) crashed:\n{traceback.format_exc()}")
        sys.stderr.flush()
        os._exit(70)


def serve(sock: socket.socket) -> None:
    """The zygote's loop: fork on request, report exits, stop when the kernel goes."""
    wakeup_r, wakeup_w = os.pipe()
    _WAKEUP_PIPE[:] = [wakeup_r, wakeup_w]
    os.set_blocking(wakeup_w, False)
    signal.set_wakeup_fd(wakeup_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}  # os pid -> kernel pid
    watched: list[socket.socket | int] = [sock, wakeup_r]
    try:
        while True:
            ready, _, _ = select.select(watched, [], [])
            if wakeup_r in ready:
                os.read(wakeup_r, 4096)
                _reap(sock, children)
            if sock in ready:
                message, fds = receive(sock, max_fds=3)
                if not message:
                    return
                _spawn(sock, message, fds, children)
    finally:
        for os_pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(os_pid, signal.SIGKILL)


def _spawn(sock: socket.socket, message: dict, fds: list[int], children: dict[int, int]) -> None:
    pid: int = message["spawn"]  # the kernel's spawn request always names the pid
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        send(sock, {"failed": pid, "error": f"expected 3 descriptors, got {len(fds)}"})
        return
    memfd, submit_fd, wake_fd = fds
    try:
        os_pid = os.fork()
    except OSError as exc:
        send(sock, {"failed": pid, "error": f"fork failed: {exc}"})
    else:
        if os_pid == 0:
            sock.close()
            signal.set_wakeup_fd(-1)
            for fd in _WAKEUP_PIPE:
                os.close(fd)
            run_child(
                message["module"],
                message["size"],
                message.get("spin_ns", 0),
                message.get("jitter_us", 0),
                memfd,
                submit_fd,
                wake_fd,
            )
        children[os_pid] = pid
        send(sock, {"spawned": pid, "os_pid": os_pid})
    finally:
        for fd in fds:
            os.close(fd)


def _reap(sock: socket.socket, children: dict[int, int]) -> None:
    while children:
        try:
            os_pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if os_pid == 0:
            return
        pid = children.pop(os_pid, None)
        if pid is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                send(sock, {"exited": pid, "status": status})


class Forked:
    """A zygote forked by `fork`: what the host asks of it, as of a Popen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"the zygote ({self.pid}) did not exit")
            time.sleep(0.01)
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def fork(close: Sequence[int] = ()) -> tuple[socket.socket, Forked]:
    """A zygote forked from this process instead of started afresh: it keeps every module
    imported here, which saves a second interpreter's start and imports (about a second
    of CPU in a TCG guest). Only for a host that holds nothing yet that its processes
    must not see: the guest's PID 1 before it builds its kernel. `close`: descriptors of
    this process the zygote must not keep."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            ours.close()
            for fd in close:
                os.close(fd)
            start(theirs.detach())
            status = 0
        except BaseException:
            sys.stderr.write(f"capOS zygote crashed:\n{traceback.format_exc()}")
            sys.stderr.flush()
        os._exit(status)  # never back into the host's code
    theirs.close()
    return ours, Forked(pid)


def start(fd: int) -> None:
    """The zygote, on the socket `fd`: preload, say ready, serve until the kernel goes."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in PRELOAD:
        importlib.import_module(name)
    from kernel.codec import Bundle

    Bundle.default()
    # What the children inherit stays out of their collections, so it stays shared with us
    # rather than copied page by page as a collection touches it.
    gc.freeze()
    gc.enable()  # a guest's PID 1 forked us with collections off for its boot
    sock = socket.socket(fileno=fd)
    send(sock, {"ready": os.getpid()})
    serve(sock)


def main() -> None:
    start(int(sys.argv[1]))


if __name__ == "__main__":
    main()
