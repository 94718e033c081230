"""`capos-playground bench kernel`: ring, IPC and spawn figures on the native host.

Each figure is measured inside isolated capOS processes booted from a small
manifest, and endpoint round trips are set against pycapnp's own RPC
measured in the same run. Prints a table and, with --json, writes the
figures for scripts to check.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from bench.programs.report import PREFIX
from kernel.hosts.native import NativeHost
from kernel.manifest import encode_document

TARGETS = {
    "nop_per_s": (">=", 200_000),
    "endpoint_rtt_us": ("<=", "pycapnp_rtt_us"),
    "spawn_ms": ("<=", 20),
}


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


def _run_system(image: bytes, timeout: float) -> dict:
    """Boot natively until some process prints its BENCH line; return its figures."""
    lines: list[str] = []

    def console(proc: object, data: bytes) -> None:
        for line in data.decode().splitlines():
            if line.startswith(PREFIX):
                lines.append(line[len(PREFIX) :])
            elif line.strip():
                print(f"  | {line}", file=sys.stderr)

    with NativeHost(image, console=console) as host:
        host.boot()
        host.run(until=lambda: bool(lines), timeout=timeout)
        faults = list(host.kernel.faults)
    if faults:
        raise RuntimeError(f"kernel faults during the benchmark: {faults}")
    if not lines:
        raise RuntimeError(f"no figures within {timeout} s")
    return json.loads(lines[0])


def measure_nops(count: int) -> float:
    image = _manifest(
        count,
        [{"name": "nop", "binary": "nop", "caps": _kernel_caps("console", "info")}],
        {"nop": "bench.programs.nop"},
    )
    return _run_system(image, timeout=120)["nop_per_s"]


def measure_endpoint_rtt(count: int) -> float:
    image = _manifest(
        count,
        [
            {
                "name": "echo",
                "binary": "echo-server",
                "exports": [{"name": "echo", "interface": "Echo"}],
                "caps": [],
            },
            {
                "name": "client",
                "binary": "client",
                "caps": _kernel_caps("console", "info")
                + [{"name": "echo", "source": {"import": {"service": "echo", "export": "echo"}}}],
            },
        ],
        {"echo-server": "kernel.programs.echo_server", "client": "bench.programs.echo_client"},
    )
    return _run_system(image, timeout=120)["endpoint_rtt_us"]


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
    return _run_system(image, timeout=120)["spawn_ms"]


def _verdict(key: str, figures: dict) -> str:
    op, target = TARGETS[key]
    bound = figures[target] if isinstance(target, str) else target
    met = figures[key] >= bound if op == ">=" else figures[key] <= bound
    return f"{op} {bound:,.1f}  {'met' if met else 'MISSED'}"


def run_benchmark(json_path: str | None, quick: bool = False) -> int:
    scale = 10 if quick else 1
    steps = [
        (
            "nop_per_s",
            "NOP SQEs per second through cap_enter",
            lambda: measure_nops(400_000 // scale),
        ),
        (
            "endpoint_rtt_us",
            "Echo CALL->RECV->RETURN->CQE, median us",
            lambda: measure_endpoint_rtt(5_000 // scale),
        ),
        ("pycapnp_rtt_us", "pycapnp RPC Echo over a socketpair, median us", None),
        (
            "spawn_ms",
            "spawn to the child's first completed call, median ms",
            lambda: measure_spawn(max(5, 40 // scale)),
        ),
    ]
    figures: dict[str, float] = {}
    for key, label, measure in steps:
        print(f"measuring {label} ...", file=sys.stderr, flush=True)
        if key == "pycapnp_rtt_us":
            from bench.pycapnp_echo import measure_pycapnp_rtt_us

            figures[key] = measure_pycapnp_rtt_us(5_000 // scale)
        else:
            figures[key] = measure()
    print()
    print(f"{'figure':<18}{'value':>14}   target")
    for key, _, _ in steps:
        verdict = _verdict(key, figures) if key in TARGETS else "(peer)"
        print(f"{key:<18}{figures[key]:>14,.2f}   {verdict}")
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            **figures,
            "targets": {k: {"op": op, "bound": t} for k, (op, t) in TARGETS.items()},
            "met": {k: _verdict(k, figures).endswith("met") for k in TARGETS},
            "python": platform.python_version(),
            "machine": platform.machine(),
            "quick": quick,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nwrote {path}")
    return 0
