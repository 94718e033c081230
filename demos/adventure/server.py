"""adventure-server: serves Adventure on its exported endpoint `adventure`.

One expedition per caller session, keyed as capOS keys it: the endpoint's
scoped reference plus the session epoch (a re-minted session starts
afresh). It is kept across client runs: a new client shows the intro and `resume` returns to
where the session left off. `restart` starts the next epoch. At most
MAX_EXPEDITIONS are kept; the least recently played goes first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from demos.adventure.world import INTRO, Expedition, Result, WorldError
from kernel.runtime import RemoteError, Runtime
from kernel.runtime.service import Call, ServiceLoop

MAX_EXPEDITIONS = 512


class AdventureService:
    def __init__(self) -> None:
        self.expeditions: OrderedDict[tuple[int, int], Expedition] = OrderedDict()

    def expedition(self, call: Call) -> Expedition:
        key = (call.scoped_ref, call.session_epoch)
        expedition = self.expeditions.get(key)
        if expedition is None:
            if len(self.expeditions) >= MAX_EXPEDITIONS:
                self.expeditions.popitem(last=False)
            expedition = self.expeditions[key] = Expedition()
        self.expeditions.move_to_end(key)
        return expedition

    def _act(self, call: Call, action: Callable[[Expedition], Result]) -> dict:
        expedition = self.expedition(call)
        try:
            result = action(expedition)
        except WorldError as exc:
            raise RemoteError("invalidArgument", str(exc)) from None
        return {
            "outcome": {
                "message": result.message,
                "moved": result.moved,
                "room": expedition.view(),
                "won": result.won,
            }
        }

    def intro(self, call: Call) -> dict:
        expedition = self.expedition(call)
        under_way = expedition.moves > 0 and not expedition.won
        return {"text": INTRO, "underWay": under_way}

    def look(self, call: Call) -> dict:
        return {"room": self.expedition(call).view()}

    def go(self, call: Call, direction: str) -> dict:
        return self._act(call, lambda e: e.go(direction))

    def take(self, call: Call, thing: str) -> dict:
        return self._act(call, lambda e: e.take(thing))

    def inventory(self, call: Call) -> dict:
        return {"inventory": self.expedition(call).inventory()}

    def inspect(self, call: Call, thing: str) -> dict:
        return self._act(call, lambda e: e.inspect(thing))

    def use(self, call: Call, thing: str, target: str) -> dict:
        return self._act(call, lambda e: e.use(thing, target))

    def status(self, call: Call) -> dict:
        return {"status": self.expedition(call).status()}

    def resume(self, call: Call) -> dict:
        return {"status": self.expedition(call).status()}

    def restart(self, call: Call) -> dict:
        old = self.expedition(call)
        key = (call.scoped_ref, call.session_epoch)
        new = self.expeditions[key] = Expedition(epoch=old.epoch + 1)
        return {"status": new.status()}


def main(rt: Runtime) -> int:
    service = AdventureService()
    ServiceLoop(rt, rt.cap("adventure", "Endpoint"), "Adventure", service).run()
    return 0
