"""The native host under stress: many round trips and spawns, random pauses between steps.

A lost wake-up shows as a system where every process waits and nothing
moves. This boots an Echo server, a few clients checking every answer, and
a spawner whose children each call it once, with the host's jitter on (see
kernel/hosts/jitter.py) so that the kernel loop and the processes
interleave in every way they can. It watches the completions the kernel
posts: when none is posted for `stall_s` while work is left (every process
asleep, or some spinning on a ring gone wrong), that is a stall, and the
run stops there and says what each process was waiting for. The test suite
runs it (tests/test_native_stress.py); `capos-playground bench kernel
--stress N` runs a longer one.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

from bench.figures import report
from bench.programs.report import PREFIX
from kernel.abi import Header
from kernel.hosts.jitter import DEFAULT_JITTER_US
from kernel.hosts.native import NativeHost
from kernel.kernel import Kernel
from kernel.manifest import encode_document

PINGERS = 4  # clients of the one Echo server, all at once
ROUND_TRIPS_PER_SPAWN = 40  # the bench's spawns for its round trips, as in the test
STALL_S = 10.0  # no completion posted this long, work left: a lost wake-up
SLICE_S = 0.5  # how often the host loop stops to look at the counters


@dataclass(slots=True)
class StressResult:
    round_trips: int = 0  # completed and answered
    wrong_answers: int = 0
    spawns: int = 0  # children that called their parent and exited 0
    failed_spawns: int = 0
    exit_codes: list[int] = field(default_factory=list)  # the first failed children's
    elapsed_s: float = 0.0
    stall: str = ""  # empty, or what each process waited for when nothing moved
    faults: list[str] = field(default_factory=list)  # contained kernel faults


def stress_manifest(round_trips_each: int, spawns: int) -> bytes:
    params = {"round_trips_each": round_trips_each, "spawns": spawns}
    info = [
        {"name": "console", "source": {"kernel": "console"}},
        {"name": "info", "source": {"kernel": "systemInfo"}},
    ]
    echo = {"name": "echo", "source": {"import": {"service": "echo", "export": "echo"}}}
    services = [
        {
            "name": "echo",
            "binary": "echo-server",
            "exports": [{"name": "echo", "interface": "Echo"}],
            "caps": [],
        },
        *(
            {"name": f"pinger{i}", "binary": "stress-pinger", "caps": [*info, echo]}
            for i in range(PINGERS)
        ),
        {
            "name": "spawner",
            "binary": "stress-spawner",
            "exports": [{"name": "inbox", "interface": "Echo"}],
            "caps": [*info, {"name": "processSpawner", "source": {"kernel": "processSpawner"}}],
        },
    ]
    binaries = {
        "echo-server": "kernel.programs.echo_server",
        "stress-pinger": "bench.programs.stress_pinger",
        "stress-spawner": "bench.programs.stress_spawner",
        "stress-child": "bench.programs.stress_child",
    }
    return encode_document(
        {
            "schemaVersion": 1,
            "kernelParams": {"motd": json.dumps(params), "hostname": "stress"},
            "binaries": [{"name": "init", "module": "kernel.programs.init"}]
            + [{"name": n, "module": m} for n, m in binaries.items()],
            "initConfig": {"init": "init", "services": services},
        }
    )


def run_stress(
    round_trips: int,
    spawns: int,
    *,
    jitter_us: int = DEFAULT_JITTER_US,
    stall_s: float = STALL_S,
) -> StressResult:
    """`round_trips` (a multiple of PINGERS) Echo round trips and `spawns` children."""
    if round_trips % PINGERS:
        raise ValueError(f"round trips must be a multiple of {PINGERS}")
    reports: list[dict] = []

    def console(proc: object, data: bytes) -> None:
        for line in data.decode().splitlines():
            if line.startswith(PREFIX):
                reports.append(json.loads(line[len(PREFIX) :]))
            elif line.strip():
                print(f"  | {line}", file=sys.stderr)

    result = StressResult()
    image = stress_manifest(round_trips // PINGERS, spawns)
    start = time.monotonic()
    with NativeHost(image, console=console, jitter_us=jitter_us) as host:
        host.boot()

        def done() -> bool:
            return len(reports) == PINGERS + 1

        seen, moved_at = _progress(host.kernel), time.monotonic()
        while not done() and not host.kernel.halted:
            host.run(until=done, timeout=SLICE_S)
            now, progress = time.monotonic(), _progress(host.kernel)
            if progress != seen:
                seen, moved_at = progress, now
            elif now - moved_at >= stall_s:
                result.stall = _waiting(host.kernel)
                break
        result.faults = list(host.kernel.faults)
    result.elapsed_s = time.monotonic() - start
    for figures in reports:
        result.round_trips += figures.get("round_trips", 0)
        result.wrong_answers += figures.get("wrong", 0)
        result.spawns += figures.get("spawns", 0)
        result.failed_spawns += figures.get("failed_spawns", 0)
        result.exit_codes += figures.get("exit_codes", [])
    return result


def _progress(kernel: Kernel) -> tuple:
    """Changes whenever the kernel posts a completion, or a process starts or ends.
    (Not entries: a process whose ring went wrong may enter in a loop, doing nothing.)"""
    return tuple((pid, proc.ring.get(Header.CQ_TAIL)) for pid, proc in kernel.processes.items())


def _waiting(kernel: Kernel) -> str:
    """One line per process: what its cap_enter waits for, and what it has."""
    lines = []
    for proc in kernel.processes.values():
        ring = proc.ring
        lines.append(
            f"pid {proc.pid} {proc.binary}: enter_min {ring.get(Header.ENTER_MIN)}, "
            f"available {ring.available()}, sq pending {ring.sq_pending()}, "
            f"calls outstanding {len(proc.replies)}, backlog {len(proc.backlog)}, "
            f"idle wakes {ring.get(Header.IDLE_WAKES)}"
        )
    return "\n".join(lines)


def run_benchmark(round_trips: int, json_path: str | None, jitter_us: int) -> int:
    """`bench kernel --stress N`: the stress run, N round trips, N/40 spawns; exit status 1
    if anything was lost."""
    round_trips -= round_trips % PINGERS
    spawns = max(1, round_trips // ROUND_TRIPS_PER_SPAWN)
    print(
        f"stress: {round_trips} round trips over {PINGERS} clients and {spawns} spawns, "
        f"pauses up to {jitter_us} us between ring steps ...",
        file=sys.stderr,
        flush=True,
    )
    result = run_stress(round_trips, spawns, jitter_us=jitter_us)
    if result.stall:
        print(
            f"STALL: no completion posted for {STALL_S:.0f} s; each process:\n{result.stall}",
            file=sys.stderr,
        )
    figures = {
        "round_trips": result.round_trips,
        "wrong_answers": result.wrong_answers,
        "spawns": result.spawns,
        "failed_spawns": result.failed_spawns,
        "elapsed_s": result.elapsed_s,
        "round_trips_per_s": result.round_trips / result.elapsed_s,
        "stalls": int(bool(result.stall)),
        "kernel_faults": len(result.faults),
    }
    targets = {
        "round_trips": (">=", round_trips),
        "wrong_answers": ("<=", 0),
        "spawns": (">=", spawns),
        "stalls": ("<=", 0),
        "kernel_faults": ("<=", 0),
    }
    report(
        figures,
        targets,
        json_path,
        jitter_us=jitter_us,
        stall=result.stall,
        exit_codes=result.exit_codes,
    )
    lost = (
        result.stall
        or result.faults
        or result.wrong_answers
        or result.round_trips < round_trips
        or result.spawns < spawns
    )
    return 1 if lost else 0
