"""How every benchmark reports: a table on stdout, and the same figures as JSON.

Targets are `{figure: (op, bound)}` with op "<=" or ">=" and a number (a
benchmark whose bound depends on another figure works it out first); a
figure with no target is printed without a verdict, and a figure that could
not be measured is None (printed "-", never met).

Every run writes its JSON, by default to bench/results/NAME.json, where the
README's tables are generated from (bench/readme.py). The figures come first at
its top level, in the table's order, then `targets`, which were `met`, the
machine (cores, memory, OS, the load average before the benchmark started and
after it ended, the versions of the tools it exercised) and what the run was
(the benchmark's own context: its backend, whether it was a quick run, ...).
The load average before must be read before any of the benchmark's work, so the
CLI calls `begin` once before it starts one; `report` writes what it noted.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

Targets = dict[str, tuple[str, float]]

RESULTS = Path(__file__).resolve().parent / "results"


def _first_line(*command: str) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def _package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# What a benchmark may exercise, and how to ask its version cheaply (None: not installed).
VERSIONS: dict[str, Callable[[], str | None]] = {
    "pycapnp": lambda: _package("pycapnp"),
    "qemu": lambda: _first_line("qemu-system-x86_64", "--version"),
    "zstd": lambda: _first_line("zstd", "--version"),
    "redis-server": lambda: _first_line("redis-server", "--version"),
    "llama-cpp-python": lambda: _package("llama-cpp-python"),
    "node": lambda: _first_line("node", "--version"),
}


@dataclass(frozen=True, slots=True)
class Start:
    """The machine as a benchmark started."""

    name: str  # the results file's name: bench/results/NAME.json
    load_before: tuple[float, float, float]  # os.getloadavg(): 1, 5 and 15 minutes
    started: str
    versions: dict[str, str | None]


_start: Start | None = None  # set by begin(), once per process, before the benchmark runs


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _memory_mib() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def begin(name: str, uses: Iterable[str] = ()) -> None:
    """Note the load average before benchmark `name` starts and the versions of the
    tools in VERSIONS it `uses` (asked after the load average, so their cost is not in it)."""
    global _start
    load = os.getloadavg()
    _start = Start(name, load, _now(), {tool: VERSIONS[tool]() for tool in uses})


def met(value: float | None, op: str, bound: float) -> bool:
    if value is None:
        return False
    return value <= bound if op == "<=" else value >= bound


def report(
    figures: dict[str, float | None],
    targets: Targets,
    json_path: str | None,
    labels: dict[str, str] | None = None,
    **context: object,
) -> int:
    """Print the table (with a line saying what each labelled figure is) and write the
    JSON to `json_path`, or bench/results/NAME.json; returns the exit status (0)."""
    if _start is None:
        raise RuntimeError("bench.figures.begin() was not called before the benchmark started")
    load_after = os.getloadavg()
    width = max(len(key) for key in figures) + 2
    print()
    print(f"{'figure':<{width}}{'value':>14}   target")
    for key, value in figures.items():
        verdict = ""
        if key in targets:
            op, bound = targets[key]
            verdict = f"{op} {bound:,.1f}  {'met' if met(value, op, bound) else 'MISSED'}"
        shown = "-" if value is None else f"{value:,.1f}"
        print(f"{key:<{width}}{shown:>14}   {verdict}")
        if labels and key in labels:
            print(f"    {labels[key]}")
    path = Path(json_path) if json_path else RESULTS / f"{_start.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        **figures,
        "targets": {key: {"op": op, "bound": bound} for key, (op, bound) in targets.items()},
        "met": {
            key: met(figures[key], op, bound)
            for key, (op, bound) in targets.items()
            if key in figures
        },
        "benchmark": _start.name,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "cores": os.cpu_count(),
        "memory_mib": _memory_mib(),
        "versions": _start.versions,
        "load_before": list(_start.load_before),
        "load_after": list(load_after),
        **context,
        "started": _start.started,
        "when": _now(),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nload average {_start.load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"wrote {path}")
    return 0
