"""Every benchmark's JSON says what machine it ran on, at what load, and lands where
the README's tables are generated from (bench/figures.py)."""

from __future__ import annotations

import json
import os

import pytest

from bench import figures
from bench.readme import figure_names


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "RESULTS", tmp_path)
    monkeypatch.setattr(figures, "_start", None)
    return tmp_path


def test_a_report_writes_its_figures_and_the_machine_to_the_results_directory(results):
    figures.begin("demo", ["pycapnp"])
    targets = {"rtt_us": ("<=", 100.0), "spawn_ms": ("<=", 1.0)}
    assert figures.report({"rtt_us": 50.0, "spawn_ms": 2.5}, targets, None, quick=True) == 0
    document = json.loads((results / "demo.json").read_text())
    assert figure_names(document) == ["rtt_us", "spawn_ms"]
    assert document["met"] == {"rtt_us": True, "spawn_ms": False}
    assert document["cores"] == os.cpu_count()
    assert document["memory_mib"] > 0
    assert len(document["load_before"]) == len(document["load_after"]) == 3
    assert document["versions"]["pycapnp"]
    assert document["benchmark"] == "demo"
    assert document["quick"] is True
    assert document["started"] <= document["when"]


def test_json_path_overrides_the_results_directory(results, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "mine.json"
    figures.begin("demo")
    figures.report({"rtt_us": 50.0}, {}, str(elsewhere))
    assert json.loads(elsewhere.read_text())["rtt_us"] == 50.0
    assert not (results / "demo.json").exists()


def test_a_report_without_begin_is_refused(results):
    with pytest.raises(RuntimeError, match="begin"):
        figures.report({"rtt_us": 50.0}, {}, None)
