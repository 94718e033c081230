"""How every benchmark reports: a table on stdout, and the same figures as JSON.

Targets are `{figure: (op, bound)}` with op "<=" or ">=" and a number (a
benchmark whose bound depends on another figure works it out first); a
figure with no target is printed without a verdict, and a figure that could
not be measured is None (printed "-", never met). The JSON holds the figures at
its top level, the targets, which were met, and what the run was (`context`:
the machine, the backend, whether it was a quick run, when).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

Targets = dict[str, tuple[str, float]]


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
    """Print the table (with a line saying what each labelled figure is), write the
    JSON when asked; returns the command's exit status (0)."""
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
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            **figures,
            "targets": {key: {"op": op, "bound": bound} for key, (op, bound) in targets.items()},
            "met": {
                key: met(figures[key], op, bound)
                for key, (op, bound) in targets.items()
                if key in figures
            },
            "python": platform.python_version(),
            "machine": platform.machine(),
            **context,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {path}")
    return 0
