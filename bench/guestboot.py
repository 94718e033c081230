"""Cold boots for `bench pool`: our guest to its prompt, and a bare guest as the floor.

The bare guest is the same kernel and initramfs booted by the same QEMU
command (VmConfig, the sandbox), except that the kernel command line makes
CPython itself PID 1 (`rdinit=`, with its arguments after `--`): it opens
the terminal and prints a prompt. Its time is what any CPython guest pays
under this accelerator before running a line of ours, so `boot_ms` is judged
against it, both measured in the same run (the machine is shared).
"""

from __future__ import annotations

import asyncio
import dataclasses

from server.image import PYTHON, Image
from server.stream import OutputStream
from server.vm import Vm, VmConfig

# No "=" in it: the kernel would take the argument for a parameter. Ends blocked on a read,
# since PID 1 must not exit.
_BARE_PROGRAM = (
    "import os;(lambda t:(os.write(t,b'bare@capos> '),os.read(t,1)))(os.open('/dev/ttyS0',2))"
)


@dataclasses.dataclass(frozen=True)
class BareConfig(VmConfig):
    """The guest's QEMU command with CPython as PID 1, printing the prompt the VM waits for."""

    def command(self, image: Image, name: str, model: dict | None = None) -> list[str]:
        command = super().command(image, name, model)
        init = f' rdinit=/{PYTHON} -- -S -c "{_BARE_PROGRAM}"'  # -S: as /init runs it
        command[command.index("-append") + 1] += init
        return command


def boot_ms(image: Image, config: VmConfig) -> float:
    """QEMU start to the prompt's bytes on the terminal, one VM, no server."""

    async def boot() -> float:
        vm = Vm(image, config, OutputStream(), name="capos-bench-boot")
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(vm.run())
            waits = [tasks.create_task(event.wait()) for event in (vm.ready, vm.exited)]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
            ready_at = vm.ready_at
            vm.kill("measured")
        if ready_at is None:
            raise RuntimeError(f"the guest did not reach its prompt: {vm.exit_reason}")
        return (ready_at - vm.started_at) * 1000

    return asyncio.run(boot())


def boot_pair(image: Image, accel: str, rounds: int) -> tuple[list[float], list[float]]:
    """(bare guest, our guest) boot times, alternating so both see the same load."""
    bare, ours = [], []
    for _ in range(rounds):
        bare.append(boot_ms(image, BareConfig(accel=accel)))
        ours.append(boot_ms(image, VmConfig(accel=accel)))
    return bare, ours
