"""The default system on the in-process host, with a model attached, driven as a user.

Agent tests type a line, wait until the screen shows what they expect, and
answer, as a person at the terminal would: that is how "ask mode waits" and
"Ctrl-C stops the loop" are observed rather than assumed.
"""

from __future__ import annotations

import time

from kernel.hosts.inproc import InProcessHost
from kernel.hosts.models.runner import Provider
from kernel.manifest import default_manifest, encode_document, load_document


class AgentSystem:
    def __init__(self, model: Provider | None, *, guest: bool = True) -> None:
        """`guest`: type `guest` first, as a visitor does, for the demo bundle (the model
        among it); without it the shell stays anonymous."""
        document = load_document(default_manifest())
        self.host = InProcessHost(encode_document(document), terminal=True, model=model)
        self.guest = guest

    def __enter__(self) -> AgentSystem:
        self.host.boot()
        self.wait_for("> ")  # the shell's first prompt (after the MOTD)
        if self.guest:
            self.exchange("guest", "guest@capos> ")
        return self

    def __exit__(self, *exc: object) -> None:
        self.host.shutdown()

    @property
    def screen(self) -> str:
        return self.host.screen.decode(errors="replace")

    def type(self, text: str) -> None:
        self.host.type(text.encode())

    def wait_for(self, text: str, *, after: int = 0, timeout: float = 30.0) -> int:
        """Wait until `text` shows at or past offset `after`; returns where it ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.screen.find(text, after)
            if found >= 0:
                return found + len(text)
            time.sleep(0.01)
        raise AssertionError(f"{text!r} never showed; the screen:\n{self.screen[after:]}")

    def exchange(self, line: str, until: str, timeout: float = 30.0) -> str:
        """Type a line and return what the screen shows until `until` appears.

        `until` counts only after the line's echo: the editor echoes a line when it
        reads it, so a prompt still being drawn for the previous line is not taken
        for the answer to this one."""
        start = len(self.screen)
        self.type(line + "\n")
        echoed = self.wait_for(line.split("\t")[0], after=start, timeout=timeout)
        end = self.wait_for(until, after=echoed, timeout=timeout)
        return self.screen[start:end]

    def finish(self) -> str:
        """Leave agent mode and the shell; check nothing crashed; return the screen."""
        self.type("exit\nexit\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            shells = [p for p in self.host.started if p.binary == "shell"]
            if shells and not shells[0].alive:
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"the shell did not exit:\n{self.screen}")
        assert self.host.crashes == {}, self.host.crashes
        assert self.host.kernel.faults == []
        return self.screen
