"""Paperclips rules without processes: one game's state, its ticks and its prices.

Everything is an integer (money in cents, wire in inches) and nothing is
random, so a scripted session gives the same numbers every time. A tick is
one second of game time; each tick, in this order:

1. operations grow by 10 per processor, up to 1000 per memory;
2. each drone harvests 100 inches of wire;
3. the machines make clips: autoclippers 1 each (2 after project 1) and
   factories 100 each, one inch of wire a clip as far as wire lasts, and
   probes 1000 each from space matter;
4. the market buys what this second's appetite leaves (`sell` uses it up
   early), at the price; then the appetite refills to the demand.

Demand is 250 clips a tick per marketing level at one cent, divided by
the price in cents (10 a tick at the starting $0.25), +50% after the
Catchy Jingle. Contract violations (a zero or over-limit count) raise
GameError; what the rules refuse (not enough funds) is an Outcome with
ok False.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SECOND_NS = 1_000_000_000
MAX_CATCH_UP = 3600  # ticks a game catches up on after nobody looked: an hour

START_WIRE = 1000
START_PRICE = 25
DEMAND_BASE = 250
SPOOL_INCHES = 1000
SPOOL_CENTS = 1500
OPS_PER_PROCESSOR = 10
OPS_PER_MEMORY = 1000
DRONE_WIRE = 100
FACTORY_CLIPS = 100
PROBE_CLIPS = 1000

MAX_MAKE = 1000
MAX_SELL = 1_000_000
MAX_PRICE = 10_000
MAX_SPOOLS = 1000
MAX_RUN = 10_000
MAX_LINE = 256

ITEMS = ("autoclipper", "marketing", "processor", "memory", "drone", "factory", "probe")


class GameError(ValueError):
    """A command outside the documented contract (a server answers invalidArgument)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    title: str
    effect: str
    operations: int
    cents: int
    requires: int | None = None  # a project that must be done first


PROJECTS = (
    Project(1, "Improved AutoClippers", "autoclippers make 2 clips a tick", 500, 0),
    Project(2, "Catchy Jingle", "demand +50%", 1000, 0),
    Project(3, "Wire Drones", "unlocks drones: 100 inches of wire a tick each", 1500, 10_000, 1),
    Project(4, "Clip Factories", "unlocks factories: 100 clips a tick each", 2000, 50_000, 3),
    Project(
        5, "Von Neumann Probes", "unlocks probes: 1000 clips a tick each, no wire", 5000, 500_000, 4
    ),
)
PROJECT_BY_ID = {p.id: p for p in PROJECTS}
UNLOCKED_BY = {"drone": 3, "factory": 4, "probe": 5}

# (name, usage, summary, gating item or None): what `help` lists.
COMMANDS = (
    ("status", "status", "show the factory", None),
    ("projects", "projects", "list research projects", None),
    ("make", "make [n]", "make one clip by hand (or n, up to 1000)", None),
    ("sell", "sell <n>", "sell up to n clips now, as far as this second's demand goes", None),
    ("price", "price <cents>", "set the price of a clip", None),
    ("buy wire", "buy wire <n>", "buy n spools of 1000 inches of wire", None),
    ("buy autoclipper", "buy autoclipper", "a machine that makes 1 clip a tick", None),
    ("buy marketing", "buy marketing", "a marketing level: more demand", None),
    ("buy processor", "buy processor", "+10 operations a tick", None),
    ("buy memory", "buy memory", "+1000 operations of room", None),
    ("buy drone", "buy drone", "harvests 100 inches of wire a tick", "drone"),
    ("buy factory", "buy factory", "makes 100 clips a tick", "factory"),
    ("buy probe", "buy probe", "makes 1000 clips a tick from space matter", "probe"),
    ("project", "project <id>", "start a research project", None),
    ("run", "run <ticks>", "fast-forward the automation", None),
    ("help", "help", "this list (a blank line repeats the last command)", None),
    ("exit", "exit", "leave the game (the server keeps it)", None),
)


def dollars(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count:,} {word}"
    return f"{count:,} {word[:-1]}ies" if word.endswith("y") else f"{count:,} {word}s"


def _bounded(name: str, value: int, high: int, low: int = 1) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        raise GameError(f"{name} must be a whole number from {low:,} to {high:,}, not {value!r}")
    return value


@dataclass
class Game:
    tick: int = 0
    clips: int = 0
    unsold: int = 0
    funds: int = 0
    wire: int = START_WIRE
    price: int = START_PRICE
    marketing: int = 1
    autoclippers: int = 0
    processors: int = 1
    memory: int = 1
    operations: int = 0
    drones: int = 0
    factories: int = 0
    probes: int = 0
    done: set[int] = field(default_factory=set)
    appetite: int = -1  # clips the market still takes this second (-1: not yet set)
    clock_origin: int | None = None  # Timer ns of the game's first sync
    clock_ticks: int = 0  # ticks the wall clock has driven so far

    def __post_init__(self) -> None:
        if self.appetite < 0:
            self.appetite = self.demand()

    # --- derived ---------------------------------------------------------------------

    def demand(self) -> int:
        jingle = 150 if 2 in self.done else 100
        return DEMAND_BASE * self.marketing * jingle // (100 * self.price)

    def clipper_rate(self) -> int:
        return 2 if 1 in self.done else 1

    def wired_clips_per_tick(self) -> int:
        return self.autoclippers * self.clipper_rate() + self.factories * FACTORY_CLIPS

    def clips_per_tick(self) -> int:
        return self.wired_clips_per_tick() + self.probes * PROBE_CLIPS

    def max_operations(self) -> int:
        return self.memory * OPS_PER_MEMORY

    def unlocked(self, item: str) -> bool:
        return item not in UNLOCKED_BY or UNLOCKED_BY[item] in self.done

    def cost(self, item: str) -> int:
        match item:
            case "autoclipper":
                return 500 + 100 * self.autoclippers
            case "marketing":
                return 1000 * 2 ** (self.marketing - 1)
            case "processor":
                return 1000 * self.processors
            case "memory":
                return 1000 * self.memory
            case "drone":
                return 2000 + 500 * self.drones
            case "factory":
                return 50_000 + 10_000 * self.factories
            case "probe":
                return 500_000 + 100_000 * self.probes
        raise GameError(f"nothing called {item!r} is for sale: {', '.join(ITEMS)}")

    def project_state(self, project: Project) -> str:
        if project.id in self.done:
            return "done"
        if project.requires is not None and project.requires not in self.done:
            return "locked"
        return "available"

    # --- time ----------------------------------------------------------------------------

    def sync(self, now_ns: int) -> int:
        """Catch up with the wall clock: one tick per whole second since the first sync
        (at most MAX_CATCH_UP at once). Returns the ticks run."""
        if self.clock_origin is None:
            self.clock_origin = now_ns
            return 0
        due = (now_ns - self.clock_origin) // SECOND_NS - self.clock_ticks
        if due <= 0:
            return 0
        self.clock_ticks += due
        ticks = min(due, MAX_CATCH_UP)
        self.advance(ticks)
        return ticks

    def advance(self, ticks: int) -> tuple[int, int, int]:
        """Run `ticks` ticks: (clips made, clips sold, cents earned)."""
        made = sold = earned = 0
        for _ in range(ticks):
            self.operations = min(
                self.max_operations(), self.operations + OPS_PER_PROCESSOR * self.processors
            )
            self.wire += self.drones * DRONE_WIRE
            wired = min(self.wire, self.wired_clips_per_tick())
            self.wire -= wired
            new = wired + self.probes * PROBE_CLIPS
            self.clips += new
            self.unsold += new
            market = min(self.unsold, self.appetite)
            self.unsold -= market
            self.funds += market * self.price
            self.appetite = self.demand()
            self.tick += 1
            made, sold, earned = made + new, sold + market, earned + market * self.price
        return made, sold, earned

    # --- commands --------------------------------------------------------------------------

    def make(self, count: int) -> Outcome:
        _bounded("make: the count", count, MAX_MAKE)
        if self.wire == 0:
            return Outcome(False, "No wire left: buy wire 1.")
        made = min(count, self.wire)
        self.wire -= made
        self.clips += made
        self.unsold += made
        note = "" if made == count else ": the wire ran out"
        return Outcome(True, f"Made {plural(made, 'clip')}{note}.")

    def sell(self, count: int) -> Outcome:
        _bounded("sell: the count", count, MAX_SELL)
        if self.unsold == 0:
            return Outcome(False, "Nothing to sell: make some clips.")
        if self.appetite == 0:
            return Outcome(False, "The market is full this second: wait a tick or lower the price.")
        sold = min(count, self.unsold, self.appetite)
        self.unsold -= sold
        self.appetite -= sold
        self.funds += sold * self.price
        return Outcome(True, f"Sold {plural(sold, 'clip')} for {dollars(sold * self.price)}.")

    def set_price(self, cents: int) -> Outcome:
        self.price = _bounded("price: the cents", cents, MAX_PRICE)
        self.appetite = min(self.appetite, self.demand())
        return Outcome(
            True, f"Price set to {dollars(cents)}; demand is {self.demand():,} clips a tick."
        )

    def buy_wire(self, spools: int) -> Outcome:
        _bounded("buy wire: the spools", spools, MAX_SPOOLS)
        cost = spools * SPOOL_CENTS
        if cost > self.funds:
            return Outcome(
                False,
                f"{plural(spools, 'spool')} of wire cost {dollars(cost)}; "
                f"you have {dollars(self.funds)}.",
            )
        self.funds -= cost
        self.wire += spools * SPOOL_INCHES
        return Outcome(
            True,
            f"Bought {plural(spools, 'spool')} of wire ({spools * SPOOL_INCHES:,} inches) "
            f"for {dollars(cost)}.",
        )

    def offer_name(self, item: str) -> str:
        if item == "marketing":
            return f"marketing level {self.marketing + 1}"
        return f"an {item}" if item[0] in "aeiou" else f"a {item}"

    def buy(self, item: str) -> Outcome:
        cost = self.cost(item)
        name = self.offer_name(item)
        if not self.unlocked(item):
            project = PROJECT_BY_ID[UNLOCKED_BY[item]]
            return Outcome(
                False,
                f"{plural(2, item)[2:].capitalize()} are locked: "
                f"project {project.id} ({project.title}) unlocks them.",
            )
        if cost > self.funds:
            return Outcome(
                False, f"{name.capitalize()} costs {dollars(cost)}; you have {dollars(self.funds)}."
            )
        self.funds -= cost
        counter = {
            "autoclipper": "autoclippers",
            "marketing": "marketing",
            "processor": "processors",
            "memory": "memory",
            "drone": "drones",
            "factory": "factories",
            "probe": "probes",
        }[item]
        setattr(self, counter, getattr(self, counter) + 1)
        return Outcome(
            True,
            f"Bought {name} for {dollars(cost)}; {dollars(self.funds)} left.",
        )

    def run(self, ticks: int) -> Outcome:
        _bounded("run: the ticks", ticks, MAX_RUN)
        made, sold, earned = self.advance(ticks)
        return Outcome(
            True,
            f"Ran {plural(ticks, 'tick')}: made {plural(made, 'clip')}, "
            f"sold {sold:,} for {dollars(earned)}.",
        )

    def start_project(self, project_id: int) -> Outcome:
        project = PROJECT_BY_ID.get(project_id)
        if project is None:
            return Outcome(False, f"No project {project_id}: see projects.")
        state = self.project_state(project)
        if state == "done":
            return Outcome(False, f"Project {project.id} ({project.title}) is done already.")
        if state == "locked":
            return Outcome(False, f"Project {project.id} needs project {project.requires} first.")
        if project.operations > self.operations:
            room = "" if project.operations <= self.max_operations() else " (buy memory for room)"
            return Outcome(
                False,
                f"Project {project.id} needs {project.operations:,} operations; "
                f"you have {self.operations:,}{room}.",
            )
        if project.cents > self.funds:
            return Outcome(
                False,
                f"Project {project.id} costs {dollars(project.cents)}; "
                f"you have {dollars(self.funds)}.",
            )
        self.operations -= project.operations
        self.funds -= project.cents
        self.done.add(project.id)
        return Outcome(True, f"Project {project.id} done: {project.title}, {project.effect}.")

    def command(self, line: str) -> Outcome:
        """The raw-text path: `project <id>`."""
        if len(line.encode()) > MAX_LINE:
            raise GameError(f"command: at most {MAX_LINE} bytes")
        words = line.split()
        if (
            len(words) == 2
            and words[0] == "project"
            and words[1].isascii()
            and words[1].isdigit()
            and len(words[1]) < 6
        ):
            return self.start_project(int(words[1]))
        return Outcome(False, "The text path takes `project <id>`.")

    # --- views --------------------------------------------------------------------------------

    def snapshot(self) -> dict:
        return {
            "tick": self.tick,
            "clips": self.clips,
            "unsold": self.unsold,
            "fundsCents": self.funds,
            "wireInches": self.wire,
            "priceCents": self.price,
            "demandPerTick": self.demand(),
            "marketingLevel": self.marketing,
            "autoclippers": self.autoclippers,
            "clipsPerTick": self.clips_per_tick(),
            "processors": self.processors,
            "memory": self.memory,
            "operations": self.operations,
            "maxOperations": self.max_operations(),
            "drones": self.drones,
            "factories": self.factories,
            "probes": self.probes,
            "wireSpoolCents": SPOOL_CENTS,
            "offers": [
                {"item": item, "costCents": self.cost(item), "available": self.unlocked(item)}
                for item in ITEMS
            ],
        }

    def projects(self) -> list[dict]:
        return [
            {
                "id": p.id,
                "title": p.title,
                "effect": p.effect,
                "costOperations": p.operations,
                "costCents": p.cents,
                "state": self.project_state(p),
            }
            for p in PROJECTS
        ]

    def commands(self) -> list[dict]:
        return [
            {
                "name": name,
                "usage": usage,
                "summary": summary,
                "available": gate is None or self.unlocked(gate),
            }
            for name, usage, summary, gate in COMMANDS
        ]
