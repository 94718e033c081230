"""stdio_script (test only): plays the user at a terminal for one client, over StdIO.

It serves StdIO on the one Endpoint in its CapSet and plays the script
that the SystemInfo MOTD (JSON) gives for that endpoint's name:
`{"stdio": [item, ...], "stdio-b": [...]}` (a bare list serves any name).
Items:

- `"text"`: the next line a `readLine` (or `read`) returns;
- `{"await": "text"}`: hold the next line until `text` has been written;
- `{"members": ["#lobby", N]}`: answer nothing at all until `chat.who`
  lists at least N members (needs a `chat` cap): it orders clients that
  start at the same time, so member numbers are deterministic.

Once the script is spent, a further read gets end of input. The transcript
is every write, and every prompt with the line typed at it, as a terminal
would show them. It goes to the Console between `--- transcript NAME ---`
and `--- end NAME ---`, at end of input or after QUIET_NS without a call
once the last line has been typed.
"""

from __future__ import annotations

import json
from collections import deque

from kernel.runtime import Runtime
from kernel.runtime.service import LATER, Call, ServiceLoop

QUIET_NS = 300_000_000
GATE_POLL_NS = 5_000_000
CONSOLE_CHUNK = 16 * 1024


class ScriptedTerminal:
    def __init__(self, rt: Runtime, name: str, script: list) -> None:
        self.rt = rt
        self.name = name
        self.items = deque(script)
        self.console = rt.cap("console", "Console")
        self.chat = rt.cap("chat", "Chat") if "chat" in rt.caps else None
        self.transcript: list[str] = []
        self.writes: deque[tuple[Call, bytes]] = deque()  # held by a members gate
        self.readers: deque[tuple[Call, str | None]] = deque()  # (call, prompt or None for read)
        self.loop: ServiceLoop | None = None
        self.typed_last = False
        self.printed = False

    # --- StdIO ---------------------------------------------------------------------

    def write(self, call: Call, data: bytes) -> object:
        self.writes.append((call, data))
        self.pump()
        return LATER

    def readLine(self, call: Call, prompt: str, hidden: bool) -> object:  # a script never echoes
        self.readers.append((call, prompt))
        self.pump()
        return LATER

    def read(self, call: Call, maxBytes: int) -> object:
        self.readers.append((call, None))
        self.pump()
        return LATER

    # --- playing the script ------------------------------------------------------------

    def gated(self) -> bool:
        while self.items and isinstance(self.items[0], dict) and "members" in self.items[0]:
            channel, count = self.items[0]["members"]
            if self.chat is None or len(self.chat.who(channel=channel)["members"]) < count:
                return True
            self.items.popleft()
        return False

    def pump(self) -> None:
        assert self.loop is not None
        if self.gated():
            self.loop.idle_ns = GATE_POLL_NS
            return
        while self.writes:
            call, data = self.writes.popleft()
            self.transcript.append(data.decode(errors="replace"))
            self.loop.answer(call, {})
        while self.readers:
            item = self.items[0] if self.items else None
            if isinstance(item, dict):
                if "await" in item and item["await"] in "".join(self.transcript):
                    self.items.popleft()
                    continue
                if self.gated():
                    self.loop.idle_ns = GATE_POLL_NS
                    return
                if "await" in item:
                    self.loop.idle_ns = None  # a write will come and pump again
                    return
                raise ValueError(f"unknown script item {item!r}")
            call, prompt = self.readers.popleft()
            eof = item is None
            line = "" if eof else self.items.popleft()
            if prompt is None:
                self.transcript.append(line + "\n")
                self.loop.answer(call, {"data": b"" if eof else (line + "\n").encode(), "eof": eof})
            else:
                self.transcript.append(prompt + line + "\n")
                self.loop.answer(call, {"line": line, "eof": eof})
            if eof:
                self.print_transcript()
            elif not self.items:
                self.typed_last = True
        self.loop.idle_ns = QUIET_NS if self.typed_last and not self.printed else None

    def on_idle(self) -> None:
        if self.typed_last and not self.printed and not self.readers:
            self.print_transcript()
        self.pump()

    def print_transcript(self) -> None:
        if self.printed:
            return
        self.printed = True
        text = (
            f"--- transcript {self.name} ---\n{''.join(self.transcript)}--- end {self.name} ---\n"
        )
        data = text.encode()
        for start in range(0, len(data), CONSOLE_CHUNK):
            self.console.write(data=data[start : start + CONSOLE_CHUNK])


def main(rt: Runtime) -> int:
    endpoint_id = rt.bundle.interface("Endpoint").id
    name = next(n for n, cap in rt.caps.items() if cap.interface_id == endpoint_id)
    plan = json.loads(rt.cap("info", "SystemInfo").motd()["text"])
    script = plan if isinstance(plan, list) else plan[name]
    terminal = ScriptedTerminal(rt, name, script)
    terminal.loop = ServiceLoop(rt, rt.cap(name), "StdIO", terminal, on_idle=terminal.on_idle)
    terminal.loop.run()
    return 0
