"""`capos-playground bench pool`: the QEMU pool, measured as a client sees it.

Runs the real server (a subprocess) and drives sessions over HTTP and the
terminal websocket:

  boot_floor_ms a bare guest's cold boot: the same kernel, initramfs and QEMU command with
                CPython itself as PID 1, QEMU start to the prompt it prints (bench/guestboot.py)
  boot_ms       our guest's cold boot, QEMU start to the shell's prompt (one VM, no server),
                booted in turn with the bare guest; its target is 1.5 x boot_floor_ms
  handout_ms    POST /api/sessions, the websocket connected and the saved screen replayed,
                Enter sent: to the first byte of the fresh prompt the guest writes (warm
                pool), median; handout_screen_ms: POST to the replayed screen's prompt
  fork_ms       POST /api/sessions/{id}/fork of a session running a program (the counter
                client), the fork's websocket connected and the source's screen replayed, a
                line typed: to the first byte the fork's guest writes in answer, median
                (each fork with the pool settled: the last fork gone and, after the
                first, the spare QEMU a fork starts on up)
  fork_source_pause_ms  how long the source was stopped for each fork (the server's
                measure, in the fork's answer), median
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
from bench.guestboot import boot_pair
from bench.poolserver import PoolServer, TerminalClient, pool_server
from server.accel import probe_accel
from server.image import ensure_image

TARGETS = {
    "handout_ms": ("<=", 50),
    "echo_p50_ms": ("<=", 5),
    "sessions_held": (">=", 50),
    "resume_ms": ("<=", 1000),
    "fork_ms": ("<=", 500),
    "fork_source_pause_ms": ("<=", 200),
}
BOOT_OVER_FLOOR = 1.5  # boot_ms's target, a multiple of boot_floor_ms measured in the same run
LABELS = {
    "boot_floor_ms": "bare guest: same kernel, initramfs and QEMU, CPython as PID 1, to its prompt",
    "boot_ms": "our guest: QEMU start to the shell's prompt, booted in turn with the bare guest",
    "handout_ms": "POST, websocket, saved screen replayed, Enter: to the guest's fresh prompt",
    "fork_ms": "POST fork, websocket, source's screen replayed, a line: to the fork's answer",
}
IDLE_TIMEOUT_S = 2
HELD_CEILING = 80  # sessions the ramp tries at most (the server is configured to allow them)
HELD_STEP = 5


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure_handout(server: PoolServer, count: int) -> tuple[list[float], list[float]]:
    """A handed-out VM's screen is the template's, replayed from the server's copy: the clock
    stops only at output the guest itself writes, the prompt after an Enter. Also when the
    replayed screen was in."""
    times, screens = [], []
    for _ in range(count):
        server.wait_for(lambda: server.pool()["warm"] >= 1, "a warm VM")
        start = time.perf_counter()
        session = server.new_session()
        client = TerminalClient(server, session)
        client.read_prompt()  # the replayed screen
        screens.append((time.perf_counter() - start) * 1000)
        prompt = client.text.rsplit("\n", 1)[-1].split("\r")[-1]  # e.g. "anonymous@capos> "
        typed = len(client.text)
        client.send(type="input", data="\r")
        arrivals: list[tuple[int, float]] = []  # (text length after a frame, when it came)
        while (fresh := client.text.find(prompt, typed)) < 0:
            if client.exit is not None:
                raise AssertionError(f"the session ended before its prompt ({client.exit})")
            client.next_frame(timeout=60)
            arrivals.append((len(client.text), time.perf_counter()))
        times.append((next(t for end, t in arrivals if end > fresh) - start) * 1000)
        client.close()
        server.http.delete(f"/api/sessions/{session['id']}")
    return times, screens


COUNTER = 'run "counter" with { stdio: client @stdio, counter: client @counter }'
COUNTER_PROMPT = "[counter]> "


def measure_fork(server: PoolServer, count: int) -> tuple[list[float], list[float]]:
    """Forks of one session running the counter client: (request to the fork's first
    byte of its own, the source's pause) in ms, each. The fork's screen is the source's,
    replayed by the server, so the clock stops only at output the fork's guest writes:
    its answer to a line typed once that screen is in."""
    source = server.new_session()
    client = TerminalClient(server, source)
    client.read_prompt()
    client.command("guest")  # the launcher and the counter are the guest bundle's
    client.send(type="input", data=COUNTER + "\r")
    client.read_until(lambda: client.text.endswith(COUNTER_PROMPT), "the counter's prompt")
    times, pauses = [], []
    for _ in range(count):
        # Settled: no VM booting, the last fork gone, and (after the first) the spare up.
        server.wait_for(
            lambda: (pool := server.pool())["booting"] == 0 and (pool["spare"] or not times),
            "the pool to settle",
        )
        start = time.perf_counter()
        answer = server.http.post(f"/api/sessions/{source['id']}/fork")
        if answer.status_code != 201:
            raise AssertionError(f"no fork: {answer.status_code} {answer.text}")
        fork = answer.json()
        pauses.append(fork["fork"]["source_pause_ms"])
        copy = TerminalClient(server, fork)
        copy.read_until(lambda c=copy: c.text.endswith(COUNTER_PROMPT), "the source's screen")
        replayed = len(copy.text)
        copy.send(type="input", data="get\r")
        copy.read_until(lambda c=copy, n=replayed: len(c.text) > n, "the fork's answer")
        times.append((time.perf_counter() - start) * 1000)
        copy.close()
        server.http.delete(f"/api/sessions/{fork['id']}")
        server.wait_for(lambda f=fork: server.state(f) == "ended", "the fork's end")
    client.close()
    server.http.delete(f"/api/sessions/{source['id']}")
    return times, pauses


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
    client.command("guest")
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
    _say(f"measuring cold boots to the prompt, a bare guest's and ours ({accel}) ...")
    bare, ours = boot_pair(ensure_image(), accel, 1 if quick else 3)
    figures["boot_floor_ms"] = statistics.median(bare)
    figures["boot_ms"] = statistics.median(ours)
    targets = {**TARGETS, "boot_ms": ("<=", BOOT_OVER_FLOOR * figures["boot_floor_ms"])}
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
        _say("measuring handout (POST to the guest's prompt after an Enter, warm pool) ...")
        handouts, screens = measure_handout(server, 3 if quick else 7)
        figures["handout_ms"] = statistics.median(handouts)
        figures["handout_screen_ms"] = statistics.median(screens)
        _say("measuring fork (a session running a program, copied to a new one) ...")
        forks, pauses = measure_fork(server, 3 if quick else 7)
        figures["fork_ms"] = statistics.median(forks)
        figures["fork_source_pause_ms"] = statistics.median(pauses)
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
    labels = {**LABELS, "sessions_held": f"stopped: {held.stop_reason}"}
    return report(
        figures,
        targets,
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
