"""The browser host: the kernel in one Web Worker, each process in a worker of its own.

Each process's region is a SharedArrayBuffer shared only by its worker and
the kernel's; each side's Python works on its own copy of it (see sab.py).
Doorbells are Atomics: a process bumps its ring's DOORBELL and the kernel's
bell, then waits on its ring's WAKE; the kernel waits on its bell, scans the
rings whose DOORBELL moved, and bumps WAKE for each process its work woke.
The page's main thread creates the workers (a pre-warmed pool) and relays
the terminal; it reaches the kernel through more shared buffers, terminal
input, a queue of ended workers and the model's events, because the
kernel's worker is always inside Atomics.wait, never in its event loop.

A tab has no model of its own: the page asks the server which model it
runs before boot (`model_info`), and the LanguageModel kernel cap's
generations go to the page, which relays them to the server's model over a
websocket (web/static/model-relay.js, server/modelapi.py) and queues the
events back, one JSON line each.

Outside agents reach the tab's shell the same way a VM's: the server sends
each AgentRequest over the tab's relay (server/sessions/tabagent.py), the
page queues it as a JSON line for the kernel's AgentPort (`agent` in the
page's events), and the shell's answer goes back to the page
(`bridge.agentReply`), which relays it to the server.

The JavaScript side is web/static/*-worker.js, ring-port.js and play.js;
`bridge` is the object the kernel worker hands to `run_kernel`. One
crossing per pass of the kernel's loop (`step`) publishes what the kernel
wrote, wakes the processes it woke, sleeps, and takes what the rung rings
submitted; the pids go both ways in a list of words (`_pids`).
"""

from __future__ import annotations

import importlib
import json
import os
import time
from functools import cache
from typing import NoReturn

from pyodide.ffi import to_js

from kernel import selfcheck
from kernel.abi import Header
from kernel.codec import Bundle
from kernel.hosts.monitorfeed import QUIET_MS, MonitorFeed
from kernel.hosts.sab import SabRegion
from kernel.kernel import Kernel, KernelConfig
from kernel.ledger import Resource
from kernel.manifest import build, default_manifest, load_document, validate
from kernel.manual import build_corpus
from kernel.process import Process
from kernel.ring import UserRing
from kernel.runtime import ProcessEnded, Runtime

HOUSEKEEPING_MS = 1000  # the longest the kernel sleeps with nothing due
MAX_PIDS = 4096  # processes one pass can wake: far past what a tab's workers allow
OVER_BUDGET = -2  # the process's enter: the worker's heap is past the ring's MEMORY_LIMIT_MIB
ENDED_CRASHED = 1  # why a worker ended without `exit` (play.js writes these)
ENDED_OVER_BUDGET = 2


class OverBudget(ProcessEnded):
    """The worker's WebAssembly heap outgrew the process's memory budget."""


class PageModel:
    """The tab's model backend: the page relays each generation to the server's model."""

    def __init__(self, bridge) -> None:
        self.bridge = bridge

    def start(self, stream: int, request: dict) -> None:
        self.bridge.modelStart(stream, json.dumps(request))

    def cancel(self, stream: int) -> None:
        self.bridge.modelCancel(stream)

    def close(self) -> None:
        """The page closes its socket with the tab."""


class BrowserHost:
    def __init__(
        self, bridge, cols: int, rows: int, memory_mib: int = 0, model_info: dict | None = None
    ) -> None:
        """`model_info`: the server's model (a ModelInfo dict), or None where it runs none."""
        self.bridge = bridge
        self._size = (cols, rows)
        config = KernelConfig(limits=(("memory_mib", memory_mib),)) if memory_mib else None
        manifest, corpus = default_system()
        self.kernel = Kernel(self, manifest, config, manual=corpus)
        self.terminal = self.kernel.attach_terminal(interactive=True, cols=cols, rows=rows)
        if model_info is not None:
            self.kernel.attach_model(model_info, PageModel(bridge))
        self.feed = MonitorFeed(self.kernel, bridge.monitor)  # the page's monitoring views
        # [count, pid, ...]: the pids to wake on the way out of a pass, the rung ones back
        self._pid_list = bytearray(4 * (1 + MAX_PIDS))
        self._pids = memoryview(self._pid_list).cast("I")
        bridge.listen(self._pid_list)

    # --- Host protocol -----------------------------------------------------------------

    def allocate_region(self, pid: int, size: int) -> SabRegion:
        return SabRegion(size, lambda copy: self.bridge.newRegion(size, copy), pulls=False)

    def start(self, proc: Process, module: str) -> None:
        region = proc.ring.region
        assert isinstance(region, SabRegion)  # allocate_region made it
        self.bridge.spawn(proc.pid, module, region.port)

    def stop(self, proc: Process) -> None:
        self.bridge.stop(proc.pid)

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def entropy(self, size: int) -> bytes:
        return os.urandom(size)

    def console_write(self, proc: Process, data: bytes) -> None:
        self.bridge.output(to_js(data.replace(b"\n", b"\r\n")))

    def terminal_write(self, name: str, data: bytes) -> None:
        self.bridge.output(to_js(data))

    def agent_reply(self, response: dict) -> None:
        """The shell answered an outside agent: the page relays it to the server."""
        self.bridge.agentReply(json.dumps(response))

    def _agent_requests(self, data: bytes) -> None:
        """Lines of {"id", "request"}: AgentRequests the page relayed from the server, for
        the shell to serve. AgentPort refuses (answers) one that does not encode."""
        for line in data.splitlines():
            try:
                item = json.loads(line)
                request_id, request = item["id"], item["request"]
            except (ValueError, TypeError, KeyError):
                continue  # not from the relay; no id to answer on
            if (
                isinstance(request, dict)
                and isinstance(request_id, int)
                and 0 <= request_id < 1 << 32
            ):
                self.kernel.agents.submit({**request, "id": request_id})

    def _model_events(self, data: bytes) -> None:
        """Lines of {"stream", "event"} the page relayed from the server's model."""
        for line in data.splitlines():
            try:
                item = json.loads(line)
                stream, event = item["stream"], item["event"]
            except (ValueError, TypeError, KeyError):
                continue  # not from the relay; no stream to answer on
            model = self.kernel.model
            if isinstance(stream, int) and model is not None:
                model.feed(stream, event)  # which checks the event

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        kernel = self.kernel
        step, pids = self.bridge.step, self._pids  # looked up once: each lookup crosses
        processes, now_ns = kernel.processes, time.monotonic_ns
        kernel.boot()
        wait_ms = 0.0
        while not kernel.halted:
            page = step(wait_ms)  # publish, wake, sleep, take: the pass's one crossing
            if page:
                self._page_events(self.bridge.pageEvents().to_py())
            rung = pids[0]
            for index in range(1, rung + 1):
                proc = processes.get(pids[index])
                if proc is not None:
                    self._doorbell(proc)
            now = now_ns()
            kernel.run_timers(now)
            self.feed.tick(now, quiet=not (rung or page))
            self._wake()
            deadline = kernel.next_deadline()
            longest = QUIET_MS if self.feed.waiting else HOUSEKEEPING_MS
            wait_ms = (
                longest if deadline is None else max(0.0, min(longest, (deadline - now_ns()) / 1e6))
            )
        self.bridge.publish()  # the last pass's exits and wakes

    def _page_events(self, state: dict) -> None:
        """Terminal input, model events, agent requests, workers that ended, a resize: what
        the page queued."""
        if len(state["input"]):
            self.terminal.feed(bytes(state["input"]))
        if len(state["agent"]):
            self._agent_requests(bytes(state["agent"]))
        if len(state["model"]) and self.kernel.model is not None:
            self._model_events(bytes(state["model"]))
        for pid, reason in zip(state["ended"][::2], state["ended"][1::2], strict=True):
            self._lost(pid, reason)
        size = (state["cols"], state["rows"])
        if size != self._size:
            self._size = size
            self.terminal.resize(*size)

    def _lost(self, pid: int, reason: int) -> None:
        """A worker ended without `exit`: a crash record for the kernel and the visitor."""
        proc = self.kernel.processes.get(pid)
        if proc is None:
            return
        if reason == ENDED_OVER_BUDGET:
            budget = proc.ledger.limits[Resource.MEMORY_MIB]
            why = f"ran past its memory budget ({budget} MiB)"
        else:
            why = "crashed in its worker"
        self.kernel.lost(pid, why)
        self.bridge.output(to_js(f"\r\ncapOS: pid {pid} ({proc.name}) {why}\r\n".encode()))

    def _doorbell(self, proc: Process) -> None:
        ring = proc.ring
        if ring.get(Header.EXIT_REQUESTED):
            code = ring.get(Header.EXIT_CODE)
            self.kernel.exit(proc.pid, code - (1 << 32) if code >= 1 << 31 else code)
        else:
            self.kernel.enter(proc.pid)

    def _wake(self) -> None:
        """List the pids the next `step` wakes."""
        pids = self._pids
        count = 0
        for proc in self.kernel.take_woken():
            ring = proc.ring
            if proc.alive and ring.available() < ring.get(Header.ENTER_MIN):
                if proc.expecting or ring.sq_pending():
                    continue  # what it waits for can still come
                ring.set(Header.IDLE_WAKES, ring.get(Header.IDLE_WAKES) + 1)
            count += 1
            pids[count] = proc.pid
        pids[0] = count


class BrowserSyscalls:
    """cap_enter and exit for a process in its own worker: Atomics, no polling.

    Both run in JavaScript (`kernel`, from process-worker.js): cap_enter is
    one call across the FFI, which flushes the ring's copy, rings, waits and
    takes back the completions.
    """

    def __init__(self, ring: UserRing, kernel) -> None:
        self.ring = ring
        self._enter, self._exit = kernel.enter, kernel.exit

    def cap_enter(self, min_complete: int, timeout_ns: int | None) -> int:
        timeout_ms = -1 if timeout_ns is None else timeout_ns / 1e6
        available = self._enter(min_complete, timeout_ms)
        if available == OVER_BUDGET:
            raise OverBudget("this process ran past its memory budget")
        if available < 0:
            raise ProcessEnded("the kernel ended this process")
        return available

    def exit(self, code: int) -> NoReturn:
        ring = self.ring
        ring.set(Header.EXIT_CODE, code & 0xFFFFFFFF)
        ring.set(Header.EXIT_REQUESTED, 1)
        self._exit()  # flushes both, rings
        raise ProcessEnded(f"exited with {code}")


SELF_CHECK: list[str] = []  # the self-check's report, from when the snapshot was made


@cache
def default_system() -> tuple[bytes, list[dict]]:
    """The default system's encoded manifest and its manual corpus. Made once, before the
    snapshot (warm_up): building them takes a kernel worker about 0.4 s, on the prompt's path."""
    return build(), build_corpus()


def warm_up() -> None:
    """Before the memory snapshot every worker restores (web/tools/make-snapshot.mjs).

    Loads the schema bundle, builds the default system and its manual
    (`default_system`), imports every program of the default
    manifest, so a spawn pays only for what is new, and runs the self-check
    in this WebAssembly build of Python: a failure stops the snapshot, and
    with it the server, before any tab boots.
    """
    Bundle.default()
    default_system()
    for binary in validate(load_document(default_manifest()))["binaries"]:
        importlib.import_module(binary["module"])
    SELF_CHECK[:] = [f"capOS self-check: {line}\n" for line in selfcheck.run()]


def run_kernel(bridge, cols: int, rows: int, memory_mib: int = 0, model: str = "") -> None:
    """The kernel worker's whole life: boot the default system and serve it.

    `model`: the server's ModelInfo as JSON (GET /api/model), empty where it has none."""
    BrowserHost(bridge, cols, rows, memory_mib, json.loads(model) if model else None).run()


def run_process(module: str, size: int, kernel) -> int:
    """A process worker's whole life: run `module.main` on the ring `kernel` attaches."""
    region = SabRegion(size, kernel.attach, pulls=True)
    syscalls = BrowserSyscalls(UserRing.attach(region), kernel)
    try:
        program = importlib.import_module(module)
        syscalls.exit(int(program.main(Runtime(region, syscalls)) or 0))
    except OverBudget:
        return ENDED_OVER_BUDGET  # the worker reports it; the kernel ends the process
    except ProcessEnded:
        return 0
