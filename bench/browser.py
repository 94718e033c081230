"""`capos-playground bench browser`: the playground tab in headless Chromium or Firefox ESR.

web/tools/bench-tab.mjs drives the browser (puppeteer-core: CDP for Chromium, WebDriver
BiDi for Firefox) with the same in-page probes in both, and times everything inside the
page; this module serves the real server to it and reports. Each figure is the median
of RUNS runs, each floor measured in the same browser and run:

- `pyodide_load_ms`, the floor: a bare loadPyodide() in a worker, cache warm.
- `prompt_ms`: a return visit (cache warm), navigation start to the shell prompt in the
  terminal; `prompt_cold_ms` the same with a fresh profile, everything from the server.
- `floor_rtt_us`, the floor: two Pyodide workers ping-ponging one SharedArrayBuffer word
  with Atomics.wait/notify called from Python (web/static/bench-floor.html).
- `endpoint_rtt_us`: the `ping` program's median round trip to the Echo service.
- `spawn_ms`: Enter on `run "counter"` to the child's first completed call (its banner).
- `echo_ms`: a keystroke's keydown to its glyph in the terminal's buffer (25 keystrokes,
  one run).
- `tab_memory_mib`: what one tab at the prompt, settled (every resident process running,
  a spare worker ready), adds to the browser: the PSS (proportional set size, from
  /proc/PID/smaps_rollup, so pages shared between processes count once) summed over
  every process under the browser's, minus the same sum with one blank page open.

The JSON also holds every sample, each visit's milestones (play.js `marks`) and what
the tab added to each kind of browser process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

from bench.figures import report
from bench.tab import CHROMIUM, CHROMIUM_FLAGS, FIREFOX, PROMPT, RESIDENTS, serving

DRIVER = Path(__file__).resolve().parents[1] / "web" / "tools" / "bench-tab.mjs"
DRIVER_TIMEOUT_S = 1800
RUNS = 5
# How each browser is launched (puppeteer's browser name, the binary, its flags).
LAUNCH = {
    "chromium": {"browser": "chrome", "executable": CHROMIUM, "args": CHROMIUM_FLAGS},
    "firefox": {"browser": "firefox", "executable": FIREFOX, "args": []},
}
PROMPT_SHARE = 0.35  # prompt_ms's target: this share of a bare Pyodide load, same run
PROMPT_MAX_MS = 1000
RTT_FACTOR = 3  # endpoint_rtt_us's target: this many times the floor, same run
RTT_MAX_US = 300
FIXED_TARGETS = {"spawn_ms": 50, "echo_ms": 16, "tab_memory_mib": 800}
LABELS = {  # every figure, in the order the table shows them
    "pyodide_load_ms": "the floor: a bare loadPyodide() in a worker, cache warm",
    "prompt_ms": f"return visit; target {PROMPT_SHARE} x pyodide_load_ms, at most {PROMPT_MAX_MS}",
    "prompt_cold_ms": "fresh profile; target pyodide_load_ms",
    "floor_rtt_us": "the floor: two Pyodide workers, one shared word, Atomics from Python",
    "endpoint_rtt_us": f"ping -> Echo; target {RTT_FACTOR} x floor_rtt_us, at most {RTT_MAX_US}",
    "spawn_ms": 'Enter on run "counter" to its banner',
    "echo_ms": "keydown to glyph in the terminal, median of 25 keystrokes",
    "tab_memory_mib": "PSS of every browser process, tab settled at the prompt, less a blank page",
}


def drive(config: dict) -> dict:
    """Run the driver to the end; its progress lines pass through to stderr."""
    node = subprocess.Popen(
        ["node", str(DRIVER), json.dumps(config)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the browser goes down with it
    )
    try:
        stdout, _ = node.communicate(timeout=DRIVER_TIMEOUT_S)
    finally:
        with contextlib.suppress(ProcessLookupError):  # what node left behind, if anything
            os.killpg(node.pid, signal.SIGKILL)
        node.wait()
    if node.returncode != 0:
        raise RuntimeError(f"{DRIVER.name} failed (exit status {node.returncode}); see above")
    return json.loads(stdout.strip().splitlines()[-1])


def targets(figures: dict[str, float]) -> dict[str, tuple[str, float]]:
    """Every figure's bound; three depend on the floors measured in this run."""
    prompt = min(PROMPT_SHARE * figures["pyodide_load_ms"], PROMPT_MAX_MS)
    rtt = min(RTT_FACTOR * figures["floor_rtt_us"], RTT_MAX_US)
    bounds = {
        "prompt_ms": prompt,
        "prompt_cold_ms": figures["pyodide_load_ms"],
        "endpoint_rtt_us": rtt,
        **FIXED_TARGETS,
    }
    return {key: ("<=", bound) for key, bound in bounds.items()}


def memory_by_kind(visits: list[dict[str, float]]) -> dict[str, float]:
    """What a tab added to each kind of browser process (MiB), the median over the
    visits, largest first."""
    kinds = {kind for visit in visits for kind in visit}
    medians = {kind: statistics.median(visit.get(kind, 0) for visit in visits) for kind in kinds}
    return dict(sorted(medians.items(), key=lambda item: -item[1]))


MILESTONES = (  # play.js marks on the prompt's path, in order
    "Python runtime",
    "memory snapshot",
    "kernel worker ready",
    "spawn pid 1",
    "spawn pid 9",
    "first output",
)


def boot_profile(marks: list[list[list]], restored: list[dict]) -> dict[str, float]:
    """Where a return visit's time to the prompt goes: the median time since navigation
    of each milestone, and the median of each restore step in the kernel's worker and
    in the process workers (ms)."""
    profile: dict[str, float] = {}
    for milestone in MILESTONES:
        times = [
            next(ms for what, ms in visit if what.startswith(milestone))
            for visit in marks
            if any(what.startswith(milestone) for what, _ in visit)
        ]
        if times:
            profile[milestone] = statistics.median(times)
    for step in restored[0]["kernel"]["steps"]:
        profile[f"kernel worker: {step}"] = statistics.median(
            visit["kernel"]["steps"][step] for visit in restored
        )
        profile[f"process worker: {step}"] = statistics.median(
            worker["steps"][step] for visit in restored for worker in visit["processes"]
        )
    return profile


def run_benchmark(json_path: str | None, quick: bool = False, browser: str = "chromium") -> int:
    runs = 1 if quick else RUNS
    print(f"benchmarking the playground tab in {browser}, {runs} run(s) each", file=sys.stderr)
    with serving() as base_url:
        config = {"base": base_url, "runs": runs, "residents": RESIDENTS, "prompt": PROMPT}
        result = drive({**LAUNCH[browser], **config})
    samples = result["samples"]
    figures = {key: statistics.median(samples[key]) for key in LABELS}
    by_kind = memory_by_kind(result["memoryAdded"])
    where = ", ".join(f"{kind} {mib:,.0f}" for kind, mib in by_kind.items() if abs(mib) >= 1)
    labels = {**LABELS, "tab_memory_mib": f"{LABELS['tab_memory_mib']}: {where}"}
    profile = boot_profile(result["marks"]["prompt_ms"], result["restored"]["prompt_ms"])
    print("\nwhere a return visit's time to the prompt goes (ms, medians):", file=sys.stderr)
    for name, ms in profile.items():
        print(f"  {name:<40} {ms:8,.0f}", file=sys.stderr)
    return report(
        figures,
        targets(figures),
        json_path,
        labels,
        browser=f"{result['version']}, headless",
        quick=quick,
        runs=runs,
        samples=samples,
        marks=result["marks"],
        restored=result["restored"],
        boot_profile_ms=profile,
        memory_added_mib=by_kind,
    )
