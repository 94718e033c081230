"""Command history for the shell's line editor.

Bounded so a long-lived session cannot grow without limit; consecutive duplicates and
blank lines are skipped so Up walks through distinct commands.  Browsing goes through a
`HistoryCursor`, which (as readline does) keeps the line being edited and any edits made
to recalled entries until the line is accepted, so Up then Down gives back what was typed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

DEFAULT_LIMIT = 500


class History:
    """The recorded lines, oldest first, at most `limit` of them."""

    def __init__(self, limit: int = DEFAULT_LIMIT, entries: Iterable[str] = ()) -> None:
        if limit < 0:
            raise ValueError("history limit must be >= 0")
        self.limit = limit
        self._entries: list[str] = []
        for entry in entries:
            self.add(entry)

    def add(self, line: str) -> bool:
        """Record `line`; False when it is blank or repeats the newest entry.

        The caller never passes hidden input (passwords): the editor decides that."""
        if not line.strip() or (self._entries and self._entries[-1] == line):
            return False
        if self.limit == 0:
            return False
        self._entries.append(line)
        if len(self._entries) > self.limit:
            del self._entries[: len(self._entries) - self.limit]
        return True

    @property
    def entries(self) -> list[str]:
        """A copy, oldest first (for saving a session's history)."""
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def cursor(self) -> HistoryCursor:
        """Start browsing: one cursor per line being read."""
        return HistoryCursor(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __getitem__(self, index: int) -> str:
        return self._entries[index]


class HistoryCursor:
    """A position in a snapshot of the history, plus the edits made while browsing.

    Position len(entries) is the line being edited.  Leaving a position stores the text
    shown there, so coming back shows it again; the history itself is never modified."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        self._entries = entries
        self._index = len(entries)
        self._edits: dict[int, str] = {}

    @property
    def index(self) -> int:
        return self._index

    @property
    def at_edit_line(self) -> bool:
        return self._index == len(self._entries)

    def previous(self, current: str) -> str | None:
        """The older entry (keeping `current` for this position), or None at the oldest."""
        if self._index == 0:
            return None
        return self._go(self._index - 1, current)

    def next(self, current: str) -> str | None:
        """The newer entry, or the line being edited; None when already there."""
        if self._index >= len(self._entries):
            return None
        return self._go(self._index + 1, current)

    def _go(self, index: int, current: str) -> str:
        self._edits[self._index] = current
        self._index = index
        if index in self._edits:
            return self._edits[index]
        return self._entries[index] if index < len(self._entries) else ""
