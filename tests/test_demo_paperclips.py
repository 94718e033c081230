"""Paperclips rules and service, without processes: exact, deterministic numbers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from demos.paperclips.game import MAX_CATCH_UP, SECOND_NS, Game, GameError, dollars
from demos.paperclips.server import PaperclipsService
from kernel.codec import Bundle, encode
from kernel.runtime import RemoteError

BUNDLE = Bundle.default()


def session(ref: int) -> SimpleNamespace:
    return SimpleNamespace(scoped_ref=ref)


def test_the_book_script_has_exact_numbers():
    g = Game()
    assert (g.funds, g.wire, g.price, g.demand()) == (0, 1000, 25, 10)
    assert g.buy("marketing").message == "Marketing level 2 costs $10.00; you have $0.00."
    assert g.make(1).message == "Made 1 clip."
    assert g.make(100).message == "Made 100 clips."
    assert g.buy("autoclipper").message == "An autoclipper costs $5.00; you have $0.00."
    assert (g.clips, g.unsold, g.wire, g.funds, g.tick) == (101, 101, 899, 0, 0)
    assert g.run(3).message == "Ran 3 ticks: made 0 clips, sold 30 for $7.50."
    assert (g.unsold, g.funds, g.operations, g.tick) == (71, 750, 30, 3)


def test_make_creates_exactly_one_clip_and_stops_when_the_wire_runs_out():
    g = Game(wire=3)
    assert g.make(1).message == "Made 1 clip."
    assert (g.clips, g.wire) == (1, 2)
    assert g.make(5).message == "Made 2 clips: the wire ran out."
    assert not g.make(1).ok
    assert g.make(1).message == "No wire left: buy wire 1."


def test_autoclippers_tick_and_the_market_buys_up_to_the_demand():
    g = Game(funds=500, unsold=50)
    assert g.buy("autoclipper").ok
    assert (g.funds, g.cost("autoclipper")) == (0, 600)
    made, sold, earned = g.advance(2)
    assert (made, sold, earned) == (2, 20, 500)
    assert (g.clips, g.unsold, g.wire, g.operations) == (2, 32, 998, 20)


def test_sell_uses_this_seconds_appetite_and_price_changes_demand():
    g = Game(unsold=100)
    assert g.sell(4).message == "Sold 4 clips for $1.00."
    assert g.sell(50).message == "Sold 6 clips for $1.50."
    assert g.sell(1).message.startswith("The market is full this second")
    assert g.funds == 250
    assert g.set_price(5).message == "Price set to $0.05; demand is 50 clips a tick."
    assert g.appetite == 0  # this second is sold out already
    g.advance(1)
    assert (g.unsold, g.appetite) == (90, 50)  # nothing left over for the tick, then refilled


def test_marketing_doubles_demand_and_costs_double_each_level():
    g = Game(funds=3000)
    assert g.buy("marketing").message == "Bought marketing level 2 for $10.00; $20.00 left."
    assert (g.demand(), g.cost("marketing")) == (20, 2000)


def test_wire_processor_and_memory_purchases():
    g = Game(funds=5000)
    msg = g.buy_wire(2).message
    assert msg == "Bought 2 spools of wire (2,000 inches) for $30.00."
    assert (g.wire, g.funds) == (3000, 2000)
    assert g.buy("processor").ok and g.buy("memory").ok
    assert (g.processors, g.memory, g.funds, g.max_operations()) == (2, 2, 0, 2000)
    g.advance(1)
    assert g.operations == 20
    assert not g.buy_wire(1).ok


def test_projects_unlock_in_order_and_gate_the_fleet():
    g = Game(funds=10_000_000, operations=1000)
    assert g.buy("drone").message == "Drones are locked: project 3 (Wire Drones) unlocks them."
    assert g.command("project 3").message == "Project 3 needs project 1 first."
    assert g.command("project 1").ok
    assert g.clipper_rate() == 2 and g.operations == 500
    assert g.command("project 1").message.endswith("is done already.")
    msg = g.command("project 3").message
    assert msg == "Project 3 needs 1,500 operations; you have 500 (buy memory for room)."
    g.memory, g.operations = 9, 8500
    assert g.start_project(3).ok and g.buy("drone").ok
    assert g.start_project(4).ok and g.buy("factory").ok
    assert g.start_project(5).ok and g.buy("probe").ok
    assert g.clips_per_tick() == 0 * 2 + 100 + 1000
    assert [p["state"] for p in g.projects()] == ["done", "available", "done", "done", "done"]
    assert g.command("project 9").message == "No project 9: see projects."
    assert g.command("fly to the moon").message == "The text path takes `project <id>`."


def test_the_catchy_jingle_raises_demand_by_half():
    g = Game(operations=1000)
    assert g.start_project(2).ok
    assert g.demand() == 15


def test_drones_harvest_wire_and_probes_need_none():
    g = Game(wire=0, drones=2, probes=1, factories=1)
    g.advance(1)
    assert (g.wire, g.clips) == (200 - 100, 100 + 1000)


@pytest.mark.parametrize(
    "action",
    [
        lambda g: g.make(0),
        lambda g: g.make(1001),
        lambda g: g.sell(0),
        lambda g: g.set_price(0),
        lambda g: g.set_price(10_001),
        lambda g: g.buy_wire(1001),
        lambda g: g.run(0),
        lambda g: g.run(10_001),
        lambda g: g.buy("spaceship"),
        lambda g: g.command("project " + "9" * 300),
    ],
)
def test_out_of_contract_commands_raise_game_error(action):
    with pytest.raises(GameError):
        action(Game())


def test_the_clock_ticks_once_a_second_and_catches_up_at_most_an_hour():
    g = Game(unsold=10_000)
    assert g.sync(5 * SECOND_NS) == 0  # the first sync starts the clock
    assert g.sync(5 * SECOND_NS + SECOND_NS // 2) == 0
    assert g.sync(7 * SECOND_NS + 1) == 2
    assert g.sync(8 * SECOND_NS) == 1
    assert g.tick == 3
    g.run(10)  # fast-forward does not move the wall clock
    assert g.sync(8 * SECOND_NS) == 0
    assert g.sync(10**7 * SECOND_NS) == MAX_CATCH_UP
    assert g.tick == 13 + MAX_CATCH_UP


def test_money_renders_in_dollars():
    assert [dollars(c) for c in (0, 5, 750, 123456789)] == [
        "$0.00",
        "$0.05",
        "$7.50",
        "$1,234,567.89",
    ]


def test_service_keeps_one_game_per_session_and_answers_in_schema_shapes():
    service = PaperclipsService()
    a, b = session(1), session(2)
    service.make(a, count=5)
    assert service.status(a)["status"]["clips"] == 5
    assert service.status(b)["status"]["clips"] == 0
    game = BUNDLE.interface("PaperclipsGame")
    for name, params in [
        ("commands", {}),
        ("status", {}),
        ("projects", {}),
        ("make", {"count": 1}),
        ("buy", {"item": "probe"}),
        ("command", {"line": "project 1"}),
    ]:
        results = getattr(service, name)(a, **params)
        encode(game.method(name).results, results)  # raises if a field is wrong
    help_lines = service.commands(a)["list"]["commands"]
    assert {c["name"]: c["available"] for c in help_lines}["buy drone"] is False


def test_service_turns_contract_violations_into_invalid_argument():
    service = PaperclipsService()
    with pytest.raises(RemoteError) as info:
        service.make(session(1), count=100_000)
    assert info.value.type == "invalidArgument"
    assert "1 to 1,000" in info.value.message


def test_service_ticks_by_its_clock():
    now = [0]
    service = PaperclipsService(lambda: now[0])
    service.make(session(1), count=30)
    now[0] = 2 * SECOND_NS
    status = service.status(session(1))["status"]
    assert (status["tick"], status["unsold"], status["fundsCents"]) == (2, 10, 500)
