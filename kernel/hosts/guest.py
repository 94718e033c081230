"""PID 1 of the QEMU guest: the native host with the serial ports as its world.

The initramfs's `/init` runs this. The first serial port (ttyS0) becomes
the shell's TerminalSession, exactly as a local terminal is for
`capos-playground shell`; the second (ttyS1) is the control channel the
server speaks Cap'n Proto over (see control.py). When the shell exits or
the server asks for a shutdown, every process ends and the VM powers off
(a reboot, which QEMU's -no-reboot turns into an exit).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import gc
import json
import os
import sys
import termios
import traceback
import tty

TERMINAL = "/dev/ttyS0"
CONTROL = "/dev/ttyS1"
# The server's model, from the kernel command line: Linux hands a parameter it does not
# know (and that has no dot) to init as an environment variable.
MODEL_ENV = "CAPOS_MODEL"
_LINUX_REBOOT_CMD_RESTART = 0x01234567


def main() -> None:
    status = 1
    # No collections while the boot imports: they would only find the modules' objects alive,
    # and each pass through them is slow under TCG. The zygote re-enables them once frozen.
    gc.disable()
    try:
        terminal = os.open(TERMINAL, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(terminal, fd)
        os.close(terminal)
        control = os.open(CONTROL, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(control)
        for fd in (0, control):
            _fastest_line(fd)
        os.environ.setdefault("TERM", "xterm-256color")
        from kernel.codec import Bundle
        from kernel.hosts import zygote
        from kernel.hosts.models.settings import ModelSettings
        from kernel.hosts.native import shell_command
        from kernel.manifest import BUILT_MANIFEST
        from kernel.shipped import shipped

        Bundle.default()  # the kernel's and every process's schemas: read once, for both sides
        # Forked now, before the kernel exists, the zygote shares nothing of it but starts
        # with every module imported so far (a second interpreter would import them again).
        forked_zygote = zygote.fork(close=[control])
        gc.freeze()  # what is imported stays: later collections need not look at it again
        gc.enable()
        # No model files in the VM: agent mode uses the server's, over the control channel.
        status = shell_command(
            None,
            None,
            ModelSettings(disabled=True),
            control=control,
            remote_model=served_model(os.environ.get(MODEL_ENV)),
            forked_zygote=forked_zygote,
            built_manifest=shipped(BUILT_MANIFEST).read_bytes(),
        )
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(OSError):
            sys.stdout.flush()
            sys.stderr.flush()
            termios.tcdrain(1)
        _power_off(status)


def served_model(value: str | None) -> dict | None:
    """The ModelInfo the server put on the kernel command line (base64url JSON), or None:
    the server has no model, or the value does not read."""
    if not value:
        return None
    try:
        info = json.loads(base64.urlsafe_b64decode(value))
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _fastest_line(fd: int) -> None:
    """115200 baud, the UART's fastest, for both ports (Linux opens them at 9600).

    QEMU's UART raises the receive interrupt for a byte short of the FIFO's
    trigger level only after four character times, so at 9600 baud a single
    keystroke waited about 4 ms before the guest saw it; at 115200, 0.35 ms.
    """
    attrs = termios.tcgetattr(fd)
    attrs[4] = attrs[5] = termios.B115200
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _power_off(status: int) -> None:
    """PID 1 must never return (the kernel would panic): restart, which QEMU ends."""
    os.sync()
    ctypes.CDLL(None, use_errno=True).reboot(_LINUX_REBOOT_CMD_RESTART)
    os._exit(status)
