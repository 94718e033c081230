"""`capos-playground shell` for real: isolated processes, a pipe, a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.native

REPO = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "server.cli", "shell"]


def our_processes() -> set[int]:
    """Every live descendant of this test process."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,comm="], capture_output=True, text=True)
    children: dict[int, list[int]] = {}
    for line in out.stdout.splitlines():
        pid, ppid, command = line.split(None, 2)
        if command.strip() != "ps":  # this very listing
            children.setdefault(int(ppid), []).append(int(pid))
    found, todo = set(), [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_piped_script_prints_caps_and_exits_zero_leaving_nothing_behind():
    before = our_processes()
    result = subprocess.run(
        COMMAND,
        input="caps\nguest\ncaps\ntimer.now()\nexit\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "session     UserSession  bundle (anonymous)" in result.stdout
    assert "launcher    ProcessSpawner  bundle (guest)" in result.stdout
    assert "ns = " in result.stdout
    assert "\r" not in result.stdout  # a script gets plain newlines, no editing
    time.sleep(0.2)
    assert our_processes() - before == set()  # no kernel, zygote or capOS process left


def test_end_of_input_ends_the_shell_cleanly():
    result = subprocess.run(
        COMMAND, input="caps\n", capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.returncode == 0 and "systemInfo" in result.stdout


class Terminal:
    """The shell on a pseudo-terminal, typed at like a person would."""

    def __init__(self) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        self.process = subprocess.Popen(
            COMMAND, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, start_new_session=True
        )
        os.close(slave)
        self.master = master
        self.output = bytearray()

    def read_until(self, text: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        start = len(self.output)
        while text not in self.output[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(
                    f"{text!r} never appeared; the screen got:\n{bytes(self.output[start:])!r}"
                )
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    break
        return bytes(self.output[start:])

    def type(self, keys: bytes, then: bytes) -> bytes:
        mark = len(self.output)
        os.write(self.master, keys)
        self.read_until(then)
        return bytes(self.output[mark:])

    def resize(self, cols: int) -> None:
        """What a terminal emulator does when its window is dragged wider or narrower."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
        os.kill(self.process.pid, signal.SIGWINCH)

    def close(self) -> int:
        try:
            return self.process.wait(timeout=20)
        finally:
            os.close(self.master)


@pytest.fixture
def terminal():
    term = Terminal()
    term.read_until(b"anonymous@capos> ")
    term.type(b"guest\r", then=b"guest@capos> ")  # the demo bundle, as a visitor's first step
    yield term
    if term.process.poll() is None:
        term.process.kill()
        term.process.wait()


def test_tab_completes_caps_and_methods(terminal):
    echo = terminal.type(b"tim\t", then=b"timer.")
    assert b"> timer." in echo
    echo = terminal.type(b"n\t", then=b"timer.now(")
    terminal.type(b")\r", then=b"ns = ")


def test_tab_twice_lists_the_candidates(terminal):
    terminal.type(b"timer.\t", then=b"\x07")
    listing = terminal.type(b"\t", then=b"timer.")
    assert b"timer.now(" in listing and b"timer.sleep(" in listing


def test_up_arrow_recalls_history(terminal):
    terminal.type(b"timer.now()\r", then=b"ns = ")
    terminal.type(b"\x1b[A", then=b"timer.now()")
    terminal.type(b"\r", then=b"ns = ")
    listing = terminal.type(b"history\r", then=b"3  history")  # repeats kept once
    assert b"1  guest" in listing and b"2  timer.now()" in listing


def test_a_resize_at_the_prompt_refits_the_line_before_enter(terminal):
    name = "nosuch" + "0123456789" * 9
    terminal.type(name.encode(), then=b"789")  # 100 columns: its start scrolls off
    terminal.resize(140)
    terminal.read_until(b"\rguest@capos> " + name.encode())  # redrawn whole, at once
    terminal.type(b".now()\r", then=f"no cap named '{name}'".encode())


def test_password_is_never_echoed(terminal):
    terminal.type(b"setup\r", then=b"username> ")
    terminal.type(b"dora\r", then=b"password> ")
    shown = terminal.type(b"hunter22\r", then=b"again> ")
    shown += terminal.type(b"hunter22\r", then=b"dora@capos> ")
    assert b"hunter22" not in shown
    assert b"setup: now dora (operator)" in shown


def test_a_program_that_asks_for_a_hidden_line_gets_no_echo_and_no_history(terminal):
    terminal.type(b'run "passphrase" with { stdio: client @stdio }\r', then=b"passphrase> ")
    shown = terminal.type(b"swordfish\r", then=b"again> ")
    shown += terminal.type(b"swordfish\r", then=b"guest@capos> ")
    assert b"swordfish" not in shown
    assert b"passphrase: they match (9 characters)" in shown
    listing = terminal.type(b"history\r", then=b"history\r\n")
    listing += terminal.read_until(b"guest@capos> ")
    assert b"swordfish" not in listing


def test_ctrl_c_discards_the_line_and_keeps_the_shell(terminal):
    shown = terminal.type(b"caps and more\x03", then=b"guest@capos> ")
    assert b"^C" in shown
    terminal.type(b"timer.now()\r", then=b"ns = ")


def test_ctrl_c_interrupts_a_call(terminal):
    terminal.type(b"timer.sleep(ns=60000000000)\r", then=b"\r\n")
    shown = terminal.type(b"\x03", then=b"guest@capos> ")
    assert b"interrupted" in shown


def test_exit_leaves_status_zero_and_restores_the_terminal(terminal):
    terminal.type(b"exit\r", then=b"exit")
    assert terminal.close() == 0


def test_top_is_live_on_a_real_terminal_until_a_key(terminal):
    terminal.type(b"top\r", then=b"(any key quits)")
    frames = terminal.read_until(b"top - up", timeout=10)  # the next refresh
    assert b"\x1b[H" in frames and b" shell " in frames and b" init " in frames
    shown = terminal.type(b"x", then=b"\x1b[?1049l")  # back to the shell's screen
    shown += terminal.type(b"timer.now()\r", then=b"ns = ")
    assert b"xtimer" not in shown  # the key that ended top was not typed at the prompt


def test_agent_mode_runs_the_built_in_model_in_the_native_host(terminal):
    banner = terminal.type(b"agent counter\r", then=b"agent> ")
    assert b"SmolLM2-135M-Instruct is answering" in banner
    terminal.type(b"increment the counter by 2\r", then=b"allow?")
    shown = terminal.type(b"y\r", then=b"agent> ")
    assert b"] value = " in shown and b"SmolLM2-135M-Instruct> " in shown
    terminal.type(b"exit\r", then=b"guest@capos> ")
