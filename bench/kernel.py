"""`capos-playground bench kernel`: ring, IPC and spawn figures on the native host.

Each figure is measured inside isolated capOS processes booted from a small
manifest, and endpoint round trips are set against pycapnp's own RPC
measured in the same run. Prints a table and, with --json, writes the
figures for scripts to check.
"""

from __future__ import annotations

import json
import re
import statistics
import sys

from bench.figures import report
from bench.programs.report import PREFIX
from kernel.hosts.models.runner import Provider
from kernel.hosts.native import DEFAULT_SPIN_US, NativeHost
from kernel.manifest import encode_document
from kernel.programs.ping import COUNT as PING_COUNT

TARGETS = {
    "nop_per_s": (">=", 200_000),
    "endpoint_rtt_us": ("<=", "pycapnp_rtt_us"),
    "spawn_ms": ("<=", 20),
    "monitor_overhead_pct": ("<=", 10),
}
MONITOR_PAIRS = 3  # traced and untraced round-trip runs, alternated


def _manifest(count: int, services: list[dict], binaries: dict[str, str]) -> bytes:
    return encode_document(
        {
            "schemaVersion": 1,
            "kernelParams": {"motd": json.dumps({"count": count}), "hostname": "bench"},
            "binaries": [{"name": "init", "module": "kernel.programs.init"}]
            + [{"name": n, "module": m} for n, m in binaries.items()],
            "initConfig": {"init": "init", "services": services},
        }
    )


def _kernel_caps(*names: str) -> list[dict]:
    aliases = {"info": "systemInfo"}
    return [{"name": n, "source": {"kernel": aliases.get(n, n)}} for n in names]


def _run_system(
    image: bytes,
    timeout: float,
    spin_us: int = DEFAULT_SPIN_US,
    marker: str = PREFIX,
    *,
    tracing: bool = True,
    model: Provider | None = None,
) -> str:
    """Boot natively until a Console line starts with `marker`; return the rest of it.

    `tracing` False boots with the kernel's IPC trace off (the ring counters
    stay: they cost nothing per call), for the monitoring overhead figure.
    """
    lines: list[str] = []

    def console(proc: object, data: bytes) -> None:
        for line in data.decode().splitlines():
            if line.startswith(marker):
                lines.append(line[len(marker) :])
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
    return lines[0]


def _figures(image: bytes, spin_us: int = DEFAULT_SPIN_US) -> dict:
    """The JSON a benchmark program printed after its BENCH marker."""
    return json.loads(_run_system(image, timeout=120, spin_us=spin_us))


def measure_nops(count: int, spin_us: int = DEFAULT_SPIN_US) -> float:
    image = _manifest(
        count,
        [{"name": "nop", "binary": "nop", "caps": _kernel_caps("console", "info")}],
        {"nop": "bench.programs.nop"},
    )
    return _figures(image, spin_us)["nop_per_s"]


def measure_endpoint_rtt(spin_us: int = DEFAULT_SPIN_US, *, tracing: bool = True) -> float:
    """The `ping` program's median Echo round trip, between two isolated processes."""
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
                "caps": _kernel_caps("console")
                + [{"name": "echo", "source": {"import": {"service": "echo", "export": "echo"}}}],
            },
        ],
        {"echo-server": "kernel.programs.echo_server", "ping": "kernel.programs.ping"},
    )
    line = _run_system(image, timeout=120, spin_us=spin_us, marker="ping: ", tracing=tracing)
    return float(re.search(r"median ([0-9.]+) us", line).group(1))


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


def measure_monitor_overhead(pairs: int) -> dict[str, float]:
    """Echo round trips with the IPC trace on and off, alternated in one run.

    Each run's figure is already a median of 500 round trips; the medians of
    the traced and untraced runs give `endpoint_rtt_us` and its untraced
    twin, and the overhead is their relative difference.
    """
    traced, untraced = [], []
    for _ in range(pairs):
        untraced.append(measure_endpoint_rtt(tracing=False))
        traced.append(measure_endpoint_rtt(tracing=True))
    on, off = statistics.median(traced), statistics.median(untraced)
    return {
        "endpoint_rtt_us": on,
        "endpoint_rtt_untraced_us": off,
        "monitor_overhead_pct": (on - off) / off * 100,
    }


def run_benchmark(json_path: str | None, quick: bool = False) -> int:
    from bench.pycapnp_echo import measure_pycapnp_rtt_us

    scale = 10 if quick else 1
    nops, spawns = 400_000 // scale, max(5, 40 // scale)
    pairs = 1 if quick else MONITOR_PAIRS
    steps = [
        ("nop_per_s", "NOP SQEs per second through cap_enter", lambda: measure_nops(nops)),
        (
            ("endpoint_rtt_us", "endpoint_rtt_untraced_us", "monitor_overhead_pct"),
            "Echo CALL->RECV->RETURN->CQE between two processes, median us, "
            f"IPC trace on and off ({pairs} runs each, alternated)",
            lambda: measure_monitor_overhead(pairs),
        ),
        (
            "pycapnp_rtt_us",
            "pycapnp RPC Echo over a socketpair, median us",
            lambda: measure_pycapnp_rtt_us(PING_COUNT),
        ),
        (
            "spawn_ms",
            "spawn to the child's first completed call, median ms",
            lambda: measure_spawn(spawns),
        ),
        # The same with waiters blocking at once (spin_us=0), for comparison.
        (
            "nop_per_s_nospin",
            "NOPs per second, no spin before blocking",
            lambda: measure_nops(nops // 4, spin_us=0),
        ),
        (
            "endpoint_rtt_nospin_us",
            "Echo round trip, no spin before blocking, median us",
            lambda: measure_endpoint_rtt(spin_us=0),
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
    return report(figures, targets, json_path, spin_us=DEFAULT_SPIN_US, quick=quick)
