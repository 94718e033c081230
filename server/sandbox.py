"""What confines every QEMU this server starts: seccomp, an unprivileged user, rlimits, a cgroup.

A visitor's code runs inside the guest; QEMU is the wall around it, so QEMU itself is
held as if the guest had already broken out:

- `-sandbox` (seccomp mode 2): QEMU may not spawn processes, change its user, use
  obsolete system calls or change its scheduling and resource limits. Nothing QEMU is
  asked to do needs those: its migrations go through descriptors the server opens
  (`fd:`), never through a shell (`exec:`).
- An unprivileged user when the server runs as root: the child drops to `nobody` before
  it executes QEMU. Not `-runas`: QEMU 7.2 installs its seccomp filter while it parses
  its options, before `-runas` changes the user, so `elevateprivileges=deny` kills a QEMU
  given `-runas` (SIGSYS); and a change of user clears the parent-death signal, which
  must be set after it. Files QEMU needs are opened by the server and inherited, so QEMU,
  as `nobody`, needs no access to any path (the image cache lives in root's home).
- rlimits, set in the child before it executes QEMU: no core dumps (guest memory), a
  file size cap a little above a saved VM, few descriptors, an address-space backstop.
  No RLIMIT_NPROC: it counts every process and thread of the user across the machine
  (all VMs, and other `nobody` services), so a per-VM value would be wrong either way;
  seccomp's spawn=deny already stops QEMU from starting processes, and a cgroup's
  pids.max counts per VM.
- A cgroup v2 per VM where `/sys/fs/cgroup` is a writable cgroup2 mount with the memory
  and pids controllers: memory.max (the guest's RAM plus QEMU's own) and pids.max.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pwd
import resource
import secrets
from dataclasses import dataclass
from pathlib import Path

from kernel.hosts.zygote import die_with_parent

SECCOMP = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
UNPRIVILEGED_USER = "nobody"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_BASE = "capos-playground"  # one sub-cgroup per VM under it, named for the VM
CONTROLLERS = ("memory", "pids")
MIB = 1 << 20

MAX_FILES = 256  # QEMU holds about 16 (its sockets, event fds, the image, a migration)
STATE_OVERHEAD_MIB = 64  # a saved VM: at most its RAM, plus device state
# Measured at 256 MiB of RAM, booting, saving and restoring under TCG: virtual size peaks
# at 1.7 GiB (TCG's 1 GiB code buffer, thread stacks, malloc arenas, libraries), resident
# at 329 MiB, 16 descriptors, 5 threads; a saved VM is 143 MiB.
ADDRESS_SPACE_OVERHEAD_MIB = 3072  # a backstop against a runaway QEMU, not the memory cap
MEMORY_OVERHEAD_MIB = 384  # QEMU's resident memory beyond the guest's RAM (TCG's code cache)
MAX_TASKS = 64  # QEMU's threads: main, RCU, vCPU, migration, I/O workers


def rlimits(memory_mib: int) -> dict[int, int]:
    """The limits a QEMU for a guest of `memory_mib` runs under (soft and hard alike)."""
    return {
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NOFILE: MAX_FILES,
        resource.RLIMIT_FSIZE: (memory_mib + STATE_OVERHEAD_MIB) * MIB,
        resource.RLIMIT_AS: (memory_mib + ADDRESS_SPACE_OVERHEAD_MIB) * MIB,
    }


class Cgroups:
    """The cgroup v2 directory under which each VM gets its own, with its limits."""

    def __init__(self, base: Path) -> None:
        self.base = base

    @classmethod
    def open(cls, root: Path = CGROUP_ROOT) -> Cgroups | str:
        """The VMs' cgroup directory, made ready; or why there is none here."""
        if _mount_type(root) != "cgroup2":
            return f"{root} is not a cgroup2 mount (cgroup v1 or a hybrid hierarchy)"
        enable = " ".join(f"+{name}" for name in CONTROLLERS)
        base = root / CGROUP_BASE
        try:
            available = (root / "cgroup.controllers").read_text().split()
            missing = [name for name in CONTROLLERS if name not in available]
            if missing:
                return (
                    f"{root} lacks the {' and '.join(missing)} controller" + "s"[: len(missing) - 1]
                )
            if set(CONTROLLERS) - set((root / "cgroup.subtree_control").read_text().split()):
                (root / "cgroup.subtree_control").write_text(enable)
            base.mkdir(exist_ok=True)
            (base / "cgroup.subtree_control").write_text(enable)
        except OSError as exc:
            return f"{root} is not writable here ({exc.strerror})"
        return cls(base)

    def make(self, name: str, memory_mib: int) -> Path:
        """A new cgroup for VM `name`, with its limits; QEMU's child joins it. The suffix
        keeps apart VMs of the same name (tests, two servers, one that crashed)."""
        cgroup = self.base / f"{name}-{secrets.token_hex(4)}"
        cgroup.mkdir()
        (cgroup / "memory.max").write_text(str((memory_mib + MEMORY_OVERHEAD_MIB) * MIB))
        with contextlib.suppress(FileNotFoundError):  # no swap accounting: nothing to cap
            (cgroup / "memory.swap.max").write_text("0")
        (cgroup / "pids.max").write_text(str(MAX_TASKS))
        return cgroup


def _mount_type(path: Path) -> str | None:
    """The file system type mounted at `path` (the last mount there wins), if any."""
    found = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[1] == str(path):
                found = fields[2]
    return found


@dataclass(frozen=True)
class Cell:
    """One VM's confinement: made before its QEMU starts, entered by the child between
    fork and exec (`enter`, a preexec_fn), removed once QEMU has exited."""

    limits: dict[int, int]
    user: pwd.struct_passwd | None
    cgroup: Path | None

    def enter(self) -> None:
        for which, value in self.limits.items():
            resource.setrlimit(which, (value, value))
        if self.cgroup is not None:  # before dropping root: the cgroup belongs to root
            (self.cgroup / "cgroup.procs").write_text("0")
        if self.user is not None:
            os.setgroups([])
            os.setgid(self.user.pw_gid)
            os.setuid(self.user.pw_uid)
        die_with_parent()  # last: Linux clears the parent-death signal on a change of user

    async def remove(self) -> None:
        """Remove the VM's cgroup; a just-reaped QEMU can leave it busy for a moment."""
        if self.cgroup is None:
            return
        for _ in range(50):
            try:
                self.cgroup.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Sandbox:
    """How this server confines QEMU, found once at start (`sandbox()`)."""

    user: pwd.struct_passwd | None  # None: the server is not root, QEMU runs as its user
    cgroups: Cgroups | None
    no_cgroup: str  # why there is no cgroup ("" when there is)

    @classmethod
    def detect(cls) -> Sandbox:
        user = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(UNPRIVILEGED_USER)
            except KeyError:
                raise RuntimeError(
                    f"the server runs as root and there is no user {UNPRIVILEGED_USER!r} to "
                    "run QEMU as: create it, or run the server as an unprivileged user"
                ) from None
        cgroups = Cgroups.open()
        if isinstance(cgroups, str):
            return cls(user, None, cgroups)
        return cls(user, cgroups, "")

    @staticmethod
    def options() -> list[str]:
        return ["-sandbox", SECCOMP]

    def cell(self, name: str, memory_mib: int) -> Cell:
        cgroup = self.cgroups.make(name, memory_mib) if self.cgroups is not None else None
        return Cell(rlimits(memory_mib), self.user, cgroup)

    def stats(self, memory_mib: int) -> dict:
        """What is enforced on each VM, for the pool's stats and the start-up line."""
        limits = rlimits(memory_mib)
        return {
            "seccomp": SECCOMP,
            "user": (
                self.user.pw_name if self.user is not None else f"the server's uid {os.geteuid()}"
            ),
            "rlimits": {
                "core": limits[resource.RLIMIT_CORE],
                "nofile": limits[resource.RLIMIT_NOFILE],
                "fsize_mib": limits[resource.RLIMIT_FSIZE] // MIB,
                "as_mib": limits[resource.RLIMIT_AS] // MIB,
            },
            "cgroup": (
                {
                    "path": str(self.cgroups.base),
                    "memory_max_mib": memory_mib + MEMORY_OVERHEAD_MIB,
                    "pids_max": MAX_TASKS,
                }
                if self.cgroups is not None
                else {"none": self.no_cgroup}
            ),
        }

    def describe(self, memory_mib: int) -> str:
        stats = self.stats(memory_mib)
        limits = ", ".join(
            f"{name.removesuffix('_mib')} {value}{' MiB' if name.endswith('_mib') else ''}"
            for name, value in stats["rlimits"].items()
        )
        cgroup = stats["cgroup"]
        where = (
            f"cgroup {cgroup['path']}/<vm> (memory.max {cgroup['memory_max_mib']} MiB, "
            f"pids.max {cgroup['pids_max']})"
            if "path" in cgroup
            else f"no cgroup: {cgroup['none']}"
        )
        return f"seccomp on, runs as {stats['user']}, rlimits {limits}, {where}"


@functools.cache
def sandbox() -> Sandbox:
    """The server's sandbox, detected on first use (the cgroup directory is made then)."""
    return Sandbox.detect()
