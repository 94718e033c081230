"""How benchmark programs get their parameters and hand back their figures.

The harness boots a manifest whose MOTD is a JSON object of parameters,
and each program prints exactly one `BENCH {json}` line on its Console.
"""

from __future__ import annotations

import json

from kernel.runtime import Runtime

PREFIX = "BENCH "


def bench_params(rt: Runtime) -> dict:
    return json.loads(rt.cap("info", "SystemInfo").motd()["text"])


def report(rt: Runtime, figures: dict) -> None:
    rt.cap("console", "Console").writeLine(text=PREFIX + json.dumps(figures))
