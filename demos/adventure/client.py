"""adventure-client: the terminal client of the Aurelian Frontier.

Caps: `stdio` (StdIO), `adventure` (Adventure), optionally `chat` (Chat).
Starting shows the intro: a fresh expedition view. The server keeps the
session's expedition, so `resume` shows where it was left. With `chat`,
the client sits in the current room's channel ("#r.<room>"): `say <text>`
talks there, and what others say arrives while the prompt waits.
"""

from __future__ import annotations

import contextlib

from demos.terminal_client import ServerGone, Terminal, printable
from kernel.runtime import Cap, Pending, RemoteError, Runtime, TransportFailure

TAG = "[adventure]"
PROMPT = "[adventure]> "
SHORT = {"n": "north", "s": "south", "e": "east", "w": "west"}
SHORT.update({d: d for d in SHORT.values()})
SECTIONS = (
    ("items", "Items"),
    ("writs", "Writs"),
    ("relics", "Relics"),
    ("marks", "Marks"),
    ("evidence", "Evidence"),
)
HELP = (
    f"{TAG} look; go <north|south|east|west> (or n, s, e, w); take <thing>; inspect <thing>;",
    f"{TAG} use <thing> [on <thing>]; inventory; status; resume; restart; exit.",
)


def render_room(room: dict) -> list[str]:
    lines = [f"{TAG} {room['name']}", f"  {room['description']}"]
    lines.append("  Exits: " + (", ".join(room["exits"]) or "none"))
    if room["items"]:
        lines.append("  You see: " + ", ".join(room["items"]))
    if room["features"]:
        lines.append("  Here: " + ", ".join(room["features"]))
    return lines


def render_inventory(inventory: dict) -> list[str]:
    lines = [
        f"{TAG} {title}: " + ", ".join(inventory[key]) for key, title in SECTIONS if inventory[key]
    ]
    return lines or [f"{TAG} You carry nothing."]


def render_status(status: dict) -> list[str]:
    state = "won" if status["won"] else f"{status['moves']} moves"
    return [
        f"{TAG} Expedition {status['epoch']}, {state}, at {status['room']['name']}.",
        f"{TAG} Objective: {status['objective']}",
    ]


class RoomChat:
    """The room's chat channel, when the client holds a `chat` cap."""

    def __init__(self, rt: Runtime, chat: Cap | None) -> None:
        self.rt = rt
        self.chat = chat
        self.channel: str | None = None

    def enter(self, room_id: str) -> list[str]:
        if self.chat is None or self.channel == f"#r.{room_id}":
            return []
        if self.channel is not None:
            self.chat.leave(channel=self.channel)
        self.channel = f"#r.{room_id}"
        history = self.chat.join(channel=self.channel)["history"]
        return [self.render(m) for m in history]

    def say(self, text: str) -> list[str]:
        if self.chat is None or self.channel is None:
            return [f"{TAG} No one can hear you: this client has no chat."]
        self.chat.send(channel=self.channel, text=text)
        return []

    def poll(self) -> Pending | None:
        return self.rt.begin(self.chat, "next") if self.chat is not None and self.channel else None

    def render(self, message: dict) -> str:
        line = f"[room] <{message['sender']}> {printable(message['text'])}"
        return line + " (replayed)" if message["replayed"] else line

    def show(self, results: dict) -> list[str]:
        return [self.render(m) for m in results["messages"] if m["channel"] == self.channel]

    def close(self) -> None:
        if self.chat is not None and self.channel is not None:
            with contextlib.suppress(RemoteError, TransportFailure):
                self.chat.leave(channel=self.channel)


class AdventureClient:
    def __init__(self, term: Terminal, game: Cap, room_chat: RoomChat) -> None:
        self.term = term
        self.game = game
        self.room_chat = room_chat

    def start(self) -> None:
        intro = self.game.intro()
        self.term.say(*(f"{TAG} {line}" for line in intro["text"].splitlines()))
        if intro["underWay"]:
            status = self.game.status()["status"]
            self.term.say(
                f"{TAG} Your expedition is under way ({status['moves']} moves, at "
                f"{status['room']['name']}): resume returns to it."
            )
            room = status["room"]
        else:
            room = self.game.look()["room"]
            self.term.say(*render_room(room))
        self.term.say(*self.room_chat.enter(room["id"]))

    def on_line(self, line: str) -> None:
        if not line:
            return
        verb, _, rest = line.partition(" ")
        verb, rest = verb.lower(), rest.strip()
        try:
            self.term.say(*self.execute(verb, rest))
        except RemoteError as exc:
            if exc.type == "disconnected":
                raise
            self.term.say(f"{TAG} {printable(exc.message)}")

    def execute(self, verb: str, rest: str) -> list[str]:
        game = self.game
        if verb in ("look", "l") and not rest:
            return render_room(game.look()["room"])
        if verb in SHORT and not rest:
            return self.outcome(game.go(direction=SHORT[verb])["outcome"])
        if verb == "go":
            return self.outcome(game.go(direction=rest)["outcome"])
        if verb in ("take", "get"):
            return self.outcome(game.take(thing=rest)["outcome"])
        if verb in ("inspect", "examine", "x"):
            return self.outcome(game.inspect(thing=rest)["outcome"])
        if verb == "use":
            thing, _, target = rest.partition(" on ")
            return self.outcome(game.use(thing=thing, target=target)["outcome"])
        if verb in ("inventory", "inv", "i") and not rest:
            return render_inventory(game.inventory()["inventory"])
        if verb == "status" and not rest:
            return render_status(game.status()["status"])
        if verb == "resume" and not rest:
            status = game.resume()["status"]
            head = f"{TAG} Resuming expedition {status['epoch']} ({status['moves']} moves)."
            return [head, *render_room(status["room"]), *self.enter(status["room"])]
        if verb == "restart" and not rest:
            status = game.restart()["status"]
            head = f"{TAG} Expedition {status['epoch']} sets out."
            return [head, *render_room(status["room"]), *self.enter(status["room"])]
        if verb == "say" and rest:
            return self.room_chat.say(rest)
        if verb == "help":
            return list(HELP) + ([f"{TAG} say <text>: talk in this room."] if self.chat else [])
        return [f"{TAG} Unknown command {printable(verb)[:30]!r}: try help."]

    @property
    def chat(self) -> bool:
        return self.room_chat.chat is not None

    def enter(self, room: dict) -> list[str]:
        return self.room_chat.enter(room["id"])

    def outcome(self, outcome: dict) -> list[str]:
        lines = [f"{TAG} {printable(outcome['message'])}"]
        if outcome["moved"]:
            lines += render_room(outcome["room"]) + self.enter(outcome["room"])
        return lines

    def show_chat(self, results: dict) -> None:
        lines = self.room_chat.show(results)
        if lines:
            self.term.say(*lines)


def main(rt: Runtime) -> int:
    term = Terminal(rt, rt.cap("stdio", "StdIO"))
    chat = rt.cap("chat", "Chat") if "chat" in rt.caps else None
    room_chat = RoomChat(rt, chat)
    client = AdventureClient(term, rt.cap("adventure", "Adventure"), room_chat)
    try:
        client.start()
        poll = room_chat.poll if chat is not None else None
        term.loop(lambda: PROMPT, client.on_line, poll=poll, on_event=client.show_chat)
    except (ServerGone, RemoteError, TransportFailure) as exc:
        with contextlib.suppress(RemoteError, TransportFailure):
            term.say(f"{TAG} the expedition service is gone: {printable(str(exc))}")
        return 1
    finally:
        term.close()
        room_chat.close()
    return 0
