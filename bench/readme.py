"""README.md's figures tables, generated from the benchmarks' latest results.

Each table is a block between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->`
in README.md, made from the JSON files in bench/results/ that TABLES names: a row
for every figure of the first file (in its order), and for each file its value and
target with met or MISSED, after the value from bench/results/before/NAME.json when
the column asks for one (a figure from before the work that changed it, transcribed
with a `source` saying from where). Under the table, a line per file says when it
was measured, on how many cores and at what load average. `capos-playground bench
readme` rewrites the blocks; tests/test_readme_figures.py fails when they drift.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.figures import RESULTS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COMMAND = "capos-playground bench readme"


@dataclass(frozen=True, slots=True)
class Column:
    """One results file's figures in a table."""

    result: str  # bench/results/RESULT.json
    command: str  # the capos-playground arguments that write it
    heading: str = ""  # over its columns when a table has several files
    before: bool = False  # with bench/results/before/RESULT.json's figures first
    part: str = ""  # the figures under this key of the JSON instead (they have no targets)


@dataclass(frozen=True, slots=True)
class Table:
    name: str  # the README block: <!-- figures:NAME -->
    columns: tuple[Column, ...]


TABLES = (
    Table("kernel", (Column("kernel", "bench kernel"),)),
    Table("stress", (Column("stress", "bench kernel --stress 20000"),)),
    Table("agent", (Column("agent", "bench agent"),)),
    Table(
        "browser",
        (
            Column("browser", "bench browser", "Chromium", before=True),
            Column("browser-firefox", "bench browser --browser firefox", "Firefox ESR", True),
        ),
    ),
    Table(
        "browser-profile",
        (
            Column("browser", "bench browser", "Chromium", part="boot_profile_ms"),
            Column(
                "browser-firefox",
                "bench browser --browser firefox",
                "Firefox ESR",
                part="boot_profile_ms",
            ),
        ),
    ),
    Table("pool", (Column("pool", "bench pool", before=True),)),
    Table("echo", (Column("echo", "bench echo"),)),
    Table("share", (Column("share", "bench share"),)),
    Table("faults", (Column("faults", "bench faults"),)),
    Table("abuse", (Column("abuse", "bench abuse"),)),
)

_BLOCK = re.compile(r"(<!-- figures:([\w-]+) -->\n)(.*?)(<!-- /figures:\2 -->)", re.DOTALL)


class FiguresError(Exception):
    """A results file or a README block is missing or not what the generator expects."""


def _shown(path: Path) -> str:
    """`path` from the repository's root, as the README and messages name it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _load(path: Path, command: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FiguresError(f"{_shown(path)} is missing: run `capos-playground {command}`") from None
    except json.JSONDecodeError as error:
        raise FiguresError(f"{_shown(path)} is not JSON ({error})") from None


def figure_names(result: dict) -> list[str]:
    """The figures, in order: bench/figures.py writes them first, then `targets`."""
    if "targets" not in result:
        raise FiguresError("a results file without `targets`: not written by bench/figures.py")
    names: list[str] = []
    for key in result:
        if key == "targets":
            return names
        names.append(key)
    return names


def number(value: object) -> str:
    """A figure as a reader wants it: thousands grouped, about three significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FiguresError(f"{value!r} is not a number")
    if isinstance(value, int) or value.is_integer() or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _target(result: dict, name: str) -> str:
    target = result["targets"].get(name)
    if target is None:
        return ""
    verdict = "met" if result.get("met", {}).get(name) else "MISSED"
    return f"{target['op']} {number(target['bound'])}: {verdict}"


def _caption(label: str, result: dict, path: Path) -> str:
    where = f"`{_shown(path)}`"
    if "source" in result:
        return f"- {label}: {result['source']} ({where})"
    parts = []
    if "when" in result:
        parts.append(result["when"].replace("T", " ").replace("Z", " UTC"))
    cores = result.get("cores", result.get("cpus"))
    parts.append(f"{cores} cores" if cores else "cores not recorded")
    if "load_before" in result and "load_after" in result:
        before, after = result["load_before"][0], result["load_after"][0]
        parts.append(f"load average {before:.2f} before, {after:.2f} after")
    else:
        parts.append("load average not recorded")
    if result.get("quick"):
        parts.append("a quick run")
    return f"- {label}: {', '.join(parts)} ({where})"


def _figures(column: Column, result: dict) -> tuple[list[str], dict]:
    """A file's figure names, in order, and where their values are."""
    if not column.part:
        return figure_names(result), result
    part = result.get(column.part)
    if not isinstance(part, dict):
        raise FiguresError(f"{column.result}.json has no `{column.part}` figures")
    return list(part), part


def render_table(table: Table, results: Path = RESULTS) -> str:
    """The block's Markdown: the table, then a line per file saying what the run was."""
    headings = ["figure"]
    names: list[str] = []
    loaded = []
    for column in table.columns:
        path = results / f"{column.result}.json"
        result = _load(path, column.command)
        before = None
        if column.before:
            before_path = results / "before" / f"{column.result}.json"
            before = (_load(before_path, f"{column.command}` on the code before"), before_path)
        own, values = _figures(column, result)
        names += [name for name in own if name not in names]
        loaded.append((column, path, result, values, before))
        prefix = f"{column.heading} " if column.heading else ""
        if column.before:
            headings.append(f"{prefix}before")
        headings.append(column.heading or "value")
        if not column.part:
            headings.append(f"{prefix}target")
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for name in names:
        cells = [f"`{name}`"]
        for column, _, result, values, before in loaded:
            if before is not None:
                source = before[0].get(column.part, {}) if column.part else before[0]
                cells.append(number(source.get(name)))
            cells.append(number(values.get(name)))
            if not column.part:
                cells.append(_target(result, name))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for column, path, result, _, before in loaded:
        if before is not None:
            lines.append(_caption(f"{column.heading} before".strip(), before[0], before[1]))
        lines.append(_caption(column.heading or "measured", result, path))
    return "\n".join(lines) + "\n"


def render(readme: str, results: Path = RESULTS, tables: tuple[Table, ...] = TABLES) -> str:
    """`readme` with the block of each of `tables` regenerated; each must appear once."""
    found = [match.group(2) for match in _BLOCK.finditer(readme)]
    names = [table.name for table in tables]
    for name in names:
        if found.count(name) != 1:
            raise FiguresError(
                f"README.md needs one <!-- figures:{name} --> block, has {found.count(name)}"
            )
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise FiguresError(f"README.md has blocks no table in bench/readme.py makes: {unknown}")
    blocks = {table.name: render_table(table, results) for table in tables}
    return _BLOCK.sub(lambda m: m.group(1) + blocks[m.group(2)] + m.group(4), readme)


def readme_command(check: bool = False, readme: Path = README) -> int:
    """Rewrite README.md's tables (or with `check`, fail if they are stale)."""
    try:
        text = readme.read_text()
        fresh = render(text)
    except FiguresError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if fresh == text:
        print(f"{readme.name}: the figures tables are up to date")
        return 0
    if check:
        print(f"error: {readme.name}'s figures tables are stale: run `{COMMAND}`", file=sys.stderr)
        return 1
    readme.write_text(fresh)
    print(f"{readme.name}: rewrote the figures tables from {RESULTS}")
    return 0
