"""The native capability shell: an ordinary process holding a TerminalSession.

It starts anonymous, with the bundle the AuthorityBroker issues for that
profile, and never hands its terminal to anyone: children get StdIO
endpoints it serves. Everything runs on one thread around one reactor:
`pump` waits for whichever of the shell's outstanding requests completes
first (terminal input, a resize, a child's StdIO call, a child's exit, a
typed call) and runs that request's handler.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kernel.programs.shell.history import History
from kernel.programs.shell.jobs import Job, StdioRequest, StdioServer
from kernel.programs.shell.lineedit import Event, Interrupt, Line, LineEditor
from kernel.runtime import Cap, Pending, RemoteError, Runtime, TransportFailure

RESIZE_RESULT = 256  # bytes: a TerminalSize in a message, with room to spare
READ_CHUNK = 4096
# A typed call's result buffer, at the prompt and for an outside agent: a whole-system
# MonitorSnapshot fits (the buffer area takes buffers this large from its top end).
CALL_RESULT_SIZE = 16 * 1024


class CommandError(Exception):
    """A command refused before or after calling anything; the message is for the user."""


@dataclass
class Binding:
    """A name the shell can use: `@name` in grants, `name.method()` in calls."""

    cap: Cap | None
    origin: str  # "bundle", "let", ...
    value: object = None  # for let-bound plain results


class Shell:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.terminal = rt.cap("terminal", "TerminalSession")
        self.sessions = rt.cap("sessionManager", "SessionManager")
        self.broker = rt.cap("authorityBroker", "AuthorityBroker")
        self.interactive = self.terminal.info()["interactive"]
        # The size the editor fits; a waitResize, kept pending, says when it changes.
        self._size = self.terminal.size()["size"] if self.interactive else {"cols": 80}
        self.editor = LineEditor(
            write=self._terminal_write,
            interactive=self.interactive,
            history=History(),
            complete=self._complete,
            width=self._size["cols"],
        )
        self.names: dict[str, Binding] = {}
        self.profile = "anonymous"
        self.username = ""
        self.hostname = "capos"
        self.jobs: dict[int, Job] = {}
        self.foreground: Job | None = None
        self.events: deque[Event] = deque()
        self.input_ended = False
        self.stdio = StdioServer(rt)
        self._watch: dict[int, Callable[[int], None]] = {}
        self._terminal_read: Pending | None = None
        self._resize_wait: Pending | None = None
        self._next_job = 1
        self.completer: Callable[[str], list[str]] | None = None
        self.at_prompt = False  # the editor is reading a line for the shell itself

    def prompt_text(self) -> str:
        return f"{self.username or self.profile}@{self.hostname}> "

    # --- output ------------------------------------------------------------------------

    def _terminal_write(self, data: bytes) -> None:
        self.rt.call(self.terminal, "write", {"data": data})

    def out(self, text: str | bytes) -> None:
        """Show output; above the line being edited, if one is."""
        # Text may quote an outside agent's request: a lone surrogate shows escaped.
        data = text.encode(errors="backslashreplace") if isinstance(text, str) else text
        if self.interactive:
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self.editor.reading:
            self.editor.print_above(data)
        else:
            self._terminal_write(data)

    def say(self, text: str) -> None:
        self.out(text + "\n")

    # --- the reactor -----------------------------------------------------------------------

    def watch(self, user_data: int, handler: Callable[[int], None]) -> None:
        self._watch[user_data] = handler

    def pump(self, until: Callable[[], bool]) -> None:
        """Serve completions until `until()` holds (input, children, calls)."""
        while not until():
            self._ensure_terminal_read()
            self._ensure_resize_wait()
            user_data = self.rt.ready(list(self._watch))
            handler = self._watch.pop(user_data)
            handler(user_data)

    def _ensure_terminal_read(self) -> None:
        if self._terminal_read is None and not self.input_ended:
            pending = self.rt.begin(
                self.terminal, "read", {"maxBytes": READ_CHUNK}, result_size=READ_CHUNK + 256
            )
            self._terminal_read = pending
            self.watch(pending.user_data, self._on_terminal_input)

    def _on_terminal_input(self, user_data: int) -> None:
        pending, self._terminal_read = self._terminal_read, None
        assert pending is not None  # this handler watches the read it made
        result = self.rt.result(pending)
        if result["eof"]:
            self.input_ended = True
            self.events.extend(self.editor.feed_eof())
        else:
            self.events.extend(self.editor.feed(result["data"]))

    def _ensure_resize_wait(self) -> None:
        if self._resize_wait is None and self.interactive and not self.input_ended:
            # Its answer is one small struct; the default 8 KiB kept pending would leave
            # too little of the buffer area for a whole-system snapshot an agent asks for.
            pending = self.rt.begin(
                self.terminal, "waitResize", {"known": self._size}, result_size=RESIZE_RESULT
            )
            self._resize_wait = pending
            self.watch(pending.user_data, self._on_resize)

    def _on_resize(self, user_data: int) -> None:
        """The window changed size while we waited: refit the line being edited now, as a
        tty's SIGWINCH would, not when the next prompt is drawn."""
        pending, self._resize_wait = self._resize_wait, None
        assert pending is not None  # this handler watches the wait it made
        self._size = self.rt.result(pending)["size"]
        self.editor.resize(self._size["cols"])

    def next_event(self) -> Event:
        self.pump(lambda: bool(self.events))
        return self.events.popleft()

    def read_line(self, prompt: str, *, hidden: bool = False) -> str | None:
        """A line from the user (None: Ctrl-C or end of input)."""
        self.events.extend(self.editor.prompt(prompt, hidden=hidden))
        event = self.next_event()
        return event.text if isinstance(event, Line) else None

    def wait_call(self, pending: Pending) -> dict | None:
        """A call's results, or None if the user pressed Ctrl-C first (the call is abandoned)."""
        done: list[bool] = []
        self.watch(pending.user_data, lambda _: done.append(True))
        self.pump(lambda: bool(done) or any(isinstance(e, Interrupt) for e in self.events))
        if not done:
            self._watch.pop(pending.user_data, None)
            self.rt.abandon(pending)
            self.events = deque(e for e in self.events if not isinstance(e, Interrupt))
            return None
        return self.rt.result(pending)

    def wait_or_key(self, pending: Pending) -> bool:
        """Wait for `pending`; False, abandoning it, if a key or the end of input comes first."""
        done: list[bool] = []
        self.watch(pending.user_data, lambda _: done.append(True))
        self.pump(
            lambda: bool(done) or bool(self.events) or self.editor.typeahead or self.input_ended
        )
        if done:
            self.rt.result(pending)
            return True
        self._watch.pop(pending.user_data, None)
        self.rt.abandon(pending)
        self.editor.drop_typeahead()
        self.events = deque(e for e in self.events if not isinstance(e, Interrupt))
        return False

    # --- children ------------------------------------------------------------------------------

    def add_job(self, binary: str, handle: Cap, stdio: list[Cap]) -> Job:
        pid = handle.status()["status"]["pid"]
        job = Job(self._next_job, binary, handle, pid, stdio)
        self._next_job += 1
        self.jobs[job.number] = job
        for endpoint in stdio:
            self.watch(self.stdio.listen(job, endpoint), lambda ud: self._on_stdio(job, ud))
        job.waiting = self.rt.begin(handle, "wait")
        self.watch(job.waiting.user_data, lambda _: self._on_exit(job))
        return job

    def _on_stdio(self, job: Job, user_data: int) -> None:
        endpoint, _ = job.recvs[user_data]
        incoming = self.stdio.take(job, user_data)
        if incoming is None:
            return  # the endpoint was released: the child is done
        if not job.done:
            self.watch(self.stdio.listen(job, endpoint), lambda ud: self._on_stdio(job, ud))
        request = self.stdio.handle(job, endpoint, incoming)
        if isinstance(request, bytes):
            self.out(request)
        elif isinstance(request, StdioRequest):
            job.reads.append(request)

    def _on_exit(self, job: Job) -> None:
        assert job.waiting is not None  # add_job began the wait this handler watches
        try:
            job.exit_code = self.rt.result(job.waiting)["exitCode"]
            state = job.handle.status()["status"]["state"]
            job.status_text = (
                f"killed ({state['killed']})" if "killed" in state else f"exit {job.exit_code}"
            )
        except (RemoteError, TransportFailure) as exc:
            job.exit_code = -1
            job.status_text = f"lost ({exc})"
        for told in job.exited:
            told()
        for endpoint in job.stdio:
            endpoint.release()  # its pending RECV completes CANCELLED
        for user_data in list(job.recvs):
            self._watch.pop(user_data, None)
            self.watch(user_data, lambda ud: self._drop_recv(job, ud))
        job.stdio = []
        if job is not self.foreground:
            self.out(f"[{job.number}] done  {job.binary}  ({job.status_text})\n")
            self.forget(job)

    def _drop_recv(self, job: Job, user_data: int) -> None:
        self.stdio.take(job, user_data)

    def forget(self, job: Job) -> None:
        self.jobs.pop(job.number, None)
        job.handle.release()

    def run_foreground(self, job: Job) -> None:
        """Give the child the terminal until it exits; Ctrl-C kills it."""
        self.foreground = job
        try:
            while not job.done:
                if job.reads and not self.editor.reading:
                    request = job.reads[0]
                    self.events.extend(self.editor.prompt(request.prompt, request.hidden))
                self.pump(
                    lambda: (
                        job.done
                        or bool(self.events)
                        or (bool(job.reads) and not self.editor.reading)
                    )
                )
                while self.events and not job.done:
                    self._foreground_event(job, self.events.popleft())
        finally:
            self.foreground = None
        if self.editor.reading:  # the child ended mid-read: drop the half-typed line
            self.editor.cancel()
        if job.exit_code not in (0, None):
            self.say(f"{job.binary}: {job.status_text}")
        self.forget(job)

    def _foreground_event(self, job: Job, event: Event) -> None:
        if isinstance(event, Interrupt):
            job.handle.kill()
            return
        if not job.reads:
            return
        request = job.reads.pop(0)
        if isinstance(event, Line):
            self.stdio.answer_line(request, event.text)
        else:  # end of input: this read, and every later one, sees eof
            self.stdio.answer_line(request, None)
            for later in job.reads:
                self.stdio.answer_line(later, None)
            job.reads.clear()

    # --- completion -----------------------------------------------------------------------------

    def _complete(self, text: str) -> list[str]:
        return self.completer(text) if self.completer else []
