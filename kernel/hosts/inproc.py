"""The in-process host: every capOS process is a thread of the test process.

For fast unit tests only: threads share an address space, so nothing here
is isolated. The kernel code is the same the native host runs; one lock
serialises every entry into it, and a condition variable stands in for
the doorbells.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
import traceback
from types import ModuleType
from typing import NoReturn

from kernel.hosts.models.runner import ModelRunner, Provider
from kernel.kernel import Kernel, KernelConfig
from kernel.manual import build_corpus
from kernel.process import Process
from kernel.region import MemoryRegion
from kernel.runtime import ProcessEnded, Runtime


class InProcessHost:
    def __init__(
        self,
        manifest: bytes,
        config: KernelConfig | None = None,
        *,
        terminal: bool | None = None,
        extra_terminals: tuple[str, ...] = (),
        model: Provider | None = None,
    ) -> None:
        """`terminal`: attach one (True: interactive, False: a script), or None for none;
        `extra_terminals`: more script terminals, by name (for several shells);
        `model`: a language model provider, attached as the languageModel kernel cap."""
        self.cond = threading.Condition()
        self.console = bytearray()
        self.screens: dict[str, bytearray] = {}  # what each attached terminal was sent
        self.crashes: dict[int, str] = {}
        self.agent_answers: dict[int, dict] = {}  # AgentResponses, by request id
        self.started: list[Process] = []
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.kernel = Kernel(self, manifest, config, manual=build_corpus())
        if terminal is not None:
            self.kernel.attach_terminal(interactive=terminal)
            self.screens["terminal"] = bytearray()
        for name in extra_terminals:
            self.kernel.attach_terminal(name, interactive=False)
            self.screens[name] = bytearray()
        self._model: ModelRunner | None = None
        if model is not None:
            self._model = ModelRunner(model, self._model_posted)
            self.kernel.attach_model(model.info(), self._model)
        self._timer_thread = threading.Thread(target=self._run_timers, name="timers", daemon=True)

    # --- Host protocol ---------------------------------------------------------------

    def allocate_region(self, pid: int, size: int) -> MemoryRegion:
        return MemoryRegion(bytearray(size))

    def start(self, proc: Process, module: str) -> None:
        program = importlib.import_module(module)
        self.started.append(proc)
        thread = threading.Thread(
            target=self._run_process, args=(proc, program), name=f"pid{proc.pid}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def stop(self, proc: Process) -> None:
        self.cond.notify_all()  # a waiting thread sees its dead ring and unwinds

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def entropy(self, size: int) -> bytes:
        return os.urandom(size)

    def console_write(self, proc: Process, data: bytes) -> None:
        self.console += data

    def terminal_write(self, name: str, data: bytes) -> None:
        self.screens[name] += data

    def agent_reply(self, response: dict) -> None:
        self.agent_answers[response["id"]] = response
        self.cond.notify_all()

    def _model_posted(self, stream: int, event: dict) -> None:
        model = self.kernel.model
        assert model is not None  # the runner posting this was attached with it
        with self.cond:
            model.feed(stream, event)
            self.kernel.take_woken()
            self.cond.notify_all()

    @property
    def screen(self) -> bytearray:
        return self.screens["terminal"]

    # --- a terminal, as a user at it ------------------------------------------------

    def type(self, data: bytes, terminal: str = "terminal") -> None:
        with self.cond:
            self.kernel.terminals[terminal].feed(data)
            self.kernel.take_woken()
            self.cond.notify_all()

    def resize(self, cols: int, rows: int, terminal: str = "terminal") -> None:
        with self.cond:
            self.kernel.terminals[terminal].resize(cols, rows)
            self.kernel.take_woken()
            self.cond.notify_all()

    def ask_agent(self, request: dict, timeout: float = 10.0) -> dict:
        """Submit an outside agent's request (an AgentRequest dict) and wait for the answer."""
        with self.cond:
            self.kernel.agents.submit(request)
            self.kernel.take_woken()
            self.cond.notify_all()
            if not self.cond.wait_for(lambda: request["id"] in self.agent_answers, timeout):
                raise TimeoutError(f"no answer to agent request {request['id']} in {timeout} s")
            return self.agent_answers.pop(request["id"])

    def hang_up(self, terminal: str = "terminal") -> None:
        with self.cond:
            self.kernel.terminals[terminal].close()
            self.kernel.take_woken()
            self.cond.notify_all()

    # --- running -------------------------------------------------------------------------

    def boot(self) -> Process:
        with self.cond:
            init = self.kernel.boot()
        self._timer_thread.start()
        return init

    def wait_halted(self, timeout: float) -> bool:
        """True once every process has ended."""
        with self.cond:
            return self.cond.wait_for(lambda: self.kernel.halted, timeout)

    def shutdown(self) -> None:
        with self.cond:
            self._stopping = True
            for pid in list(self.kernel.processes):
                self.kernel.kill(pid, "host shutdown")
            self.cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._model is not None:
            self._model.close()

    def _run_process(self, proc: Process, program: ModuleType) -> None:
        syscalls = _ThreadSyscalls(self, proc)
        try:
            code = program.main(Runtime(proc.ring.region, syscalls))
            syscalls.exit(int(code or 0))
        except ProcessEnded:
            pass
        except Exception:
            self.crashes[proc.pid] = traceback.format_exc()
            with self.cond:
                self.kernel.lost(proc.pid, "crashed: " + traceback.format_exc(limit=1).strip())
                self.cond.notify_all()

    def _run_timers(self) -> None:
        with self.cond:
            while not self._stopping and not self.kernel.halted:
                deadline = self.kernel.next_deadline()
                timeout = None if deadline is None else max(0, deadline - self.now_ns()) / 1e9
                self.cond.wait(timeout if timeout is not None else 0.5)
                self.kernel.run_timers(self.now_ns())
                if self.kernel.take_woken():
                    self.cond.notify_all()


class _ThreadSyscalls:
    def __init__(self, host: InProcessHost, proc: Process) -> None:
        self.host = host
        self.proc = proc

    def cap_enter(self, min_complete: int, timeout_ns: int | None) -> int:
        host, proc = self.host, self.proc
        ring = proc.ring
        with host.cond:
            host.kernel.enter(proc.pid)
            if host.kernel.take_woken():
                host.cond.notify_all()
            host.cond.wait_for(
                lambda: (
                    not proc.alive or ring.available() >= min_complete or not proc.expecting
                ),  # more than can come: return what there is
                None if timeout_ns is None else timeout_ns / 1e9,
            )
            if not proc.alive:
                raise ProcessEnded(f"pid {proc.pid} ended")
            return ring.available()

    def exit(self, code: int) -> NoReturn:
        with self.host.cond:
            self.host.kernel.exit(self.proc.pid, code)
            self.host.cond.notify_all()
        raise ProcessEnded(f"pid {self.proc.pid} exited")
