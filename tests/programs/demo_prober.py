"""demo_prober (test only): sends every demo server hostile calls, then checks they still
answer. Caps: console, chat, game (PaperclipsGame), adventure, counter. Prints one
`name: outcome` line a probe, then `prober: done`."""

from __future__ import annotations

from collections.abc import Callable

from kernel.codec import encode
from kernel.runtime import RemoteError, Runtime, TransportFailure


def main(rt: Runtime) -> int:
    console = rt.cap("console", "Console")
    chat = rt.cap("chat", "Chat")
    game = rt.cap("game", "PaperclipsGame")
    adventure = rt.cap("adventure", "Adventure")
    counter = rt.cap("counter", "Counter")
    by_params = rt.bundle.interface("Counter").method("increment").params

    def probe(name: str, action: Callable[[], object]) -> None:
        try:
            outcome = f"ok {action()!r:.60}"
        except RemoteError as exc:
            outcome = f"{exc.type}: {exc.message[:80]}"
        except TransportFailure as exc:
            outcome = f"transport {exc}"
        console.writeLine(text=f"{name}: {outcome}")

    probe("chat oversized", lambda: chat.send(channel="#lobby", text="x" * 20_000))
    probe("chat bad channel", lambda: chat.join(channel="#no such\x1b"))
    probe("chat unknown method", lambda: rt.call_raw(chat, 42, b""))
    probe("counter garbage params", lambda: rt.call_raw(counter, 0, b"\xff" * 24))
    probe("counter zero", lambda: counter.increment(by=0))
    probe("game huge make", lambda: game.make(count=2**32 - 1))
    probe("game bad enum", lambda: rt.call_raw(game, 7, encode(by_params, {"by": 99})))
    probe("game long command", lambda: game.command(line="project " + "1" * 400))
    probe("adventure long name", lambda: adventure.inspect(thing="x" * 100))
    probe("counter after", lambda: counter.increment(by=2)["value"])
    probe("chat after", lambda: chat.who(channel="#lobby")["members"])
    probe("game after", lambda: game.status()["status"]["tick"])
    probe("adventure after", lambda: adventure.look()["room"]["id"])
    console.writeLine(text="prober: done")
    return 0
