"""The template VM's memory, which every clone maps copy-on-write instead of loading a copy.

A clone restored from the template's whole migration stream writes every page it is
sent, so each held a private copy of what the booted guest had touched (166 of an idle
VM's 209 MiB, measured). Instead the template runs with its RAM in a memfd (QEMU's
`memory-backend-file`, share=on) and is saved twice: its whole stream, as before (what
suspended sessions are compressed against, server/vmstate.py), and its device state alone
(`x-ignore-shared` leaves out RAM shared with a file), into a second memfd. The RAM memfd
is then sealed against writes: no write() and no shared writable mapping, so no clone's
QEMU, which is handed it, can change what the others see. Each clone maps it private
(share=off) and loads only the device state: a page stays the one copy until a clone
writes it, and only what a clone writes is its own.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


@dataclass(frozen=True)
class GuestRam:
    """Guest RAM in a file: the template's own (`shared`: its writes go into the file) or a
    clone's private view of the sealed file (then its migration stream holds no RAM)."""

    fd: int
    shared: bool


class TemplateRam:
    """The two memfds of a template, owned by the pool that made it (`close` frees them)."""

    def __init__(self, memory_mib: int) -> None:
        flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
        self._ram = os.memfd_create("capos-template-ram", flags)
        try:
            os.ftruncate(self._ram, memory_mib * MIB)
            self._devices = os.memfd_create("capos-template-devices", os.MFD_CLOEXEC)
        except OSError:
            os.close(self._ram)
            raise
        self.sealed = False

    @property
    def devices(self) -> Path:
        """The device state, as a path each reader opens for an offset of its own."""
        return Path(f"/proc/{os.getpid()}/fd/{self._devices}")

    def for_template(self) -> GuestRam:
        return GuestRam(self._ram, shared=True)

    def seal(self) -> None:
        """Once the template's QEMU has exited (its shared mapping is gone): no more writes."""
        fcntl.fcntl(self._ram, fcntl.F_ADD_SEALS, SEALS)
        self.sealed = True

    def for_clone(self) -> GuestRam:
        assert self.sealed, "a clone maps the template's RAM only once it is sealed"
        return GuestRam(self._ram, shared=False)

    def close(self) -> None:
        os.close(self._ram)
        os.close(self._devices)
