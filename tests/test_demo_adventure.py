"""The Aurelian Frontier's rules and service, without processes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from demos.adventure.server import AdventureService
from demos.adventure.world import Expedition, WorldError
from kernel.codec import Bundle, encode
from kernel.runtime import RemoteError

BUNDLE = Bundle.default()

WALKTHROUGH = [
    ("take", "lantern"),
    ("go", "east"),
    ("take", "flint"),
    ("inspect", "stall"),
    ("use", "flint", "lantern"),
    ("go", "w"),
    ("go", "west"),
    ("take", "blank writ"),
    ("take", "the seal"),
    ("use", "seal", "writ"),
    ("go", "east"),
    ("go", "north"),
    ("use", "writ", "gate"),
    ("go", "north"),
    ("go", "east"),
    ("use", "dial"),
    ("go", "west"),
    ("go", "north"),
    ("use", "compass", "beacon"),
]


def play(expedition: Expedition, steps) -> list[str]:
    return [getattr(expedition, verb)(*args).message for verb, *args in steps]


def test_the_walkthrough_wins_the_expedition():
    e = Expedition()
    messages = play(e, WALKTHROUGH)
    assert messages[-1].endswith("You have won the expedition!")
    assert e.won and e.room == "beacon"
    assert e.moves == 18  # every step but inspecting the stall changed something
    assert e.inventory() == {
        "items": ["lantern (lit)", "flint"],
        "writs": ["writ of passage"],
        "relics": ["aurelian compass"],
        "marks": ["Mark of the Lamplighter", "Mark of Passage", "Mark of the Beacon"],
        "evidence": ["smuggler's tally"],
    }
    assert e.status()["objective"] == "The beacon burns again. The expedition is complete."


def test_the_gate_needs_a_sealed_writ():
    e = Expedition()
    assert e.go("north").moved
    assert e.go("north").message == "The gate is shut. The warden's slot waits for a writ."
    assert e.use("gate").message == "The slot wants a sealed writ."
    assert e.room == "gate"


def test_the_vault_needs_a_light_and_the_dial_needs_the_tally():
    e = Expedition(room="causeway", flags={"gate open"})
    assert e.go("east").message == "The stairs sink into pitch dark. You need a light."
    e.flags.add("lantern lit")
    assert e.go("e").moved
    assert e.use("dial").message.startswith("Three rings, a thousand combinations")
    assert "aurelian compass" not in e.carried


def test_names_resolve_by_alias_and_unknown_things_get_an_answer():
    e = Expedition()
    assert e.take("THE   Lamp").message == "Taken: lantern."
    assert e.take("lantern").message == "You have it already."
    assert e.take("signpost").message == "The signpost will not come with you."
    assert e.take("unicorn").message == "There is no unicorn here to take."
    assert e.inspect("sign").message.startswith("North: the Gatehouse.")
    assert e.use("lantern").message == "It needs a flame: use flint on lantern."
    assert e.use("unicorn").message == "You have no unicorn to use."
    assert e.go("up").message == "Go north, south, east or west."
    assert e.go("south").message == "There is no way south from here."
    with pytest.raises(WorldError):
        e.inspect("x" * 65)


def call(ref: int, session_epoch: int = 1) -> SimpleNamespace:
    return SimpleNamespace(scoped_ref=ref, session_epoch=session_epoch)


def test_each_session_has_its_own_expedition_and_resume_returns_to_it():
    service = AdventureService()
    a, b = call(1), call(2)
    assert service.intro(a)["underWay"] is False
    service.take(a, thing="lantern")
    service.go(a, direction="east")
    assert service.look(b)["room"]["id"] == "landing"
    assert "lantern" in service.look(b)["room"]["items"]
    # the client starts again in the same session: the intro says there is one to resume
    assert service.intro(call(1))["underWay"] is True
    status = service.resume(call(1))["status"]
    assert (status["room"]["id"], status["moves"], status["epoch"]) == ("market", 2, 1)
    restarted = service.restart(a)["status"]
    assert (restarted["room"]["id"], restarted["moves"], restarted["epoch"]) == ("landing", 0, 2)


def test_a_new_session_epoch_starts_a_new_expedition():
    service = AdventureService()
    service.go(call(1), direction="north")
    assert service.look(call(1, session_epoch=2))["room"]["id"] == "landing"
    assert service.look(call(1))["room"]["id"] == "gate"


def test_service_answers_in_schema_shapes_and_refuses_long_names():
    service = AdventureService()
    adventure = BUNDLE.interface("Adventure")
    for name, params in [
        ("intro", {}),
        ("look", {}),
        ("go", {"direction": "east"}),
        ("take", {"thing": "flint"}),
        ("inventory", {}),
        ("inspect", {"thing": "stall"}),
        ("use", {"thing": "flint", "target": ""}),
        ("status", {}),
        ("resume", {}),
        ("restart", {}),
    ]:
        encode(adventure.method(name).results, getattr(service, name)(call(1), **params))
    with pytest.raises(RemoteError) as info:
        service.use(call(1), thing="lantern", target="y" * 1000)
    assert info.value.type == "invalidArgument"
