"""The `man differences` page and the [ext] marks come from one list, kernel.differences."""

from __future__ import annotations

from kernel.differences import DIFFERENCES, extension_commands
from kernel.programs.shell import helptext
from tests.test_shell import after_motd, shell_session

GRANT_WORDS = {"new", "move"}  # extensions written inside a grant, not commands of their own


def test_man_differences_lists_every_entry_with_its_reason():
    text = "\n".join(after_motd(shell_session("man differences\nexit\n")))
    assert "differences(concepts) - where this playground departs from the capOS book" in text
    for number, entry in enumerate(DIFFERENCES, 1):
        assert f"{number}. {entry.title}" in text
    assert text.count("    why:") == len(DIFFERENCES)
    assert "system.local.toml instead of CUE" in text


def test_apropos_finds_the_differences_page():
    text = "\n".join(after_motd(shell_session("apropos book\nexit\n")))
    assert "differences (concepts)" in text


def test_help_marks_exactly_the_listed_extensions():
    overview = helptext.overview()
    width = max(len(name) for name in helptext.COMMANDS)
    for name, (summary, _) in helptext.COMMANDS.items():
        marked = f"  {name:<{width}}  [ext] {summary}" in overview
        assert marked == (name in extension_commands()), name
    assert "kill" in extension_commands()
    assert helptext.topic("kill").startswith("kill: [ext] end a job")


def test_every_listed_extension_is_a_command_or_a_grant_word():
    assert extension_commands() <= set(helptext.COMMANDS) | GRANT_WORDS
    assert extension_commands() >= GRANT_WORDS
