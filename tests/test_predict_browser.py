"""Predictive local echo on a server-hosted session, in real Chromium against a real QEMU guest.

One session serves a scripted visit with prediction forced on at the page's toggle:
typing at the prompt, a password prompt (the shell's `login`, which does not echo),
a program that turns echo off (`passphrase`, which asks the shell for hidden lines),
a full-screen program (`top`, the alternate screen, a key that is not echoed), a
clear (Ctrl-L) and a line long enough that the shell redraws it sideways instead of
echoing the key. After each step the screen as painted (the terminal's rows with every
prediction drawn over them) must be exactly the guest's screen, and what was typed at
the password prompts must never have been drawn.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.echopage import (
    buffer_rows,
    forget_shown,
    open_owner_page,
    painted,
    quiet,
    set_mode,
    settle,
    shown,
)
from bench.poolserver import PoolServer, pool_server
from bench.tab import wait_screen

pytestmark = [pytest.mark.qemu, pytest.mark.browser, pytest.mark.timeout(300)]

PASSWORD = "hunter2x"
WORD = "counter.increment(by=1) "
PROMPT = "guest@capos>"  # open_owner_page makes the shell a guest


@pytest.fixture(scope="module")
def server() -> Iterator[PoolServer]:
    with pool_server("--accel", "tcg", "--warm", "1", "--max-vms", "2") as served:
        yield served


@pytest.fixture(scope="module")
def page(browser, server):
    page = open_owner_page(browser, server)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    set_mode(page, "on")
    yield page
    assert errors == []
    page.context.close()


def typed(page, text: str) -> None:
    page.keyboard.type(text, delay=15)


def screen_is_the_guests(page) -> None:
    """Once no prediction is outstanding and the guest has gone quiet: nothing painted
    that the guest did not send, and nothing it sent missing."""
    settle(page)
    quiet(page)
    assert painted(page) == buffer_rows(page)


def test_the_first_line_fits_the_window_not_the_80_columns_the_guest_booted_with(page):
    # The warm VM drew its first prompt at 80 columns; the page's size came after it.
    cols = page.evaluate("() => capos.term.cols")
    line = (WORD * 4).rstrip()  # past 80 columns, within the window's
    assert len(f"{PROMPT} {line}") in range(80, cols - 1)
    typed(page, line)
    screen_is_the_guests(page)
    assert [row for row in buffer_rows(page) if row][-1] == f"{PROMPT} {line}"  # not scrolled
    page.keyboard.press("Control+U")
    screen_is_the_guests(page)
    forget_shown(page)


def test_typing_at_the_prompt_is_shown_before_the_echo_and_confirmed(page):
    typed(page, "timer.now()")
    settle(page)
    drawn = shown(page)
    # The first key after the prompt is tentative; the rest were drawn ahead of their echo,
    # each what was typed.
    assert len(drawn) >= 5 and all(glyphs in "timer.now()" for glyphs in drawn), drawn
    page.keyboard.press("Enter")
    wait_screen(page, lambda rows: any(r.startswith("ns = ") for r in rows), 30)
    screen_is_the_guests(page)


def test_a_password_prompt_never_shows_what_is_typed(page):
    typed(page, "login\r")
    wait_screen(page, lambda rows: any(r.startswith("username>") for r in rows), 30)
    typed(page, "alice\r")
    wait_screen(page, lambda rows: any(r.startswith("password>") for r in rows), 30)
    forget_shown(page)
    typed(page, PASSWORD)
    screen_is_the_guests(page)  # each key unconfirmed past its expiry, rolled back unseen
    assert shown(page) == []
    page.keyboard.press("Enter")
    wait_screen(page, lambda rows: any("login incorrect" in r for r in rows), 30)
    screen_is_the_guests(page)
    assert not any(PASSWORD[:3] in row for row in painted(page))


def test_a_program_that_turns_echo_off_never_shows_what_is_typed(page):
    typed(page, 'run "passphrase" with { stdio: client @stdio }\r')
    wait_screen(page, lambda rows: any(r.startswith("passphrase>") for r in rows), 30)
    forget_shown(page)
    typed(page, PASSWORD + "\r")
    wait_screen(page, lambda rows: any(r.startswith("again>") for r in rows), 30)
    typed(page, PASSWORD)
    screen_is_the_guests(page)
    page.keyboard.press("Enter")
    wait_screen(page, lambda rows: any("they match" in r for r in rows), 30)
    screen_is_the_guests(page)
    assert shown(page) == []


def test_a_full_screen_program_and_a_clear_leave_only_the_guests_screen(page):
    typed(page, "top\r")
    wait_screen(page, lambda rows: any(r.startswith("top - up") for r in rows), 30)
    forget_shown(page)
    typed(page, "q")  # any key quits top; it is not echoed
    wait_screen(page, lambda rows: not any(r.startswith("top - up") for r in rows), 30)
    screen_is_the_guests(page)
    assert shown(page) == []
    typed(page, "timer")
    page.keyboard.press("Control+L")
    typed(page, ".now")
    wait_screen(page, lambda rows: rows[0] == f"{PROMPT} timer.now", 30)
    screen_is_the_guests(page)
    page.keyboard.press("Control+U")
    screen_is_the_guests(page)


def test_a_line_the_shell_redraws_instead_of_echoing_is_rolled_back(page):
    cols = page.evaluate("() => capos.term.cols")
    line = WORD * (cols // len(WORD) + 1)  # past the line's width: the shell scrolls it
    typed(page, line)
    screen_is_the_guests(page)
    last = [row for row in buffer_rows(page) if row][-1]
    assert last.startswith(PROMPT) and last.endswith("(by=1)") and len(last) < cols
    page.keyboard.press("Control+U")
    screen_is_the_guests(page)
