"""A window resized while the shell waits at its prompt: the line refits at once.

The shell runs on an interactive terminal of the in-process host; what it
writes is shown on the VT100 model of tests/test_lineedit.py, resized as a
user's window would be, then the host tells the kernel (as a page's resize
frame or SIGWINCH does). Nothing here presses Enter to make the shell notice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from kernel.hosts.inproc import InProcessHost
from kernel.manifest import default_manifest, encode_document, load_document
from tests.test_lineedit import Screen

PROMPT = "anonymous@capos> "


class Window:
    """The shell's terminal as a user sees it, resized by dragging its edge."""

    def __init__(self, host: InProcessHost, cols: int) -> None:
        self.host = host
        self.screen = Screen(cols, 50)
        self.shown = 0  # how much of what the shell wrote is on the screen

    def sync(self) -> bytes:
        with self.host.cond:
            data = bytes(self.host.screen[self.shown :])
        self.shown += len(data)
        self.screen.feed(data)
        return data

    def until(self, check: Callable[[], bool], what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"never: {what}; the row shows {self.screen.line!r}")
            time.sleep(0.01)
            self.sync()

    def type(self, keys: str) -> None:
        self.host.type(keys.encode())

    def drag(self, cols: int) -> None:
        """The window is now `cols` wide: the screen first, then the shell is told."""
        self.sync()
        self.screen.resize(cols)
        self.host.resize(cols, 24)


@pytest.fixture
def window() -> Iterator[Window]:
    document = load_document(default_manifest())
    document["binaries"].append({"name": "greeter", "module": "tests.programs.greeter"})
    host = InProcessHost(encode_document(document), terminal=True)  # 80 columns
    host.boot()
    try:
        shown = Window(host, 80)
        shown.until(lambda: shown.screen.line == PROMPT.rstrip(), "the first prompt")
        yield shown
        assert host.crashes == {} and host.kernel.faults == []
    finally:
        host.shutdown()


def answer(name: str) -> str:
    """What the shell says to `NAME.now()` for a name it does not hold: the line ran whole."""
    return f"no cap named '{name}' in this shell: type caps"


def test_a_line_typed_at_the_first_prompt_refits_when_the_window_widens_then_narrows(window):
    name = "nosuch" + "0123456789" * 8
    text = name + ".now()"
    window.type(text)
    window.until(lambda: window.screen.line.endswith("9.now()"), "the echo")
    assert len(window.screen.line) < 80 and text not in window.screen.line  # scrolled at 80
    wraps = window.screen.wraps

    window.drag(138)
    window.until(lambda: window.screen.line == PROMPT + text, "the whole line at 138 columns")
    window.drag(40)
    window.until(
        lambda: window.screen.line.startswith(PROMPT) and len(window.screen.line) < 40,
        "the line scrolled to fit 40 columns",
    )
    assert window.screen.line.endswith("789.now()") and window.screen.wraps == wraps

    window.drag(138)  # wide enough for the answer
    window.until(lambda: window.screen.line == PROMPT + text, "the whole line again")
    window.type("\r")
    window.until(lambda: window.screen.line == PROMPT.rstrip(), "the next prompt")
    assert answer(name) in window.screen.lines()


def test_a_burst_of_resizes_redraws_twice_and_loses_no_keys(window):
    window.screen.resize(140)  # wider than any size below, so no draw can wrap on it
    name = "nosuch" + "x" * 56 + "z"
    window.type(name)
    window.until(lambda: window.screen.line.endswith("xz"), "the echo")
    assert window.screen.line != PROMPT + name  # at 80 columns its start scrolled off
    wraps = window.screen.wraps
    with window.host.cond:  # all at once: the shell runs again only after the last one
        mark = len(window.host.screen)
        for i in range(500):
            window.host.resize(40 + i % 100, 24)  # 40, 41 ... 139, five times
    # Drawn at 40 columns first, the line's start scrolls off; at 139 it shows again.
    window.until(lambda: window.screen.line == PROMPT + name, "the line at 139 columns")
    window.type("y")  # everything drawn since the burst is on screen once this is
    window.until(lambda: window.screen.line.endswith("zy"), "the echo of 'y'")
    redraws = bytes(window.host.screen[mark:]).count(b"\r")
    assert redraws <= 2, f"{redraws} redraws for one burst"

    typed = ""
    for i in range(30):  # typing while the window is dragged back and forth
        window.host.resize(60 + (i * 37) % 80, 24)
        window.type("ab"[i % 2])
        typed += "ab"[i % 2]
    window.host.resize(139, 24)
    window.type(".now()\r")
    window.until(lambda: window.screen.line == PROMPT.rstrip(), "the next prompt")
    assert answer(name + "y" + typed) in window.screen.lines()
    assert window.screen.wraps == wraps


def test_a_program_reading_through_stdio_sees_no_resize(window):
    window.type("guest\r")  # anonymous holds no launcher
    window.until(lambda: window.screen.line == "guest@capos>", "the guest's prompt")
    window.type('run "greeter" with { stdio: client @stdio }\r')
    window.until(lambda: window.screen.line == "name?", "the greeter's prompt")
    window.type("Ad")
    for cols in (100, 50, 120, 60):
        window.drag(cols)
        window.until(lambda: window.screen.line == "name? Ad", "the prompt redrawn")
    window.type("a\r")
    window.until(lambda: window.screen.line == "name?", "the next question")
    window.type("bye\r")
    window.until(lambda: window.screen.line == "guest@capos>", "the shell's prompt")
    lines = window.screen.lines()
    assert "hello, Ada!" in lines
    assert not any(line.startswith("hello, !") or "end of input" in line for line in lines)
