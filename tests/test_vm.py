"""A VM whose QEMU cannot start ends with the reason, and leaves nothing open."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from kernel.hosts.guest import served_model
from server.image import Image
from server.stream import OutputStream
from server.vm import Vm, VmConfig


def test_a_qemu_that_cannot_start_ends_the_vm_with_the_reason(tmp_path):
    image = Image(tmp_path / "vmlinuz", tmp_path / "initrd.img", "none")
    image.kernel.touch()
    image.initrd.touch()
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


def test_the_guest_learns_the_servers_model_from_its_command_line():
    image = Image(Path("/k"), Path("/i"), "none")
    info = {"modelId": "SmolLM2-135M-Instruct", "provider": "on the server", "local": False}
    append = VmConfig().command(image, "capos-x", model=info)[-1]
    # Linux hands init an unknown, dotless name=value parameter as its environment
    words = dict(w.split("=", 1) for w in append.split() if "=" in w and "." not in w)
    assert served_model(words["CAPOS_MODEL"]) == info  # what kernel/hosts/guest.py attaches
    assert "CAPOS_MODEL" not in VmConfig().command(image, "capos-x")[-1]
    assert served_model(None) is None
    assert served_model("%%%not-base64") is None
    assert served_model(base64.urlsafe_b64encode(b"[1, 2]").decode()) is None
