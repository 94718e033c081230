"""The template's RAM, which every clone's QEMU is handed: once sealed, none can change it."""

from __future__ import annotations

import mmap
import os

import pytest

from server.templateram import TemplateRam


@pytest.fixture
def template():
    ram = TemplateRam(memory_mib=1)
    yield ram
    ram.close()


def test_a_clone_cannot_change_what_the_other_clones_map(template: TemplateRam) -> None:
    os.pwrite(template.for_template().fd, b"booted", 0)  # the template's QEMU writes it
    template.seal()
    # A clone's QEMU opens the file again by its /proc path, for writing, as QEMU does.
    clone = os.open(f"/proc/self/fd/{template.for_clone().fd}", os.O_RDWR)
    try:
        with pytest.raises(PermissionError):
            os.pwrite(clone, b"hacked", 0)
        with pytest.raises(PermissionError):
            mmap.mmap(clone, 4096, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        private = mmap.mmap(clone, 4096, flags=mmap.MAP_PRIVATE)
        private[:6] = b"mine!!"  # its own copy of the page: the guest writes its RAM
        assert private[:6] == b"mine!!"
        private.close()
        assert os.pread(clone, 6, 0) == b"booted"
    finally:
        os.close(clone)
