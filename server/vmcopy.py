"""A copy of a running VM, for a fork: its device state and the RAM pages it has written.

A session's VM maps the pool template's RAM private (server/templateram.py), so all it
holds of its own are the pages it has written since: Linux's pagemap tells those apart
(a written page of a private file mapping is anonymous; one only read is still the
file's). A migration would send all 256 MiB, most of it the template's pages again, and
write every one of them into the fork; instead the source is stopped just long enough to
save its device state alone (`xen-save-devices-state`, which leaves RAM out, into a memfd
QEMU is handed with `add-fd`) and to read its written pages from /proc/PID/mem, then
continues. The fork is a clone of the template like any other (the same private mapping)
whose QEMU, started with `-incoming defer`, has these pages written into its memory
through /proc/PID/mem before it loads the device state.

`xen-save-devices-state` writes no configuration section, which every migration stream a
QEMU loads must begin with; `_header` writes one (the machine's name, and no capability
to check: the fork leaves `x-ignore-shared` off).
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from server.qmp import QmpError

if TYPE_CHECKING:
    from server.vm import Vm

PAGE = 4096
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
    pages: list[tuple[int, bytes]]  # (offset in guest RAM, the bytes from there) written runs
    screen: bytes  # the source's output stream as it stood then, for the fork's to begin with
    pause_s: float  # how long the source was stopped

    def info(self) -> dict:
        """What the fork cost its source, for the client that asked."""
        written = sum(len(data) for _, data in self.pages)
        return {"source_pause_ms": round(self.pause_s * 1000, 1), "copied_bytes": written}

    def write_into(self, pid: int, ram_bytes: int) -> None:
        """Write the pages into the RAM of QEMU `pid` (a fork, before it loads `devices`)."""
        try:
            base = ram_address(pid, ram_bytes)
            fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
            try:
                for offset, data in self.pages:
                    if os.pwrite(fd, data, base + offset) != len(data):
                        raise CopyFailed(f"a short write into the fork's RAM at {offset:#x}")
            finally:
                os.close(fd)
        except OSError as exc:
            raise CopyFailed(f"the fork's RAM could not be written ({exc})") from None


def ram_address(pid: int, ram_bytes: int) -> int:
    """Where QEMU `pid` maps the template's RAM; CopyFailed when it maps none (a VM
    restored from a state file holds all its RAM itself)."""
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(TEMPLATE_RAM) and int(fields[2], 16) == 0:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if end - start == ram_bytes:
                return start
    raise CopyFailed("its VM does not run on the pool's template (it was restored from disk)")


def written_pages(pid: int, ram_bytes: int) -> list[tuple[int, bytes]]:
    """The runs of guest RAM that QEMU `pid` has written, read from its memory."""
    base = ram_address(pid, ram_bytes)
    pages = ram_bytes // PAGE
    with open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pagemap:
        entries = os.pread(pagemap.fileno(), pages * 8, base // PAGE * 8)
    if len(entries) != pages * 8:
        raise CopyFailed("its VM's page map could not be read whole")
    written = entries[7::8].translate(_WRITTEN)  # each entry's top byte (little-endian)
    runs = []
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for run in _RUNS.finditer(written):
            offset, size = run.start() * PAGE, (run.end() - run.start()) * PAGE
            data = os.pread(fd, size, base + offset)
            if len(data) != size:
                raise CopyFailed(f"a short read of its VM's RAM at {offset:#x}")
            runs.append((offset, data))
    finally:
        os.close(fd)
    return runs


async def copy_vm(vm: Vm) -> VmCopy:
    """Stop `vm`, copy it, and continue it; CopyFailed (the VM running on) when it cannot be."""
    command, pid, ram_bytes = vm.qmp.command, vm.pid, vm.config.memory_mib << 20
    devices = os.memfd_create("capos-fork-devices", os.MFD_CLOEXEC)
    try:
        ram_address(pid, ram_bytes)  # before the pause: a VM that cannot be copied runs on
        # QEMU opens an fdset's descriptor only for the access mode it asks for: write-only.
        writer = os.open(f"/proc/self/fd/{devices}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            fdset = (await command("add-fd", fds=[writer]))["fdset-id"]
        finally:
            os.close(writer)  # QEMU holds its own
        try:  # the pause: as few round trips to QEMU as can be
            started = time.monotonic()
            await command("stop")
            try:
                await command("xen-save-devices-state", filename=f"/dev/fdset/{fdset}")
                pages = await asyncio.to_thread(written_pages, pid, ram_bytes)
                screen = vm.stream.snapshot().data.encode()
            finally:
                await command("cont")
            paused = time.monotonic() - started
        finally:
            await command("remove-fd", **{"fdset-id": fdset})
        stream = os.pread(devices, os.fstat(devices).st_size, 0)
    except (QmpError, OSError) as exc:
        raise CopyFailed(f"its VM could not be copied ({exc})") from None
    finally:
        os.close(devices)
    if stream[:8] != struct.pack(">II", QEMU_VM_FILE_MAGIC, QEMU_VM_FILE_VERSION):
        raise CopyFailed("its VM's device state did not come out as QEMU's stream")
    return VmCopy(_header() + stream[8:], pages, screen, paused)


def _header() -> bytes:
    """A migration stream's start: magic, version, and the configuration section."""
    magic = struct.pack(">II", QEMU_VM_FILE_MAGIC, QEMU_VM_FILE_VERSION)
    return magic + bytes([QEMU_VM_CONFIGURATION]) + struct.pack(">I", len(MACHINE)) + MACHINE
