"""A copy of a running VM, for a fork: its device state and the RAM pages it has written.

A session's VM maps the pool template's RAM private (server/templateram.py), so all it
holds of its own are the pages it has written since: Linux's pagemap tells those apart
(a written page of a private file mapping is anonymous; one only read is still the
file's). A migration would send all 256 MiB, most of it the template's pages again, and
write every one of them into the fork; instead the source is stopped just long enough to
save its device state alone (`xen-save-devices-state`, which leaves RAM out, into a memfd
its QEMU was handed as it started, Vm.devices_out) and to read its written pages
(process_vm_readv), then continues. The fork is a clone of the template like any other
(the same private mapping) whose QEMU, started ahead with `-incoming defer`, has these
pages written into its memory (process_vm_writev, copy-on-write there) before it loads
the device state. Both need the right to ptrace QEMU, which the server has: it is root,
or QEMU's parent.

`xen-save-devices-state` writes no configuration section, which every migration stream a
QEMU loads must begin with; `_header` writes one (the machine's name, and no capability
to check: the fork leaves `x-ignore-shared` off).
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from server.qmp import QmpError

if TYPE_CHECKING:
    from server.vm import Vm

PAGE = 4096
IOV_MAX = 1024  # the most iovecs one process_vm_readv takes
MACHINE = b"microvm"  # VmConfig.command's -M
TEMPLATE_RAM = "/memfd:capos-template-ram"  # server/templateram.py's memfd, as maps names it
QEMU_VM_FILE_MAGIC, QEMU_VM_FILE_VERSION, QEMU_VM_CONFIGURATION = 0x5145564D, 3, 0x07
# A pagemap entry's top byte: bit 63 present, 62 swapped, 61 a file's (or shared) page.
_WRITTEN = bytes(1 if top & 0b1100_0000 and not top & 0b0010_0000 else 0 for top in range(256))
_RUNS = re.compile(rb"\x01+")


class CopyFailed(Exception):
    """The VM cannot be copied; the message says why. The source runs on."""


@dataclass(frozen=True)
class VmCopy:
    devices: bytes  # a migration stream without RAM: what `-incoming` loads
    runs: list[tuple[int, int]]  # (offset in guest RAM, length): the runs of written pages
    data: bytearray  # their bytes, one run after the other
    screen: bytes  # the source's output stream as it stood then, for the fork's to begin with
    pause_s: float  # how long the source was stopped

    def info(self) -> dict:
        """What the fork cost its source, for the client that asked."""
        return {"source_pause_ms": round(self.pause_s * 1000, 1), "copied_bytes": len(self.data)}

    def write_into(self, pid: int, ram_bytes: int) -> None:
        """Write the pages into the RAM of QEMU `pid` (a fork, before it loads `devices`)."""
        base = ram_address(pid, ram_bytes)
        _transfer(_libc.process_vm_writev, pid, base, self.runs, self.data)


def ram_address(pid: int, ram_bytes: int) -> int:
    """Where QEMU `pid` maps the template's RAM; CopyFailed when it maps none (a VM
    restored from a state file holds all its RAM itself)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError as exc:
        raise CopyFailed(f"its QEMU's memory map cannot be read ({exc.strerror})") from None
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(TEMPLATE_RAM) and int(fields[2], 16) == 0:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if end - start == ram_bytes:
                return start
    raise CopyFailed("its VM does not run on the pool's template (it was restored from disk)")


def written_pages(pid: int, ram_bytes: int) -> tuple[list[tuple[int, int]], bytearray]:
    """The runs of guest RAM that QEMU `pid` has written, and their bytes."""
    base = ram_address(pid, ram_bytes)
    pages = ram_bytes // PAGE
    with open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pagemap:
        entries = os.pread(pagemap.fileno(), pages * 8, base // PAGE * 8)
    if len(entries) != pages * 8:
        raise CopyFailed("its VM's page map could not be read whole")
    written = entries[7::8].translate(_WRITTEN)  # each entry's top byte (little-endian)
    runs = [
        (run.start() * PAGE, (run.end() - run.start()) * PAGE) for run in _RUNS.finditer(written)
    ]
    data = bytearray(sum(size for _, size in runs))
    _transfer(_libc.process_vm_readv, pid, base, runs, data)
    return runs, data


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
for _call in (_libc.process_vm_readv, _libc.process_vm_writev):
    _call.restype = ctypes.c_ssize_t
    _call.argtypes = [
        ctypes.c_int, ctypes.POINTER(_IoVec), ctypes.c_ulong,
        ctypes.POINTER(_IoVec), ctypes.c_ulong, ctypes.c_ulong,
    ]  # fmt: skip


def _transfer(
    call: Callable[..., int], pid: int, base: int, runs: list[tuple[int, int]], data: bytearray
) -> None:
    """Move `data` between this process and the runs at `base` in QEMU `pid`'s memory, by
    process_vm_readv or _writev: a system call per IOV_MAX runs, not one per page as
    /proc/PID/mem takes."""
    buffer = (ctypes.c_char * len(data)).from_buffer(data) if data else None
    address = ctypes.addressof(buffer) if buffer is not None else 0
    done = 0
    for first in range(0, len(runs), IOV_MAX):
        batch = runs[first : first + IOV_MAX]
        size = sum(length for _, length in batch)
        local = _IoVec(address + done, size)
        remote = (_IoVec * len(batch))(*(_IoVec(base + offset, n) for offset, n in batch))
        moved = call(pid, ctypes.byref(local), 1, remote, len(batch), 0)
        if moved != size:
            error = os.strerror(ctypes.get_errno()) if moved < 0 else "a short transfer"
            raise CopyFailed(f"the VM's RAM could not be copied ({error})")
        done += size


async def copy_vm(vm: Vm) -> VmCopy:
    """Stop `vm`, copy it, and continue it; CopyFailed (the VM running on) when it cannot be."""
    command, pid, ram_bytes = vm.qmp.command, vm.pid, vm.config.memory_mib << 20
    if not vm.devices_path:
        raise CopyFailed("its VM does not run on the pool's template (it was restored from disk)")
    try:
        ram_address(pid, ram_bytes)  # before the pause: a VM that cannot be copied runs on
        started = time.monotonic()  # the pause: as few round trips to QEMU as can be
        await command("stop")
        try:
            await command("xen-save-devices-state", filename=vm.devices_path)
            # Inline, not in a thread: the source waits on it, and it is short (~20 ms for
            # the 10 MiB of a session running a program); the event loop waits that once.
            runs, data = written_pages(pid, ram_bytes)
            screen = vm.stream.snapshot().data.encode()
        finally:
            await command("cont")
        paused = time.monotonic() - started
        stream = os.pread(vm.devices_out, os.fstat(vm.devices_out).st_size, 0)
    except (QmpError, OSError) as exc:
        raise CopyFailed(f"its VM could not be copied ({exc})") from None
    if stream[:8] != struct.pack(">II", QEMU_VM_FILE_MAGIC, QEMU_VM_FILE_VERSION):
        raise CopyFailed("its VM's device state did not come out as QEMU's stream")
    return VmCopy(_header() + stream[8:], runs, data, screen, paused)


def _header() -> bytes:
    """A migration stream's start: magic, version, and the configuration section."""
    magic = struct.pack(">II", QEMU_VM_FILE_MAGIC, QEMU_VM_FILE_VERSION)
    return magic + bytes([QEMU_VM_CONFIGURATION]) + struct.pack(">I", len(MACHINE)) + MACHINE
