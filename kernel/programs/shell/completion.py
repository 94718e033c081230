"""Tab completion: commands, cap names, `name.method(`, `@cap`, help and man topics."""

from __future__ import annotations

from collections.abc import Callable

from kernel.programs.shell import helptext
from kernel.programs.shell.shell import Shell

LAUNCH_WORDS = ("run", "spawn", "let", "exit")


class Completer:
    def __init__(self, shell: Shell, builtins: list[str], manual_topics: Callable[[], list[str]]):
        self.shell = shell
        self.builtins = builtins
        self.manual_topics = manual_topics

    def __call__(self, before_cursor: str) -> list[str]:
        words = before_cursor.split()
        current = "" if before_cursor.endswith((" ", "\t")) or not words else words[-1]
        previous = words[:-1] if current else words
        names = sorted(self.shell.names)
        if current.startswith("@"):
            return [f"@{n}" for n in names if n.startswith(current[1:])]
        if "." in current:
            return self._methods(current)
        if previous and previous[0] == "help":
            return [t for t in helptext.COMMANDS if t.startswith(current)]
        if previous and previous[0] == "man":
            return [t for t in self.manual_topics() if t.startswith(current)]
        if previous and previous[0] in ("methods", "release"):
            return [n for n in names if n.startswith(current)]
        if previous:
            return [f"@{n}" for n in names if n.startswith(current)] if current == "" else []
        commands = sorted({*self.builtins, *LAUNCH_WORDS})
        return [c for c in commands if c.startswith(current)] + [
            f"{n}." for n in names if n.startswith(current)
        ]

    def _methods(self, current: str) -> list[str]:
        target, _, partial = current.rpartition(".")
        binding = self.shell.names.get(target)
        if binding is None or binding.cap is None or binding.cap.interface is None:
            # a dotted let-name prefix, such as `h.` for h.handle
            return [f"{n}." for n in self.shell.names if n.startswith(current)]
        return [
            f"{target}.{m.name}("
            for m in binding.cap.interface.methods
            if m.name.startswith(partial)
        ]
