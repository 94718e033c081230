"""paperclips-server: serves PaperclipsGame on its exported endpoint `paperclips`.

Caps: `paperclips` (its Endpoint); optionally `timer` (Timer). It keeps
one game per caller session (at most MAX_GAMES; the least recently played
goes first). With a timer, each game ticks once per second of Timer time,
caught up whenever a call for it arrives; without one the clock stands
still and only `run` moves the game (deterministic, for tests).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from demos.paperclips.game import Game, GameError, Outcome
from kernel.runtime import RemoteError, Runtime
from kernel.runtime.service import Call, ServiceLoop

MAX_GAMES = 256


class PaperclipsService:
    """The PaperclipsGame methods. `call` None means the one local game (a client's own)."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self.clock = clock
        self.games: OrderedDict[int, Game] = OrderedDict()

    def game(self, call: Call | None) -> Game:
        key = call.scoped_ref if call is not None else 0
        game = self.games.get(key)
        if game is None:
            if len(self.games) >= MAX_GAMES:
                self.games.popitem(last=False)
            game = self.games[key] = Game()
        else:
            self.games.move_to_end(key)
        if self.clock is not None:
            game.sync(self.clock())
        return game

    def _play(self, call: Call | None, action: Callable[[Game], Outcome]) -> dict:
        game = self.game(call)
        try:
            outcome = action(game)
        except GameError as exc:
            raise RemoteError("invalidArgument", str(exc)) from None
        return {
            "outcome": {"ok": outcome.ok, "message": outcome.message, "status": game.snapshot()}
        }

    def commands(self, call: Call | None) -> dict:
        return {"list": {"commands": self.game(call).commands()}}

    def status(self, call: Call | None) -> dict:
        return {"status": self.game(call).snapshot()}

    def projects(self, call: Call | None) -> dict:
        return {"projects": self.game(call).projects()}

    def make(self, call: Call | None, count: int) -> dict:
        return self._play(call, lambda g: g.make(count))

    def sell(self, call: Call | None, count: int) -> dict:
        return self._play(call, lambda g: g.sell(count))

    def setPrice(self, call: Call | None, cents: int) -> dict:
        return self._play(call, lambda g: g.set_price(cents))

    def buyWire(self, call: Call | None, spools: int) -> dict:
        return self._play(call, lambda g: g.buy_wire(spools))

    def buy(self, call: Call | None, item: str) -> dict:
        return self._play(call, lambda g: g.buy(str(item)))

    def run(self, call: Call | None, ticks: int) -> dict:
        return self._play(call, lambda g: g.run(ticks))

    def command(self, call: Call | None, line: str) -> dict:
        return self._play(call, lambda g: g.command(line))


def timer_clock(rt: Runtime) -> Callable[[], int] | None:
    if "timer" not in rt.caps:
        return None
    timer = rt.cap("timer", "Timer")
    return lambda: timer.now()["ns"]


def main(rt: Runtime) -> int:
    service = PaperclipsService(timer_clock(rt))
    ServiceLoop(rt, rt.cap("paperclips", "Endpoint"), "PaperclipsGame", service).run()
    return 0
