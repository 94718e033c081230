"""Tour files: every shipped tour loads; a malformed one is named by file, step and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.tours import CHECKS, TourError, extensions_used, load_tour, load_tours

GOOD_STEP = '[[steps]]\ntitle = "Look"\ntext = "Type caps."\ncommand = "caps"\n'


def write_tour(root: Path, name: str, text: str) -> Path:
    path = root / name / "tour.toml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_every_shipped_tour_loads_with_known_checks():
    tours = load_tours()
    assert {t.name for t in tours} >= {  # the list, each for someone new
        "first-steps",
        "authority-at-spawn",
        "attenuation",
        "move-or-copy",
        "revocation",
        "sessions",
        "paperclips",
        "adventure",
        "watching",
    }
    assert tours[0].name == "first-steps"  # the landing page offers it first
    for tour in tours:
        for step in tour.steps:
            assert set(step.get("check", {})) <= set(CHECKS)


def test_tours_list_prints_one_name_a_line():
    listed = subprocess.run(
        [sys.executable, "-m", "server.cli", "tours", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed == [t.name for t in load_tours()]


def test_tours_verify_refuses_an_unknown_name_before_starting_anything():
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "tours", "verify", "nosuch"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "no tour ['nosuch']" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('title = "T"\nsummary = "S"\nsteps = []\n', "steps: a tour needs at least one step"),
        ('title = "T"\nsteps = []\n', "missing field 'summary'"),
        ('title = "T"\nsummary = "S"\ncolour = 1\n' + GOOD_STEP, "unknown field 'colour'"),
        (
            'title = "T"\nsummary = "S"\n' + GOOD_STEP + "[[steps]]\ntext = 'x'\n",
            "step 2: missing field 'title'",
        ),
        (
            'title = "T"\nsummary = "S"\n' + GOOD_STEP + 'check = { smell = { a = "b" } }\n',
            "step 1: check.smell: unknown check",
        ),
        (
            'title = "T"\nsummary = "S"\n' + GOOD_STEP + 'check = { call = { verb = "x" } }\n',
            "step 1: check.call: unknown field 'verb'",
        ),
        (
            'title = "T"\nsummary = "S"\n' + GOOD_STEP + "check = { output = { text = 3 } }\n",
            "step 1: check.output: text: expected str, got 3",
        ),
        (
            'title = "T"\nsummary = "S"\n' + GOOD_STEP + "input = [1]\n",
            "step 1: input: a list of single-line strings",
        ),
        (
            'title = "T"\nsummary = "S"\n[[steps]]\ntitle = "a"\ntext = "b"\ninput = ["x"]\n',
            "step 1: input: only a step with a command",
        ),
        (
            'title = "T"\nsummary = "S"\n' + GOOD_STEP.replace('"caps"', '"a\\nb"'),
            "step 1: command: one line only",
        ),
        ("title = ", "not valid TOML"),
    ],
)
def test_a_malformed_tour_is_refused_naming_file_step_and_field(tmp_path, text, message):
    path = write_tour(tmp_path, "broken", text)
    with pytest.raises(TourError) as refused:
        load_tour(path)
    assert str(refused.value).startswith(str(path)) and message in str(refused.value)


def test_a_bad_folder_name_is_refused(tmp_path):
    path = write_tour(tmp_path, "Bad Name", 'title = "T"\nsummary = "S"\n' + GOOD_STEP)
    with pytest.raises(TourError, match="folder name 'Bad Name'"):
        load_tour(path)


def test_the_api_lists_tours_and_serves_one_whole():
    client = TestClient(create_app(), base_url="http://localhost")
    listing = client.get("/api/tours").json()
    assert listing[0] == {
        "name": "first-steps",
        "title": load_tours()[0].title,
        "summary": load_tours()[0].summary,
        "steps": len(load_tours()[0].steps),
    }
    tour = client.get("/api/tours/sessions").json()
    assert tour["steps"][1]["input"] == ["tour-pass", "tour-pass"]
    missing = client.get("/api/tours/nope")
    assert missing.status_code == 404 and "first-steps" in missing.json()["error"]


def test_steps_that_use_playground_extensions_are_marked_with_them():
    client = TestClient(create_app(), base_url="http://localhost")
    steps = client.get("/api/tours/revocation").json()["steps"]
    marked = {step["command"]: step.get("extensions") for step in steps}
    assert marked['spawn "counter-server" with { counter: new Counter }'] == ["new"]
    assert marked["kill %1"] == ["kill"]
    assert marked["counter2.increment(by=2)"] == ["typed calls"]
    grants = 'spawn "paperclips-server" with { timer: move @timer, paperclips: new PaperclipsGame }'
    assert extensions_used(grants) == ["move", "new"]
    assert extensions_used("let mine = monitor.subtree(pid=3)") == ["let", "typed calls"]
    # the book's own commands, and lines typed to a child program, are not marked
    for line in ("man Timer", "setup ada", 'run "paperclips" with { stdio: client @stdio }'):
        assert extensions_used(line) == [], line
    for line in ("look", "/exit", "hello, capabilities", "make 100"):
        assert extensions_used(line) == [], line
