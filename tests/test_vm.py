"""A VM whose QEMU cannot start ends with the reason, and leaves nothing open."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.image import Image
from server.stream import OutputStream
from server.vm import Vm, VmConfig


def test_a_qemu_that_cannot_start_ends_the_vm_with_the_reason(tmp_path):
    image = Image(tmp_path / "vmlinuz", tmp_path / "initrd.img", "none")
    config = VmConfig(qemu=str(tmp_path / "no-such-qemu"))
    vm = Vm(image, config, OutputStream(), name="capos-test-missing")
    asyncio.run(vm.run())
    assert vm.exited.is_set() and not vm.ready.is_set()
    assert vm.exit_reason.startswith("QEMU could not start:")
    assert "no-such-qemu" in vm.exit_reason


def test_the_command_line_has_no_network_a_memory_cap_and_one_cpu():
    image = Image(Path("/k"), Path("/i"), "none")
    command = VmConfig(memory_mib=192, accel="tcg").command(image, "capos-x")
    assert "-nodefaults" in command and "-netdev" not in " ".join(command)
    assert command[command.index("-m") + 1] == "192M"
    assert command[command.index("-smp") + 1] == "1"
    assert "mitigations=off" in command[command.index("-append") + 1]
    assert "mitigations=off" not in VmConfig(accel="kvm").command(image, "x")[-1]
