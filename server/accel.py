"""Which accelerator QEMU gets: KVM when it really works, TCG otherwise.

`/dev/kvm` can exist and still fail (no vmx/svm in a nested VM: guests
abort or hang), so the probe is a real boot: the guest kernel with no
initramfs, which under KVM reaches "no root filesystem" and powers off
within a second or two. Anything else, in time, means TCG.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from server.image import Image
from server.vm import VmConfig

PROBE_TIMEOUT_S = 10.0


async def probe_accel(image: Image, qemu: str = "qemu-system-x86_64") -> str:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    command = VmConfig(memory_mib=128, accel="kvm", qemu=qemu).command(image, "capos-kvm-probe")
    command = [arg for arg in command if arg not in ("-initrd", str(image.initrd))]
    append = command.index("-append") + 1
    command[append] = command[append].replace("quiet", "console=ttyS0")
    process = await asyncio.create_subprocess_exec(
        *command,
        "-serial",
        "stdio",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            output, _ = await process.communicate()
    except TimeoutError:
        return "tcg"
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return "kvm" if process.returncode == 0 and b"Kernel panic" in output else "tcg"
