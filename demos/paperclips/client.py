"""paperclips: the terminal client of the paperclips game.

Caps: `stdio` (StdIO) and `game` (PaperclipsGame). The server owns the
game; this client parses commands into typed calls and renders `help`
(from the server's command list), `status` and `projects` itself.
`project <id>` goes as raw text. A blank line repeats the last command.

Without a `game` cap it plays a game of its own in this process, with the
same rules, ticking by its `timer` if it has one: that is what
`run "paperclips" with { stdio: client @stdio, timer: @timer }` starts.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

from demos.paperclips.game import dollars, plural
from demos.paperclips.server import PaperclipsService, timer_clock
from demos.terminal_client import Terminal, printable
from kernel.runtime import RemoteError, Runtime, TransportFailure

PROMPT = "[paperclips]> "
TAG = "[paperclips]"
ITEMS = ("autoclipper", "marketing", "processor", "memory", "drone", "factory", "probe")
NUMBER = re.compile(r"^[0-9]{1,10}$")
UINT32_MAX = 2**32 - 1

Caller = Callable[..., dict[str, Any]]  # caller(method, **params) -> results


class Usage(Exception):
    """A line this client cannot turn into a call; the message says why."""


def number(word: str, what: str) -> int:
    if not NUMBER.match(word) or int(word) > UINT32_MAX:
        raise Usage(f"{what} must be a whole number, not {printable(word)[:20]!r}")
    return int(word)


def render_status(s: dict) -> list[str]:
    offers = {o["item"]: o for o in s["offers"]}
    lines = [
        f"{TAG} tick {s['tick']:,}",
        f"  clips     {s['clips']:,} made, {s['unsold']:,} unsold",
        f"  funds     {dollars(s['fundsCents'])}   price {dollars(s['priceCents'])}"
        f"   demand {s['demandPerTick']:,} a tick",
        f"  wire      {s['wireInches']:,} inches (1000 for {dollars(s['wireSpoolCents'])})",
        f"  machines  {plural(s['autoclippers'], 'autoclipper')}, "
        f"{s['clipsPerTick']:,} clips a tick; marketing level {s['marketingLevel']}",
        f"  compute   {plural(s['processors'], 'processor')}, {s['memory']:,} memory: "
        f"{s['operations']:,} / {s['maxOperations']:,} operations",
    ]
    extra = [
        plural(s[key], name)
        for key, name in (("drones", "drone"), ("factories", "factory"), ("probes", "probe"))
        if offers[name]["available"]
    ]
    if extra:
        lines.append("  fleet     " + ", ".join(extra))
    prices = [f"{o['item']} {dollars(o['costCents'])}" for o in s["offers"] if o["available"]]
    lines.append("  prices    " + ", ".join(prices))
    return lines


def render_projects(projects: list[dict]) -> list[str]:
    lines = [f"{TAG} projects:"]
    for p in projects:
        cost = f"{p['costOperations']:,} ops"
        if p["costCents"]:
            cost += f" + {dollars(p['costCents'])}"
        lines.append(f"  {p['id']}  {p['title']:<22} {cost:<22} {p['state']:<9} {p['effect']}")
    return lines


def render_help(commands: list[dict]) -> list[str]:
    lines = [f"{TAG} commands:"]
    for c in commands:
        locked = "" if c["available"] else " (locked)"
        lines.append(f"  {c['usage']:<16} {c['summary']}{locked}")
    return lines


class PaperclipsClient:
    def __init__(self, term: Terminal, call: Caller) -> None:
        self.term = term
        self.call = call
        self.last: str | None = None

    def on_line(self, line: str) -> None:
        if not line:
            if self.last is None:
                return
            line = self.last
        try:
            self.term.say(*self.execute(line.split()))
            self.last = line
        except Usage as exc:
            self.term.say(f"{TAG} {exc}")
        except RemoteError as exc:
            if exc.type == "disconnected":
                raise
            self.term.say(f"{TAG} {printable(exc.message)}")

    def execute(self, words: list[str]) -> list[str]:
        verb, args = words[0].lower(), words[1:]
        if verb == "help" and not args:
            return render_help(self.call("commands")["list"]["commands"])
        if verb == "status" and not args:
            return render_status(self.call("status")["status"])
        if verb == "projects" and not args:
            return render_projects(self.call("projects")["projects"])
        if verb == "make" and len(args) <= 1:
            return self.outcome("make", count=number(args[0], "make: n") if args else 1)
        if verb == "sell" and len(args) == 1:
            return self.outcome("sell", count=number(args[0], "sell: n"))
        if verb == "price" and len(args) == 1:
            return self.outcome("setPrice", cents=number(args[0], "price: cents"))
        if verb == "run" and len(args) == 1:
            return self.outcome("run", ticks=number(args[0], "run: ticks"))
        if verb == "project" and len(args) == 1:
            return self.outcome("command", line=f"project {number(args[0], 'project: id')}")
        if verb == "buy" and len(args) == 2 and args[0].lower() == "wire":
            return self.outcome("buyWire", spools=number(args[1], "buy wire: n"))
        if verb == "buy" and len(args) == 1 and args[0].lower() in ITEMS:
            return self.outcome("buy", item=args[0].lower())
        if verb == "buy":
            raise Usage(f"buy what? wire <n>, or one of {'|'.join(ITEMS)}")
        raise Usage(f"unknown command {printable(' '.join(words))[:40]!r}: try help")

    def outcome(self, method: str, **params: Any) -> list[str]:
        return [f"{TAG} {printable(self.call(method, **params)['outcome']['message'])}"]


def caller(rt: Runtime) -> Caller:
    """Typed calls to the `game` cap, or to a game in this process if there is none."""
    if "game" in rt.caps:
        game = rt.cap("game", "PaperclipsGame")
        return lambda method, **params: rt.call(game, method, params)
    local = PaperclipsService(timer_clock(rt))
    return lambda method, **params: getattr(local, method)(None, **params)


def main(rt: Runtime) -> int:
    term = Terminal(rt, rt.cap("stdio", "StdIO"))
    client = PaperclipsClient(term, caller(rt))
    term.say(f"{TAG} make clips, sell them, automate. help lists the commands; exit leaves.")
    try:
        term.loop(lambda: PROMPT, client.on_line)
    except (RemoteError, TransportFailure) as exc:
        with contextlib.suppress(RemoteError, TransportFailure):
            term.say(f"{TAG} the game is gone: {printable(str(exc))}")
        return 1
    finally:
        term.close()
    return 0
