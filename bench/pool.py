"""`capos-playground bench pool`: the QEMU pool, measured as a client sees it.

Runs the real server (a subprocess) and drives sessions over HTTP and the
terminal websocket:

  boot_ms       a cold boot, QEMU start to the shell's prompt (one VM, no server)
  handout_ms    POST /api/sessions to the first prompt byte on the websocket (warm pool), median
  echo_p50_ms,  a keystroke sent over the websocket to its echo coming back
  echo_p99_ms
  sessions_held concurrent idle sessions (a client attached to each) this machine holds
                with echo p99 under 100 ms on one of them: a ramp, each step measured
                once, that says why it stopped (bench/density.py)
  idle_vm_pss_mib  an idle QEMU's proportional set size at the ramp's top step, median
  idle_vm_cpu_percent  an idle QEMU's CPU use (% of one core) there, median
  resume_ms     reconnecting to a suspended session until its screen is back and its
                shell echoes a keystroke (the VM restored from its file), median
  suspend_mib   the file a suspended session's VM is kept in (server/vmstate.py), median
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from bench.density import ramp
from bench.figures import report
from bench.poolserver import PROMPT, PoolServer, TerminalClient, pool_server
from server.accel import probe_accel
from server.image import ensure_image
from server.stream import OutputStream
from server.vm import Vm, VmConfig

TARGETS = {
    "handout_ms": ("<=", 50),
    "echo_p50_ms": ("<=", 5),
    "boot_ms": ("<=", 3000),
    "sessions_held": (">=", 50),
    "resume_ms": ("<=", 1000),
}
IDLE_TIMEOUT_S = 2
HELD_CEILING = 80  # sessions the ramp tries at most (the server is configured to allow them)
HELD_STEP = 5


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure_boot(accel: str) -> float:
    async def boot() -> float:
        vm = Vm(ensure_image(), VmConfig(accel=accel), OutputStream(), name="capos-bench-boot")
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(vm.run())
            await vm.ready.wait()
            vm.kill("measured")
        return (vm.ready_at - vm.started_at) * 1000

    return asyncio.run(boot())


def measure_handout(server: PoolServer, count: int) -> list[float]:
    times = []
    for _ in range(count):
        server.wait_for(lambda: server.pool()["warm"] >= 1, "a warm VM")
        start = time.perf_counter()
        session = server.new_session()
        client = TerminalClient(server, session)
        client.read_until(lambda c=client: PROMPT in c.text, "prompt")
        times.append((time.perf_counter() - start) * 1000)
        client.close()
        server.http.delete(f"/api/sessions/{session['id']}")
    return times


def measure_echo(client: TerminalClient, count: int) -> list[float]:
    """Keystrokes one at a time, each timed to its echo; the line is erased after."""
    times = []
    for i in range(count):
        key = "abcdefghij"[i % 10]
        start = time.perf_counter()
        client.send(type="input", data=key)
        before = len(client.text)
        client.read_until(lambda b=before, k=key: k in client.text[b:], "echo", timeout=10)
        times.append((time.perf_counter() - start) * 1000)
        if i % 50 == 49:
            client.command("\x15")  # Ctrl-U: clear the typed line, then a fresh prompt
    client.command("\x15")
    return times


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def measure_resume(server: PoolServer) -> tuple[float, float, float]:
    """One session suspended while idle, then reconnected: (screen back, shell live) in ms,
    and the size of its state file in MiB."""
    session = server.new_session()
    client = TerminalClient(server, session)
    client.read_prompt()
    client.command("counter.increment(by=1)")
    seen = client.offset
    client.close()
    server.wait_for(lambda: server.state(session) == "suspended", "a suspend", 60)
    info = server.http.get(f"/api/sessions/{session['id']}").json()
    suspend_mib = info["suspended"]["state_bytes"] / (1 << 20)
    start = time.perf_counter()
    client = TerminalClient(server, session)
    client.read_until(lambda: client.offset >= seen, "the screen")
    screen = (time.perf_counter() - start) * 1000
    client.send(type="input", data="x")
    client.read_until(lambda: client.offset > seen, "an echo from the restored shell")
    live = (time.perf_counter() - start) * 1000
    client.close()
    server.http.delete(f"/api/sessions/{session['id']}")
    return screen, live, suspend_mib


def run_benchmark(json_path: str | None, quick: bool = False, accel: str = "auto") -> int:
    figures: dict[str, float | None] = {}
    if accel == "auto":
        accel = asyncio.run(probe_accel(ensure_image()))
    _say(f"measuring a cold boot to the prompt ({accel}) ...")
    figures["boot_ms"] = statistics.median(measure_boot(accel) for _ in range(1 if quick else 3))
    memory_mib = 256
    ceiling = 6 if quick else HELD_CEILING
    # The server's caps allow the whole ramp, so a refusal is the machine's, not a setting's.
    options = ["--accel", accel, "--warm", "3", "--max-vms", str(ceiling + 4)]
    options += ["--max-sessions", str(ceiling + 16)]
    options += ["--idle-timeout", str(IDLE_TIMEOUT_S), "--memory", str(memory_mib)]
    # One client (this process) holds every session and socket of the capacity ramp.
    options += ["--client-sessions", "1000", "--client-suspended", "1000"]
    options += ["--client-terminals", "1000"]
    with pool_server(*options) as server:
        _say("measuring handout (POST to the first prompt byte, warm pool) ...")
        figures["handout_ms"] = statistics.median(measure_handout(server, 3 if quick else 7))
        _say("measuring resume from a suspended session ...")
        resumes = [measure_resume(server) for _ in range(1 if quick else 3)]
        screen, live, saved = zip(*resumes, strict=True)
        figures["resume_screen_ms"] = statistics.median(screen)
        figures["resume_ms"] = statistics.median(live)
        figures["suspend_mib"] = statistics.median(saved)
        _say("measuring keystroke echo ...")
        probe = TerminalClient(server, server.new_session())
        probe.read_prompt()
        # Boots in the background compete for the CPU: measure once the pool is full.
        server.wait_for(lambda: server.pool()["booting"] == 0, "the pool to settle")
        echoes = measure_echo(probe, 100 if quick else 300)
        figures["echo_p50_ms"] = statistics.median(echoes)
        figures["echo_p99_ms"] = _p99(echoes)
        _say(f"measuring sessions held (adding idle sessions, up to {ceiling}) ...")
        held = ramp(
            server,
            lambda: _p99(measure_echo(probe, 100)),
            step=2 if quick else HELD_STEP,
            ceiling=ceiling,
        )
        probe.close()
    _say(f"  stopped: {held.stop_reason}")
    top = held.top
    figures["sessions_held"] = top.sessions if top else 1
    figures["idle_vm_pss_mib"] = top.vm_pss_mib if top else None
    figures["idle_vm_cpu_percent"] = top.vm_cpu_percent if top else None
    labels = {"sessions_held": f"stopped: {held.stop_reason}"}
    return report(
        figures,
        TARGETS,
        json_path,
        labels,
        accel=accel,
        vm_memory_mib=memory_mib,
        quick=quick,
        sessions_held_stop_reason=held.stop_reason,
        sessions_held_load=top.loadavg if top else None,
        sessions_held_echo_p99_ms=top.echo_p99_ms if top else None,
        sessions_held_steps=[vars(step) for step in held.steps],
    )
