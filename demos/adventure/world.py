"""The Aurelian Frontier without processes: the map, the things, one expedition's state.

Seven rooms. The way to the win: take the lantern at the landing, the
flint at the market, `inspect stall` there for the smuggler's tally, `use
flint on lantern`; in the archive take the blank writ and the wax seal and
`use seal on writ` for a writ of passage; `use writ on gate` at the
gatehouse; cross the causeway into the (dark: the lit lantern is needed)
vault and `use dial` (the tally knows the combination) for the Aurelian
Compass; at the beacon tower, `use compass on beacon`.

Things are named by their full name or an alias ("seal", "writ"); names
over MAX_NAME bytes raise WorldError, unknown ones get a plain answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

MAX_NAME = 64

DIRECTIONS = {"n": "north", "s": "south", "e": "east", "w": "west"}
DIRECTIONS.update({d: d for d in DIRECTIONS.values()})


class WorldError(ValueError):
    """A request outside the contract (a server answers invalidArgument)."""


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    name: str
    description: str
    exits: dict[str, str]
    items: tuple[str, ...] = ()
    features: tuple[str, ...] = ()


ROOMS = {
    room.id: room
    for room in (
        Room(
            "landing",
            "Frontier Landing",
            "A dusty landing field at the edge of the Aurelian Frontier. A signpost leans "
            "in the wind.",
            {"north": "gate", "east": "market", "west": "archive"},
            items=("lantern",),
            features=("signpost",),
        ),
        Room(
            "market",
            "Tin Market",
            "Shuttered stalls of beaten tin. One stall still smells of lamp oil.",
            {"west": "landing"},
            items=("flint",),
            features=("stall",),
        ),
        Room(
            "archive",
            "Dust Archive",
            "Shelves of crumbling ledgers under a faded mural of three moons.",
            {"east": "landing"},
            items=("blank writ", "wax seal"),
            features=("mural",),
        ),
        Room(
            "gate",
            "Gatehouse",
            "An iron gate bars the road north. A warden's slot is cut into it.",
            {"south": "landing", "north": "causeway"},
            features=("gate",),
        ),
        Room(
            "causeway",
            "Broken Causeway",
            "A causeway of cracked stone. East, stairs sink into a black vault; north, a "
            "tower stands against the sky.",
            {"south": "gate", "east": "vault", "north": "beacon"},
        ),
        Room(
            "vault",
            "Sunken Vault",
            "A cold vault. A reliquary sits behind a dial of three brass rings.",
            {"west": "causeway"},
            features=("dial", "reliquary"),
        ),
        Room(
            "beacon",
            "Beacon Tower",
            "The top of the tower: a cold beacon with an empty cradle.",
            {"south": "causeway"},
            features=("beacon",),
        ),
    )
}
START = "landing"

KIND = {  # what each thing you can carry is filed under
    "lantern": "items",
    "flint": "items",
    "blank writ": "items",
    "wax seal": "items",
    "writ of passage": "writs",
    "aurelian compass": "relics",
    "smuggler's tally": "evidence",
    "moon mural sketch": "evidence",
}
ALIASES = {
    "seal": "wax seal",
    "writ": ("writ of passage", "blank writ"),  # whichever is in reach, in this order
    "passage": "writ of passage",
    "compass": "aurelian compass",
    "tally": "smuggler's tally",
    "sketch": "moon mural sketch",
    "lamp": "lantern",
    "door": "gate",
    "rings": "dial",
    "cradle": "beacon",
    "sign": "signpost",
}
INTRO = (
    "Aurelian Frontier: a capOS expedition.\n"
    "The old beacon on the frontier has been dark for a generation. Light it again.\n"
    "Commands: look, go <dir>, take <thing>, inspect <thing>, use <thing> [on <thing>], "
    "inventory, status, resume, restart, help, exit."
)


@dataclass(frozen=True, slots=True)
class Result:
    message: str
    moved: bool = False
    won: bool = False
    changed: bool = False  # the expedition moved on (counts as a move)


def normalize(name: str) -> str:
    if len(name.encode()) > MAX_NAME:
        raise WorldError(f"a name is at most {MAX_NAME} bytes")
    words = name.lower().split()
    if words and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words)


@dataclass
class Expedition:
    epoch: int = 1
    room: str = START
    moves: int = 0
    won: bool = False
    carried: list[str] = field(default_factory=list)  # in the order found
    marks: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    floor: dict[str, list[str]] = field(
        default_factory=lambda: {r.id: list(r.items) for r in ROOMS.values()}
    )

    # --- views ---------------------------------------------------------------------

    def view(self) -> dict:
        room = ROOMS[self.room]
        return {
            "id": room.id,
            "name": room.name,
            "description": room.description,
            "exits": list(room.exits),
            "items": list(self.floor[room.id]),
            "features": list(room.features),
        }

    def inventory(self) -> dict:
        out: dict[str, list[str]] = {k: [] for k in ("items", "writs", "relics", "evidence")}
        for thing in self.carried:
            lit = thing == "lantern" and "lantern lit" in self.flags
            out[KIND[thing]].append(thing + (" (lit)" if lit else ""))
        return {**out, "marks": list(self.marks)}

    def objective(self) -> str:
        if self.won:
            return "The beacon burns again. The expedition is complete."
        if "gate open" not in self.flags:
            if "writ of passage" in self.carried:
                return "Show your writ at the Gatehouse."
            return "The Gatehouse wants a writ of passage: the Dust Archive keeps paper."
        if "aurelian compass" not in self.carried:
            if "lantern lit" not in self.flags:
                return "The vault beyond the causeway is dark: bring a light."
            if "smuggler's tally" not in self.carried:
                return "The vault's dial wants a combination: the Tin Market hides a record."
            return "Open the reliquary in the Sunken Vault."
        return "Carry the compass to the Beacon Tower."

    def status(self) -> dict:
        return {
            "room": self.view(),
            "moves": self.moves,
            "epoch": self.epoch,
            "won": self.won,
            "objective": self.objective(),
        }

    # --- finding things ------------------------------------------------------------------

    def _resolve(self, name: str, *, carried: bool = True, here: bool = True) -> str | None:
        """The thing `name` means among what is in reach, or None."""
        wanted = normalize(name)
        candidates = ALIASES.get(wanted, wanted)
        reach = []
        if carried:
            reach += self.carried
        if here:
            reach += self.floor[self.room] + list(ROOMS[self.room].features)
        for candidate in (candidates,) if isinstance(candidates, str) else candidates:
            if candidate in reach:
                return candidate
        return None

    def gain(self, thing: str) -> None:
        if thing not in self.carried:
            self.carried.append(thing)

    def mark(self, mark: str) -> None:
        if mark not in self.marks:
            self.marks.append(mark)

    # --- verbs ---------------------------------------------------------------------------------

    def go(self, direction: str) -> Result:
        where = DIRECTIONS.get(normalize(direction))
        if where is None:
            return Result("Go north, south, east or west.")
        target = ROOMS[self.room].exits.get(where)
        if target is None:
            return Result(f"There is no way {where} from here.")
        if self.room == "gate" and target == "causeway" and "gate open" not in self.flags:
            return Result("The gate is shut. The warden's slot waits for a writ.")
        if target == "vault" and "lantern lit" not in self.flags:
            return Result("The stairs sink into pitch dark. You need a light.")
        self.room = target
        self.moves += 1
        return Result(f"You go {where}.", moved=True, changed=True)

    def take(self, name: str) -> Result:
        thing = self._resolve(name, carried=False)
        if thing is None:
            if self._resolve(name, here=False):
                return Result("You have it already.")
            return Result(f"There is no {normalize(name) or 'thing'} here to take.")
        if thing in ROOMS[self.room].features:
            return Result(f"The {thing} will not come with you.")
        self.floor[self.room].remove(thing)
        self.gain(thing)
        self.moves += 1
        return Result(f"Taken: {thing}.", changed=True)

    def inspect(self, name: str) -> Result:
        thing = self._resolve(name)
        if thing is None:
            return Result(f"You see no {normalize(name) or 'thing'} here.")
        if thing == "stall" and "smuggler's tally" not in self.carried:
            self.gain("smuggler's tally")
            return Result(
                "Under a loose board: a smuggler's tally. Three notches are cut deep: 7, 3, 1. "
                "(Evidence.)"
            )
        if thing == "mural" and "moon mural sketch" not in self.carried:
            self.gain("moon mural sketch")
            return Result(
                "Three moons over a sealed door, and a clerk pressing wax to paper. You sketch "
                "it. (Evidence.)"
            )
        text = DESCRIPTIONS[thing]
        return Result(text(self) if callable(text) else text)

    def use(self, name: str, target: str = "") -> Result:
        thing = self._resolve(name)
        if thing is None:
            return Result(f"You have no {normalize(name) or 'thing'} to use.")
        other = None
        if normalize(target):
            other = self._resolve(target)
            if other is None:
                return Result(f"You see no {normalize(target)} here.")
        pair = frozenset((thing, other)) if other else frozenset((thing,))
        action = ACTIONS.get(pair)
        if action is None:
            return Result("Nothing happens.")
        result = action(self)
        if result.changed:
            self.moves += 1
        return result


def _light_lantern(e: Expedition) -> Result:
    if "lantern" not in e.carried or "flint" not in e.carried:
        return Result("Carry both the lantern and the flint.")
    if "lantern lit" in e.flags:
        return Result("The lantern is already lit.")
    e.flags.add("lantern lit")
    e.mark("Mark of the Lamplighter")
    return Result("You strike the flint. The lantern catches and burns steady.", changed=True)


def _seal_writ(e: Expedition) -> Result:
    if "blank writ" not in e.carried or "wax seal" not in e.carried:
        return Result("Carry both the blank writ and the wax seal.")
    e.carried.remove("blank writ")
    e.carried.remove("wax seal")
    e.gain("writ of passage")
    return Result(
        "You press the seal into warm wax. The blank writ is now a writ of passage. (Writ.)",
        changed=True,
    )


def _open_gate(e: Expedition) -> Result:
    if "gate open" in e.flags:
        return Result("The gate stands open already.")
    if "writ of passage" not in e.carried:
        return Result("The slot wants a sealed writ.")
    e.flags.add("gate open")
    e.mark("Mark of Passage")
    return Result(
        "The warden reads your writ and hands it back. The gate grinds open. (Mark of Passage.)",
        changed=True,
    )


def _turn_dial(e: Expedition) -> Result:
    if "aurelian compass" in e.carried:
        return Result("The reliquary is empty now.")
    if "smuggler's tally" not in e.carried:
        return Result("Three rings, a thousand combinations. You would need to know the numbers.")
    e.gain("aurelian compass")
    return Result(
        "You turn the rings to 7, 3, 1. The reliquary opens: the Aurelian Compass. (Relic.)",
        changed=True,
    )


def _light_beacon(e: Expedition) -> Result:
    if e.won:
        return Result("The beacon burns already.")
    if "aurelian compass" not in e.carried:
        return Result("The cradle is shaped for a compass you do not have.")
    e.won = True
    e.mark("Mark of the Beacon")
    return Result(
        "You set the compass in the cradle. Its needle spins, the beacon roars alight, and "
        "the whole frontier sees it. You have won the expedition!",
        won=True,
        changed=True,
    )


ACTIONS = {
    frozenset(("flint", "lantern")): _light_lantern,
    frozenset(("lantern",)): lambda e: (
        Result("It needs a flame: use flint on lantern.")
        if "lantern lit" not in e.flags
        else Result("The lantern is lit.")
    ),
    frozenset(("wax seal", "blank writ")): _seal_writ,
    frozenset(("writ of passage", "gate")): _open_gate,
    frozenset(("gate",)): _open_gate,
    frozenset(("dial",)): _turn_dial,
    frozenset(("smuggler's tally", "dial")): _turn_dial,
    frozenset(("reliquary",)): _turn_dial,
    frozenset(("aurelian compass", "beacon")): _light_beacon,
    frozenset(("beacon",)): _light_beacon,
}

DESCRIPTIONS: dict[str, str | Callable[[Expedition], str]] = {
    "signpost": "North: the Gatehouse. East: the Tin Market. West: the Dust Archive. Scratched "
    "beneath: 'the beacon waits for the compass'.",
    "stall": "An empty stall. You found its secret already.",
    "mural": "Three moons over a sealed door.",
    "gate": lambda e: (
        "The gate stands open."
        if "gate open" in e.flags
        else "Iron bars, and a warden's slot the size of a folded writ."
    ),
    "dial": "Three brass rings, numbered 0 to 9.",
    "reliquary": lambda e: (
        "Empty." if "aurelian compass" in e.carried else "Shut fast, behind the dial."
    ),
    "beacon": lambda e: "It burns." if e.won else "A cold beacon; its cradle is empty.",
    "lantern": lambda e: (
        "A brass lantern, lit." if "lantern lit" in e.flags else "A brass lantern with no flame."
    ),
    "flint": "A flint and steel.",
    "blank writ": "A writ of passage, unsealed and so worthless.",
    "wax seal": "The Frontier's seal, with a stick of wax.",
    "writ of passage": "Sealed: it grants passage through the Gatehouse.",
    "aurelian compass": "Its needle points at the beacon, wherever you stand.",
    "smuggler's tally": "Three notches: 7, 3, 1.",
    "moon mural sketch": "A clerk pressing a seal to a writ, under three moons.",
}
