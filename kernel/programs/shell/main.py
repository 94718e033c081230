"""The `shell` binary: anonymous bundle, MOTD, then read-evaluate until exit."""

from __future__ import annotations

import contextlib
import functools

from kernel.programs.shell.commands import Commands
from kernel.programs.shell.completion import Completer
from kernel.programs.shell.gateway import Gateway
from kernel.programs.shell.lineedit import EndOfInput, Interrupt, Line
from kernel.programs.shell.shell import Shell
from kernel.runtime import RemoteError, Runtime


def main(rt: Runtime) -> int:
    shell = Shell(rt)
    commands = Commands(shell)
    commands.adopt(rt.call(shell.sessions, "anonymous")["session"])
    port = rt.caps.get("agents")
    if port is not None:  # outside agents (MCP, REST) drive the session through us
        Gateway(commands, port).start()

    @functools.cache
    def manual_topics() -> list[str]:
        manual = shell.names.get("manual")
        if manual is None or manual.cap is None:
            return []
        return [page["topic"] for page in manual.cap.topics()["pages"]]

    shell.completer = Completer(shell, list(commands.builtins), manual_topics)
    info = shell.names.get("systemInfo")
    if info is not None and info.cap is not None:
        shell.hostname = info.cap.hostname()["name"]
        with contextlib.suppress(RemoteError):
            shell.out(info.cap.motd()["text"].rstrip("\n") + "\n")
    while True:
        shell.events.extend(shell.editor.prompt(shell.prompt_text()))
        shell.at_prompt = True  # an outside agent's `guest` may change it meanwhile
        event = shell.next_event()
        shell.at_prompt = False
        if isinstance(event, EndOfInput):
            break
        if isinstance(event, Interrupt):
            continue
        assert isinstance(event, Line)
        if not commands.execute(event.text):
            break
    for job in list(shell.jobs.values()):  # exit ends what this shell started
        job.handle.kill()
    if shell.interactive:
        shell.out("\n" if shell.editor.reading else "")
    return 0
