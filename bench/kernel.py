"""`capos-playground bench kernel`: ring, IPC and spawn figures on the native host.

Each figure is measured inside isolated capOS processes booted from a small
manifest, and endpoint round trips are set against pycapnp's own RPC
measured in the same run. Prints a table and, with --json, writes the
figures for scripts to check.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
from collections.abc import Callable
from typing import NamedTuple

from bench.cputime import cpu_snapshot, cpu_spent_ns
from bench.figures import report
from bench.programs.report import PREFIX
from kernel.hosts.models.runner import Provider
from kernel.hosts.native import NativeHost, default_spin_us
from kernel.manifest import encode_document
from kernel.programs.ping import COUNT as PING_COUNT
from kernel.programs.ping import HEADER as PING_HEADER

TARGETS = {
    "nop_per_s": (">=", 200_000),
    "endpoint_rtt_us": ("<=", "pycapnp_rtt_us"),
    "spawn_ms": ("<=", 20),
    "monitor_overhead_pct": ("<=", 10),
}
ROUNDS = 5  # runs of each round-trip measurement, alternated: on a shared machine
# two runs of the same thing can differ by half
PACE_US = 1000  # idle before each paced round trip: longer than any spin window


def _manifest(
    count: int, services: list[dict], binaries: dict[str, str], **params: object
) -> bytes:
    """A system of `services`; its MOTD holds the benchmark programs' parameters."""
    return encode_document(
        {
            "schemaVersion": 1,
            "kernelParams": {"motd": json.dumps({"count": count, **params}), "hostname": "bench"},
            "binaries": [{"name": "init", "module": "kernel.programs.init"}]
            + [{"name": n, "module": m} for n, m in binaries.items()],
            "initConfig": {"init": "init", "services": services},
        }
    )


def _kernel_caps(*names: str) -> list[dict]:
    aliases = {"info": "systemInfo"}
    return [{"name": n, "source": {"kernel": aliases.get(n, n)}} for n in names]


class SystemRun(NamedTuple):
    line: str  # what followed the marker on the Console line
    cpu_ns: int | None  # between the `timed_from` line and that one, when asked


def _run_system(
    image: bytes,
    timeout: float,
    spin_us: int | None = None,
    marker: str = PREFIX,
    *,
    tracing: bool = True,
    model: Provider | None = None,
    timed_from: str | None = None,
) -> SystemRun:
    """Boot natively until a Console line starts with `marker`; return the rest of it.

    `tracing` False boots with the kernel's IPC trace off (the ring counters
    stay: they cost nothing per call), for the monitoring overhead figure.
    `timed_from`: the start of a Console line after which to count the CPU time
    of the kernel loop (this process) and every capOS process, up to the
    marker's line.
    """
    lines: list[str] = []
    started: dict[int, int] = {}
    spent: list[int] = []

    def everyone() -> list[int]:
        return [os.getpid(), *host.os_pids().values()]

    def console(proc: object, data: bytes) -> None:
        for line in data.decode().splitlines():
            if line.startswith(marker):
                if started:
                    spent.append(sum(cpu_spent_ns(started, cpu_snapshot(everyone())).values()))
                lines.append(line[len(marker) :])
            elif timed_from is not None and line.startswith(timed_from):
                started.update(cpu_snapshot(everyone()))
            elif line.strip():
                print(f"  | {line}", file=sys.stderr)

    with NativeHost(image, console=console, spin_us=spin_us, model=model) as host:
        host.kernel.monitor.tracing = tracing
        host.boot()
        host.run(until=lambda: bool(lines), timeout=timeout)
        faults = list(host.kernel.faults)
    if faults:
        raise RuntimeError(f"kernel faults during the benchmark: {faults}")
    if not lines:
        raise RuntimeError(f"no figures within {timeout} s")
    if timed_from is not None and not spent:
        raise RuntimeError(f"no {timed_from!r} line before the figures")
    return SystemRun(lines[0], spent[0] if spent else None)


def _figures(image: bytes, spin_us: int | None = None) -> dict:
    """The JSON a benchmark program printed after its BENCH marker."""
    return json.loads(_run_system(image, timeout=120, spin_us=spin_us).line)


def measure_nops(count: int, spin_us: int | None = None) -> float:
    image = _manifest(
        count,
        [{"name": "nop", "binary": "nop", "caps": _kernel_caps("console", "info")}],
        {"nop": "bench.programs.nop"},
    )
    return _figures(image, spin_us)["nop_per_s"]


def measure_endpoint_rtt(
    spin_us: int | None = None, *, tracing: bool = True, pause_us: int = 0
) -> tuple[float, float]:
    """The `ping` program's median Echo round trip between two isolated processes, in
    us, and the CPU us per call that the kernel loop and every process spent on it.
    `pause_us`: the same round trips, each after that long idle (`paced_ping`)."""
    pinger = "bench.programs.paced_ping" if pause_us else "kernel.programs.ping"
    image = _manifest(
        0,
        [
            {
                "name": "echo",
                "binary": "echo-server",
                "exports": [{"name": "echo", "interface": "Echo"}],
                "caps": [],
            },
            {
                "name": "ping",
                "binary": "ping",
                "caps": _kernel_caps("console", "info")
                + [{"name": "echo", "source": {"import": {"service": "echo", "export": "echo"}}}],
            },
        ],
        {"echo-server": "kernel.programs.echo_server", "ping": pinger},
        pause_us=pause_us,
    )
    run = _run_system(
        image,
        timeout=120,
        spin_us=spin_us,
        marker=f"ping: {PING_COUNT} round trips",
        tracing=tracing,
        timed_from=PING_HEADER,
    )
    median = float(re.search(r"median ([0-9.]+) us", run.line).group(1))
    assert run.cpu_ns is not None  # timed_from was given
    return median, run.cpu_ns / PING_COUNT / 1000


def measure_spawn(count: int) -> float:
    image = _manifest(
        count,
        [
            {
                "name": "probe",
                "binary": "probe",
                "exports": [{"name": "inbox", "interface": "Echo"}],
                "caps": _kernel_caps("console", "info", "processSpawner"),
            }
        ],
        {"probe": "bench.programs.spawn_probe", "spawn-child": "bench.programs.spawn_child"},
    )
    return _figures(image)["spawn_ms"]


def measure_round_trips(rounds: int) -> dict[str, float]:
    """Echo round trips: ours with the shipped defaults, with the IPC trace off, and
    with no spin window (blocking at once), the defaults and the last also paced
    (PACE_US idle before each call), and pycapnp's between two processes; alternated.

    Each run's figure is already a median of the `ping` program's round trips
    (pycapnp: as many, same payload); each figure here is the median over
    `rounds` runs, and so is its CPU time per call. The monitoring overhead
    is the traced and untraced medians' relative difference.
    """
    from bench.pycapnp_echo import measure_pycapnp

    def ours(
        key: str, spin_us: int | None = None, tracing: bool = True, pause_us: int = 0
    ) -> Callable[[], dict[str, float]]:
        def measure() -> dict[str, float]:
            rtt, cpu = measure_endpoint_rtt(spin_us, tracing=tracing, pause_us=pause_us)
            return {f"endpoint_rtt{key}_us": rtt, f"cpu_us_per_call{key}": cpu}

        return measure

    measurements = [
        ours(""),
        ours("_untraced", tracing=False),
        ours("_nospin", spin_us=0),
        ours("_paced", pause_us=PACE_US),
        ours("_paced_nospin", spin_us=0, pause_us=PACE_US),
        lambda: measure_pycapnp(PING_COUNT),
    ]
    runs: dict[str, list[float]] = {}
    for turn in range(rounds):  # each round starts one later, so none always goes first
        for measure in measurements[turn:] + measurements[:turn]:
            for key, value in measure().items():
                runs.setdefault(key, []).append(value)
    figures = {key: statistics.median(values) for key, values in runs.items()}
    on, off = figures["endpoint_rtt_us"], figures["endpoint_rtt_untraced_us"]
    figures["monitor_overhead_pct"] = (on - off) / off * 100
    return figures


def run_benchmark(json_path: str | None, quick: bool = False) -> int:
    scale = 10 if quick else 1
    nops, spawns = 400_000 // scale, max(5, 40 // scale)
    rounds = 1 if quick else ROUNDS
    steps = [
        ("nop_per_s", "NOP SQEs per second through cap_enter", lambda: measure_nops(nops)),
        (
            "endpoint_rtt_us",
            "Echo CALL->RECV->RETURN->CQE between two processes, median us, and CPU us "
            f"per call: ours traced, untraced, with no spin window ({default_spin_us()} us "
            "ships here), paced "
            f"({PACE_US} us idle before each call) with and without it, and pycapnp between two "
            f"processes ({rounds} runs each, alternated)",
            lambda: measure_round_trips(rounds),
        ),
        (
            "spawn_ms",
            "spawn to the child's first completed call, median ms",
            lambda: measure_spawn(spawns),
        ),
        (
            "nop_per_s_nospin",
            "NOPs per second, blocking at once (no spin window)",
            lambda: measure_nops(nops // 4, spin_us=0),
        ),
    ]
    figures: dict[str, float] = {}
    for key, label, measure in steps:
        print(f"measuring {label} ...", file=sys.stderr, flush=True)
        value = measure()
        figures.update(value if isinstance(value, dict) else {key: value})
    targets = {  # a bound named by a figure is that figure, measured in this run
        key: (op, figures[bound] if isinstance(bound, str) else bound)
        for key, (op, bound) in TARGETS.items()
    }
    return report(
        figures,
        targets,
        json_path,
        spin_us=default_spin_us(),
        quick=quick,
    )
