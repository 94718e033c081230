"""chat-client: the terminal side of chat, launched by the shell.

Caps: `stdio` (StdIO, served by the shell) and `chat` (Chat). It starts
in #lobby; `/join #channel` joins another and makes it current, `/leave`
leaves the current one, `/who` lists its members, `/exit` (or end of
input) quits, and any other line is sent to the current channel. Messages
are printed as they arrive, while the prompt waits (see terminal_client).
"""

from __future__ import annotations

import contextlib

from demos.terminal_client import ServerGone, Terminal, printable
from kernel.runtime import Cap, Pending, RemoteError, Runtime, TransportFailure

BANNER = "[chat] /join <channel>, /leave, /who, /exit, or plain text"
LOBBY = "#lobby"


def render(message: dict) -> str:
    line = f"[chat] {message['channel']} <{message['sender']}> {printable(message['text'])}"
    return line + " (replayed)" if message["replayed"] else line


class ChatClient:
    def __init__(self, rt: Runtime, term: Terminal, chat: Cap) -> None:
        self.rt = rt
        self.term = term
        self.chat = chat
        self.joined: list[str] = []  # the last is current

    @property
    def current(self) -> str | None:
        return self.joined[-1] if self.joined else None

    def prompt(self) -> str:
        return f"[chat:{self.current}]> " if self.current else "[chat]> "

    def poll(self) -> Pending | None:
        return self.rt.begin(self.chat, "next") if self.joined else None

    def show(self, results: dict) -> None:
        lines = [render(m) for m in results["messages"]]
        if results["dropped"]:
            lines.append(f"[chat] ({results['dropped']} messages were dropped)")
        if lines:
            self.term.say(*lines)

    def join(self, channel: str) -> None:
        history = self.chat.join(channel=channel)["history"]
        if channel in self.joined:
            self.joined.remove(channel)
        self.joined.append(channel)
        if history:
            self.term.say(*(render(m) for m in history))

    def on_line(self, line: str) -> None:
        if not line:
            return
        command, _, arg = line.partition(" ")
        arg = arg.strip()
        try:
            if command == "/join":
                if not arg:
                    self.term.say("[chat] usage: /join #channel")
                    return
                self.join(arg if arg.startswith("#") else "#" + arg)
                self.term.say(f"[chat] joined {self.current}")
            elif command == "/leave":
                if self.current is None:
                    self.term.say("[chat] not in a channel")
                    return
                left = self.joined.pop()
                self.chat.leave(channel=left)
                self.term.say(f"[chat] left {left}")
            elif command == "/who":
                if self.current is None:
                    self.term.say("[chat] not in a channel: /join #lobby")
                    return
                members = self.chat.who(channel=self.current)["members"]
                self.term.say(f"[chat] {self.current}: " + " ".join(f"<{m}>" for m in members))
            elif command.startswith("/"):
                self.term.say(f"[chat] unknown command {printable(command)[:40]}", BANNER)
            elif self.current is None:
                self.term.say("[chat] not in a channel: /join #lobby")
            else:
                self.chat.send(channel=self.current, text=line)
        except RemoteError as exc:
            if exc.type == "disconnected":
                raise
            self.term.say(f"[chat] refused: {printable(exc.message)}")

    def close(self) -> None:
        self.term.close()
        if self.joined:
            with contextlib.suppress(RemoteError, TransportFailure):  # gone: nothing to leave
                self.chat.leave(channel="")


def main(rt: Runtime) -> int:
    term = Terminal(rt, rt.cap("stdio", "StdIO"))
    client = ChatClient(rt, term, rt.cap("chat", "Chat"))
    term.say(BANNER)
    try:
        client.join(LOBBY)
        term.loop(client.prompt, client.on_line, poll=client.poll, on_event=client.show)
    except (ServerGone, RemoteError, TransportFailure) as exc:
        with contextlib.suppress(RemoteError, TransportFailure):  # stdio may be gone too
            term.say(f"[chat] the chat service is gone: {printable(str(exc))}")
        return 1
    finally:
        client.close()
    return 0
