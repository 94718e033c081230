"""How many idle sessions this machine holds: the `sessions_held` ramp of `bench pool`.

Idle sessions (a client attached to each) are added a step at a time; after each step
the probe session's keystroke echo is measured once, with each idle QEMU's proportional
set size (PSS: its private pages plus its share of the pages it shares with other
processes, from /proc/PID/smaps_rollup) and CPU use. The ramp stops at the first of:
echo p99 over the limit, MemAvailable about to fall under a margin, the server refusing
a session, or the ceiling. It reports the last step under the limit and why it stopped.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.poolserver import PoolServer, TerminalClient

P99_LIMIT_MS = 100
MEMORY_MARGIN_MIB = 2048  # MemAvailable kept for the rest of the machine
CPU_WINDOW_S = 5.0  # idle CPU is measured over this long at each step


@dataclass
class Step:
    sessions: int  # the probe's included
    echo_p99_ms: float
    vm_pss_mib: float  # median over the server's QEMUs
    vm_cpu_percent: float  # median over the server's QEMUs, of one core
    available_mib: float
    loadavg: str


@dataclass
class Held:
    top: Step | None  # the last step under the limit
    stop_reason: str
    steps: list[Step]


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def qemu_pids(server_pid: int) -> list[int]:
    """The server's QEMU processes (its children named qemu-system-*)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(server_pid) and fields.get("Name", "").startswith(
            "qemu-system"
        ):
            pids.append(int(entry.name))
    return pids


def pss_mib(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return None


def _cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def idle_vms(server_pid: int, window_s: float = CPU_WINDOW_S) -> tuple[float, float]:
    """(median PSS in MiB, median CPU in % of one core over `window_s`) of the server's
    QEMUs, left alone meanwhile."""
    pids = qemu_pids(server_pid)
    before = {pid: _cpu_ticks(pid) for pid in pids}
    time.sleep(window_s)
    ticks_per_s = 100  # USER_HZ
    cpu = [
        (after - start) / ticks_per_s / window_s * 100
        for pid, start in before.items()
        if start is not None and (after := _cpu_ticks(pid)) is not None
    ]
    pss = [size for pid in pids if (size := pss_mib(pid)) is not None]
    if not pss or not cpu:
        raise RuntimeError("the server runs no QEMU")
    return statistics.median(pss), statistics.median(cpu)


def ramp(
    server: PoolServer,
    echo_p99: Callable[[], float],
    *,
    step: int,
    ceiling: int,
    margin_mib: float = MEMORY_MARGIN_MIB,
) -> Held:
    """Add idle sessions `step` at a time beside the probe session (which `echo_p99`
    measures) until one of the stop conditions above."""
    assert server.process is not None  # its QEMUs are found as its children
    held: list[TerminalClient] = []
    steps: list[Step] = []
    start_mib = available_mib()
    reason = f"the ceiling of {ceiling} sessions was reached"
    try:
        while len(held) + 1 < ceiling:
            adding = min(step, ceiling - len(held) - 1)
            # Each session so far cost this much MemAvailable (or, before the first step, as
            # much as a warm VM's PSS): would the next step leave the margin?
            per_session = (
                (start_mib - available_mib()) / len(held)
                if held
                else idle_vms(server.process.pid, 0.1)[0]
            )
            left = available_mib() - adding * per_session
            if left < margin_mib:
                reason = (
                    f"memory: {adding} more sessions at {per_session:.0f} MiB each would leave "
                    f"{left:.0f} MiB available, under the {margin_mib:.0f} MiB margin"
                )
                break
            try:
                for _ in range(adding):
                    client = TerminalClient(server, server.new_session(timeout=600))
                    client.read_prompt()
                    held.append(client)
            except RuntimeError as exc:  # new_session: a refusal other than a full pool
                reason = f"the server refused session {len(held) + 2}: {exc}"
                break
            server.wait_for(lambda: server.pool()["booting"] == 0, "the pool to settle", 600)
            pss, cpu = idle_vms(server.process.pid)
            measured = Step(
                len(held) + 1,
                echo_p99(),
                pss,
                cpu,
                available_mib(),
                Path("/proc/loadavg").read_text().strip(),
            )
            _say(
                f"  {measured.sessions} sessions: echo p99 {measured.echo_p99_ms:.1f} ms, "
                f"QEMU PSS {pss:.1f} MiB, CPU {cpu:.2f}%, available "
                f"{measured.available_mib:.0f} MiB, load {measured.loadavg}"
            )
            steps.append(measured)
            if measured.echo_p99_ms > P99_LIMIT_MS:
                reason = (
                    f"echo p99 {measured.echo_p99_ms:.0f} ms at {measured.sessions} sessions, "
                    f"over {P99_LIMIT_MS} ms"
                )
                break
    except (AssertionError, TimeoutError) as exc:  # a session that did not come up
        reason = f"a session failed at {len(held) + 1} sessions: {exc}"
    finally:
        for client in held:
            client.close()
    under = [s for s in steps if s.echo_p99_ms <= P99_LIMIT_MS]
    return Held(under[-1] if under else None, reason, steps)
