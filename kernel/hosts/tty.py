"""The local terminal a native host attaches as the kernel's TerminalSession.

Standard input and output, as they are: a real terminal is put in raw mode
(the shell does its own line editing, and Ctrl-C arrives as a byte for the
shell to interpret, never as a signal to the kernel) and restored on exit;
a pipe or file is read line by line as a script.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Callable
from types import FrameType
from typing import Any


class LocalTerminal:
    def __init__(self, stdin: int | None = None, stdout: int | None = None) -> None:
        self.stdin = sys.stdin.fileno() if stdin is None else stdin
        self.stdout = sys.stdout.fileno() if stdout is None else stdout
        self.interactive = os.isatty(self.stdin)
        self._saved: list | None = None
        self.resized_fd = -1  # while entered: readable once the window changed size
        self._old_winch: Callable[[int, FrameType | None], Any] | int | None = None

    def size(self) -> tuple[int, int]:
        if not self.interactive:
            return 80, 24
        # Not shutil's: importing shutil loads bz2 and lzma, a cost at every guest boot.
        try:
            size = os.get_terminal_size(self.stdout)
        except OSError:
            return 80, 24
        return size.columns or 80, size.lines or 24

    def __enter__(self) -> LocalTerminal:
        if self.interactive:
            self._saved = termios.tcgetattr(self.stdin)
            tty.setraw(self.stdin)
            self.resized_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._old_winch = signal.signal(signal.SIGWINCH, self._on_winch)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            termios.tcsetattr(self.stdin, termios.TCSADRAIN, self._saved)
            self._saved = None
            signal.signal(signal.SIGWINCH, self._old_winch or signal.SIG_DFL)
            os.close(self.resized_fd)
            self.resized_fd = -1

    def _on_winch(self, signum: int, frame: FrameType | None) -> None:
        """A descriptor, not a flag: it wakes the host's loop, which may be waiting for
        nothing else (the shell at its prompt), so the line refits at once."""
        os.eventfd_write(self.resized_fd, 1)

    def take_resize(self) -> tuple[int, int]:
        """The size now, once `resized_fd` is readable (several SIGWINCHes count as one)."""
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.resized_fd)
        return self.size()

    def read(self) -> bytes | None:
        """What is available on stdin: b"" at end of input, None if nothing yet."""
        try:
            return os.read(self.stdin, 4096)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.stdout, view)
            except BlockingIOError:
                continue
            except OSError:  # the terminal went away: nobody to show it to
                return
            view = view[written:]
