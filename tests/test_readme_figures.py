"""README.md's figures tables are generated from bench/results/ (bench/readme.py), never
copied by hand: the committed README must match what the committed results give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.readme import COMMAND, README, RESULTS, Column, FiguresError, Table, render

TAB = Table(
    "tab",
    (
        Column("tab", "bench tab", "Chromium", before=True),
        Column("tab-firefox", "bench tab --browser firefox", "Firefox"),
    ),
)
RUN = {
    "cores": 2,
    "load_before": [1.5, 1.0, 0.5],
    "load_after": [2.25, 1.0, 0.5],
    "when": "2026-12-03T10:00:00Z",
}


def _write(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def _results(tmp_path: Path) -> Path:
    _write(
        tmp_path / "tab.json",
        {
            "load_ms": 2596.8,
            "rtt_us": 32,
            "tab_mib": 0.0693,
            "lost": None,
            "targets": {
                "load_ms": {"op": "<=", "bound": 908.9},
                "tab_mib": {"op": "<=", "bound": 800},
            },
            "met": {"load_ms": False, "tab_mib": True},
            **RUN,
        },
    )
    _write(tmp_path / "before" / "tab.json", {"load_ms": 3118, "source": "the old README"})
    _write(
        tmp_path / "tab-firefox.json",
        {
            "rtt_us": 132,
            "extra": 7.25,
            "targets": {},
            "quick": True,
            "when": "2026-12-03T11:00:00Z",
        },
    )
    return tmp_path


def test_a_table_shows_every_figure_with_its_before_its_target_and_the_run(tmp_path):
    results = _results(tmp_path)
    readme = "intro\n<!-- figures:tab -->\nstale\n<!-- /figures:tab -->\nafter\n"
    assert render(readme, results, (TAB,)) == (
        "intro\n<!-- figures:tab -->\n"
        "| figure | Chromium before | Chromium | Chromium target | Firefox | Firefox target |\n"
        "|---|---|---|---|---|---|\n"
        "| `load_ms` | 3,118 | 2,597 | <= 909: MISSED | - |  |\n"
        "| `rtt_us` | - | 32 |  | 132 |  |\n"
        "| `tab_mib` | - | 0.0693 | <= 800: met | - |  |\n"
        "| `lost` | - | - |  | - |  |\n"
        "| `extra` | - | - |  | 7.25 |  |\n"
        "\n"
        f"- Chromium before: the old README (`{results}/before/tab.json`)\n"
        "- Chromium: 2026-12-03 10:00:00 UTC, 2 cores, load average 1.50 before, 2.25 after"
        f" (`{results}/tab.json`)\n"
        "- Firefox: 2026-12-03 11:00:00 UTC, cores not recorded, load average not recorded,"
        f" a quick run (`{results}/tab-firefox.json`)\n"
        "<!-- /figures:tab -->\nafter\n"
    )


def test_a_missing_results_file_is_an_error_saying_which_benchmark_writes_it(tmp_path):
    results = _results(tmp_path)
    (results / "tab-firefox.json").unlink()
    readme = "<!-- figures:tab -->\n<!-- /figures:tab -->\n"
    with pytest.raises(FiguresError, match=r"tab-firefox.json is missing: .*bench tab --browser"):
        render(readme, results, (TAB,))


def test_a_missing_before_file_is_an_error(tmp_path):
    results = _results(tmp_path)
    (results / "before" / "tab.json").unlink()
    with pytest.raises(FiguresError, match=r"before/tab.json is missing"):
        render("<!-- figures:tab -->\n<!-- /figures:tab -->\n", results, (TAB,))


def test_a_readme_without_a_tables_block_is_refused(tmp_path):
    with pytest.raises(FiguresError, match="one <!-- figures:tab --> block, has 0"):
        render("no blocks here\n", _results(tmp_path), (TAB,))


def test_the_readme_figures_match_the_committed_results():
    text = README.read_text()
    try:
        fresh = render(text, RESULTS)
    except FiguresError as error:
        pytest.fail(f"{error}; then run `{COMMAND}`")
    assert fresh == text, f"README.md's figures tables differ from bench/results/: run `{COMMAND}`"


def test_a_column_can_show_the_figures_of_one_part_of_a_results_file(tmp_path):
    results = _results(tmp_path)
    _write(results / "tab.json", {"x": 1, "targets": {}, "profile": {"runtime": 631, "heap": 898}})
    table = Table("profile", (Column("tab", "bench tab", part="profile"),))
    block = render("<!-- figures:profile -->\n<!-- /figures:profile -->\n", results, (table,))
    assert "| figure | value |\n|---|---|\n| `runtime` | 631 |\n| `heap` | 898 |\n" in block
