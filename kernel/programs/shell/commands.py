"""What each shell command does: launching, sessions, and capability inspection.

Every command compiles to typed capability calls on caps the shell holds;
nothing here is privileged. Errors keep capOS's layers visible: a parse or
schema error is caught before anything is sent, a CapException is shown
with its type, a transport error with its code.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from kernel.codec import Method, StructType
from kernel.manual import signature
from kernel.programs.shell import helptext
from kernel.programs.shell.jobs import Job
from kernel.programs.shell.monitoring import MonitorCommands
from kernel.programs.shell.shell import CALL_RESULT_SIZE, Binding, CommandError, Shell
from kernel.programs.shell.syntax import Builtin, Call, CapRef, Launch, Let, ParseError, parse
from kernel.programs.shell.tools import tools_for
from kernel.programs.shell.values import InputError, caps_in, render, show, to_params
from kernel.runtime import Cap, Move, RemoteError, TransportFailure
from kernel.runtime.buffers import BufferExhausted


class Commands:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.rt = shell.rt
        self.builtins: dict[str, Callable[[list[str]], None]] = {
            "help": self.help,
            "man": self.man,
            "apropos": self.apropos,
            "caps": self.caps,
            "methods": self.methods,
            "release": self.release,
            "wait": self.wait,
            "ps": self.ps,
            "kill": self.kill,
            "login": self.login,
            "setup": self.setup,
            "guest": self.guest,
            "logout": self.logout,
            "whoami": self.whoami,
            "history": self.history,
            "clear": self.clear,
            "agent": self.agent,
            **MonitorCommands(shell).builtins,
        }

    # --- dispatch ------------------------------------------------------------------------

    def execute(self, line: str) -> bool:
        """Run one line; False when the shell should exit. Nothing typed ends the shell."""
        try:
            command = parse(line)
            if isinstance(command, Builtin) and command.word == "exit":
                return False
            if isinstance(command, Launch):
                self.launch(command)
            elif isinstance(command, Call):
                self.call(command, bind=None)
            elif isinstance(command, Let):
                self.let(command)
            elif command is not None:
                builtin = self.builtins.get(command.word)
                if builtin is None:
                    raise CommandError(self._unknown_command(command.word))
                builtin(command.args)
        except ParseError as exc:
            self.shell.say(f"syntax error: {exc.message}")
            if self.shell.interactive:
                self.shell.say(f"  {line}\n  {' ' * exc.column}^")
        except CommandError as exc:
            self.shell.say(str(exc))
        except RemoteError as exc:
            self.shell.say(f"error: {exc.type}: {exc.message}")
        except TransportFailure as exc:
            self.shell.say(f"error: {exc}")
        except Exception as exc:  # a bug must cost this line, never the session
            self.shell.say(f"shell: this line failed ({type(exc).__name__}: {exc}); carrying on")
        return True

    def _unknown_command(self, word: str) -> str:
        binding = self.shell.names.get(word)
        if binding is not None and binding.cap is None:  # a let-bound value: show it
            return str(binding.value)
        if binding is not None:
            return f"{word} is a cap: call a method, as in {word}.method(...) (see: methods {word})"
        close = difflib.get_close_matches(word, [*self.builtins, "run", "spawn", "exit"], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"unknown command {word!r}{hint}: type help"

    # --- names -----------------------------------------------------------------------------

    def resolve(self, name: str) -> Cap:
        binding = self.shell.names.get(name)
        if binding is None and name in self.rt.caps:
            raise CommandError(f"{name} is the shell's own: it never passes it on")
        if binding is None:
            close = difflib.get_close_matches(name, list(self.shell.names), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise CommandError(f"no cap named {name!r} in this shell{hint}: type caps")
        if binding.cap is None:
            raise CommandError(f"{name} is a value, not a cap")
        return binding.cap

    # --- launching -------------------------------------------------------------------------

    def spawn_job(self, launch: Launch) -> tuple[Job, list[str]]:
        """Start the child; returns its job and a line for each client of it the shell kept."""
        launcher = self.shell.names.get("launcher")
        if launcher is None or launcher.cap is None:
            raise CommandError(
                f"{launch.mode}: this session holds no launcher (try setup, login or guest)"
            )
        stdio_iface = self.rt.bundle.interface("StdIO").id
        grants = []
        served = []  # the grant names of `new Interface` grants, in order
        for name, ref in launch.grants:
            if ref.new:
                grants.append({"name": name, "source": {"newEndpoint": self._interface_id(ref)}})
                served.append(name)
                continue
            if ref.name == "stdio" and "stdio" not in self.shell.names:
                if not ref.client:
                    raise CommandError(
                        f"grant {name!r}: write client @stdio (the child gets "
                        "the client side of a StdIO endpoint the shell serves)"
                    )
                grants.append({"name": name, "source": {"callerEndpoint": stdio_iface}})
                continue
            cap = self.resolve(ref.name)
            if ref.client and cap.interface is not None and cap.interface.name == "Endpoint":
                grants.append({"name": name, "source": {"clientOf": cap}})
            elif ref.client and not self._is_client_facet(cap):
                actual = cap.interface.name if cap.interface else "cap"
                raise CommandError(
                    f"grant {name!r}: client @{ref.name} needs an endpoint, but "
                    f"@{ref.name} is a {actual} (pass it as @{ref.name})"
                )
            else:
                grants.append({"name": name, "source": {"cap": Move(cap) if ref.move else cap}})
        result = self.rt.call(
            launcher.cap,
            "spawn",
            {
                "name": launch.binary,
                "binaryName": launch.binary,
                "grants": grants,
            },
        )
        job = self.shell.add_job(launch.binary, result["handle"], result["endpoints"])
        self.forget_moved()
        kept = []
        for name, client in zip(served, result["clients"], strict=True):
            free = next(
                n
                for n in (name, *(f"{name}{i}" for i in range(2, 100)))
                if n not in self.shell.names
            )
            self.shell.names[free] = Binding(client, "let")
            kind = client.interface.name if client.interface else "endpoint"
            kept.append(f"{free} = <{kind} cap>: a client of what it serves as {name}")
        return job, kept

    def _interface_id(self, ref) -> int:
        try:
            return self.rt.bundle.interface(ref.name).id
        except KeyError:
            raise CommandError(f"new {ref.name}: no interface {ref.name!r} in the schema") from None

    def _is_client_facet(self, cap: Cap) -> bool:
        """Imported service caps are ClientEndpoint facets typed with the service's interface."""
        kernel_served = {
            "Console",
            "Timer",
            "EntropySource",
            "SystemInfo",
            "ProcessSpawner",
            "ProcessHandle",
            "BootPackage",
            "TerminalSession",
            "SessionManager",
            "UserSession",
            "AuthorityBroker",
            "BrokerAdmin",
            "CredentialStore",
            "Manual",
            "SystemMonitor",
            "Log",
            "Endpoint",
        }
        return cap.interface is None or cap.interface.name not in kernel_served

    def launch(self, launch: Launch) -> None:
        job, kept = self.spawn_job(launch)
        if launch.mode == "spawn":
            self.shell.say(f"[{job.number}] {job.binary} (pid {job.pid})")
        for line in kept:
            self.shell.say(line)
        if launch.mode != "spawn":
            self.shell.run_foreground(job)

    def wait(self, args: list[str]) -> None:
        job = self._job(args, "wait")
        self.shell.run_foreground(job)
        self.shell.say(f"[{job.number}] {job.binary}: {job.status_text}")

    def _job(self, args: list[str], command: str):
        jobs = self.shell.jobs
        if not args:
            if not jobs:
                raise CommandError(f"{command}: no background jobs (start one with spawn)")
            return jobs[max(jobs)]
        text = args[0].lstrip("%")
        if not text.isdigit() or int(text) not in jobs:
            known = ", ".join(f"%{n}" for n in jobs) or "none"
            raise CommandError(f"{command}: no job {args[0]} (jobs: {known})")
        return jobs[int(text)]

    def ps(self, args: list[str]) -> None:
        if not self.shell.jobs:
            self.shell.say("no jobs")
            return
        self.shell.say("JOB  PID  STATE      BINARY")
        for job in self.shell.jobs.values():
            state = job.handle.status()["status"]["state"]
            text = "running" if "running" in state else job.status_text or next(iter(state))
            self.shell.say(f"%{job.number:<3} {job.pid:<4} {text:<10} {job.binary}")

    def kill(self, args: list[str]) -> None:
        job = self._job(args, "kill")
        job.handle.kill()
        self.shell.pump(lambda: job.done or job.number not in self.shell.jobs)

    # --- typed calls ---------------------------------------------------------------------------

    def method(self, target: str, name: str) -> tuple[Cap, Method]:
        """The cap named `target` and its method `name`, or a CommandError saying which exist."""
        cap = self.resolve(target)
        if cap.interface is None:
            raise CommandError(f"{target}: its interface is not in the schema")
        try:
            return cap, cap.interface.method(name)
        except KeyError:
            names = [m.name for m in cap.interface.methods]
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            listing = ", ".join(names) or "none"
            raise CommandError(
                f"{cap.interface.name} has no method {name!r}{hint} (it has: {listing})"
            ) from None

    def call(self, call: Call, bind: str | None) -> None:
        cap, method = self.method(call.target, call.method)
        where = f"{call.target}.{call.method}"
        try:
            params = to_params(method.params, call.args, self.cap_value, where)
        except InputError as exc:
            raise CommandError(str(exc)) from None
        try:
            pending = self.rt.begin(cap, call.method, params, result_size=CALL_RESULT_SIZE)
        except BufferExhausted:
            raise CommandError(f"{where}: too much is in flight in this shell; try again") from None
        results = self.shell.wait_call(pending)
        if results is None:
            self.shell.say(f"{where}: interrupted (its answer will be dropped)")
            return
        self.forget_moved()
        found = caps_in(method.results, results)
        if bind is not None:
            for line in self.bind(bind, method.results, results, found):
                self.shell.say(line)
            return
        for line in show(method.results, results):
            self.shell.say(line)
        for _path, cap_ in found:
            cap_.release()
        if found:
            self.shell.say(f"(caps not kept: let NAME = {where}(...) keeps them)")

    def forget_moved(self) -> None:
        """Names whose cap a call just moved away (`move @name`) name nothing now."""
        for name in [
            n for n, b in self.shell.names.items() if b.cap is not None and not b.cap.cap_id
        ]:
            del self.shell.names[name]
            self.shell.say(f"moved: {name} is no longer held by this shell")

    def cap_value(self, ref: CapRef) -> Cap:
        """The cap `@name` stands for in a typed call's arguments (`values.to_params`)."""
        try:
            return self.resolve(ref.name)
        except CommandError as exc:
            raise InputError(str(exc)) from None

    def bind(
        self, name: str, struct: StructType, results: dict, found: list[tuple[str, Cap]]
    ) -> list[str]:
        """Keep a call's results under `name` (one cap: `name`; several: `name.path`);
        returns a line for each name bound."""
        self._unbind(name)
        names = self.shell.names
        if len(found) == 1:
            names[name] = Binding(found[0][1], "let")
            return [f"{name} = {render(None, found[0][1])}"]
        if not found:
            lines = show(struct, results)
            names[name] = Binding(None, "let", "\n".join(lines))
            return [f"{name}: {line}" for line in lines]
        for path, cap in found:
            names[f"{name}.{path}"] = Binding(cap, "let")
        return [f"{name}.{path} = {render(None, cap)}" for path, cap in found]

    def _bound_under(self, name: str) -> list[str]:
        return [k for k in self.shell.names if k == name or k.startswith(name + ".")]

    def check_bindable(self, name: str) -> None:
        """CommandError unless `name` is free or let-bound (so `let` may reuse it)."""
        for key in self._bound_under(name):
            if self.shell.names[key].origin != "let":
                raise CommandError(f"{key} is part of your session's bundle: pick another name")

    def _unbind(self, name: str) -> None:
        """Release what a let-name held (and its dotted parts) before it is reused."""
        self.check_bindable(name)
        for key in self._bound_under(name):
            binding = self.shell.names.pop(key)
            if binding.cap is not None:
                binding.cap.release()

    def let(self, let: Let) -> None:
        value = let.value
        if isinstance(value, Call):
            self.call(value, bind=let.name)
        elif isinstance(value, CapRef):
            cap = self.resolve(value.name)
            self._unbind(let.name)
            self.shell.names[let.name] = Binding(cap, "alias")
            self.shell.say(f"{let.name} = {render(None, cap)}")
        else:
            if value.mode != "spawn":
                raise CommandError("let takes spawn, not run (run waits for the child to end)")
            job, kept = self.spawn_job(value)
            self._unbind(let.name)
            self.shell.names[let.name] = Binding(job.handle, "let")
            self.shell.say(
                f"[{job.number}] {job.binary} (pid {job.pid}); {let.name} is its ProcessHandle"
            )
            for line in kept:
                self.shell.say(line)

    def release(self, args: list[str]) -> None:
        if len(args) != 1:
            raise CommandError("usage: release NAME")
        name = args[0]
        if name not in self.shell.names and not any(
            k.startswith(name + ".") for k in self.shell.names
        ):
            raise CommandError(f"release: no name {name!r} (see: caps)")
        binding = self.shell.names.get(name)
        if binding is not None and binding.origin == "alias":
            del self.shell.names[name]  # an alias: the cap stays under its first name
        else:
            self._unbind(name)
        self.shell.say(f"released {name}")

    # --- looking at caps -----------------------------------------------------------------------

    def caps(self, args: list[str]) -> None:
        """Every cap this shell holds: its names and its jobs' caps, then its own CapSet."""
        rows = []
        for name, binding in sorted(self.shell.names.items()):
            if binding.cap is None:
                rows.append((name, "(value)", binding.origin))
            else:
                origin = (
                    binding.origin
                    if binding.origin != "bundle"
                    else f"bundle ({self.shell.profile})"
                )
                rows.append((name, _interface_name(binding.cap), origin))
        named = {id(b.cap) for b in self.shell.names.values()}
        for job in self.shell.jobs.values():
            if id(job.handle) not in named:
                rows.append((f"%{job.number}", "ProcessHandle", f"job ({job.binary})"))
            for index, _ in enumerate(job.stdio, 1):
                name = f"%{job.number}.stdio{index if index > 1 else ''}"
                rows.append((name, "Endpoint", "job: a StdIO this shell serves"))
        self._table(rows)
        own = [  # what init gave the shell: used by it, never passed on
            (entry.name, _interface_name(self.rt.caps[entry.name]), "spawn")
            for entry in self.rt.capset
            if self.rt.caps[entry.name].cap_id
        ]
        self.shell.say("The shell's own, never passed on:")
        self._table(own)

    def _table(self, rows: list[tuple[str, str, str]]) -> None:
        width = max((len(r[0]) for r in rows), default=4)
        iwidth = max((len(r[1]) for r in rows), default=9)
        self.shell.say(f"{'NAME':<{width}}  {'INTERFACE':<{iwidth}}  ORIGIN")
        for name, iface, origin in rows:
            self.shell.say(f"{name:<{width}}  {iface:<{iwidth}}  {origin}")

    def methods(self, args: list[str]) -> None:
        if len(args) != 1:
            raise CommandError("usage: methods NAME")
        cap = self.resolve(args[0])
        if cap.interface is None:
            raise CommandError(f"{args[0]}: its interface is not in the schema")
        if not cap.interface.methods:
            self.shell.say(
                f"{cap.interface.name} has no methods"
                + (
                    " (its operations are ring opcodes)"
                    if cap.interface.name in ("Endpoint", "ClientEndpoint")
                    else ""
                )
            )
        for method in cap.interface.methods:
            doc = f"   # {method.doc}" if method.doc else ""
            self.shell.say(
                f"{args[0]}.{method.name}{signature(method.params)} -> "
                f"{signature(method.results)}{doc}"
            )

    # --- sessions -----------------------------------------------------------------------------

    def adopt(self, session: Cap) -> None:
        """Swap the session's bundle in: broker-issued caps replace the old bundle."""
        bundle = self.rt.call(self.shell.broker, "shellBundle", {"session": session})["caps"]
        session.release()
        for name in [n for n, b in self.shell.names.items() if b.origin == "bundle"]:
            binding = self.shell.names.pop(name)
            if binding.cap is not None:  # bundle bindings always hold one
                binding.cap.release()
        for item in bundle:
            if item["name"] in self.shell.names:  # a let-name shadows nothing of the bundle
                self._unbind(item["name"])
            self.shell.names[item["name"]] = Binding(item["cap"], "bundle")
        session_cap = self.shell.names["session"].cap
        assert session_cap is not None  # bound from the bundle just above
        info = session_cap.info()["info"]
        self.shell.profile = info["profile"]
        self.shell.username = info["username"]
        if self.shell.at_prompt:  # an agent's request, served while the person types
            self.shell.editor.retitle(self.shell.prompt_text())

    def _login_result(self, result: dict, verb: str) -> None:
        if "refused" in result:
            raise CommandError(f"{verb}: {result['refused']}")
        self.adopt(result["session"])
        who = self.shell.username or self.shell.profile
        self.shell.say(f"{verb}: now {who} ({self.shell.profile}); type caps to see what you hold")

    def _ask(self, prompt: str, *, hidden: bool = False) -> str:
        answer = self.shell.read_line(prompt, hidden=hidden)
        if answer is None:
            raise CommandError("cancelled")
        return answer

    def login(self, args: list[str]) -> None:
        username = args[0] if args else self._ask("username> ")
        password = self._ask("password> ", hidden=True)
        result = self.rt.call(
            self.shell.sessions, "login", {"username": username, "password": password}
        )["result"]
        self._login_result(result, "login")

    def setup(self, args: list[str]) -> None:
        self.shell.say(
            "setup: creates a volatile operator account (it lasts until the system halts)"
        )
        username = args[0] if args else self._ask("username> ")
        password = self._ask("password> ", hidden=True)
        if self._ask("again> ", hidden=True) != password:
            raise CommandError("setup: the passwords differ; nothing was created")
        result = self.rt.call(
            self.shell.sessions, "setup", {"username": username, "password": password}
        )["result"]
        self._login_result(result, "setup")

    def guest(self, args: list[str]) -> None:
        self._login_result(self.rt.call(self.shell.sessions, "guest")["result"], "guest")

    def logout(self, args: list[str]) -> None:
        self.resolve("session").logout()  # revokes the bundle here and in every child
        self.adopt(self.rt.call(self.shell.sessions, "anonymous")["session"])
        self.shell.say("logout: back to anonymous; caps the old session granted are revoked")

    def whoami(self, args: list[str]) -> None:
        info = self.resolve("session").info()["info"]
        who = info["username"] or "(no account)"
        self.shell.say(
            f"{who}  profile={info['profile']}  session={info['sessionId'][:4].hex()}"
            f"  via {' -> '.join(info['delegationChain'])}"
        )

    # --- agent mode ------------------------------------------------------------------------------

    def agent(self, args: list[str]) -> None:
        model = self._held("LanguageModel", prefer="model")
        if model is None:
            why = (
                "An anonymous session holds none: type guest for the demo bundle, which "
                "has the host's model where it attached one."
                if self.shell.profile == "anonymous"
                else "The host attached none: a tab gets the server's model unless the "
                "server runs none (--no-llm, or the local model is not installed: make llm)."
            )
            raise CommandError(
                "agent: this session holds no LanguageModel cap, so no model can answer "
                f"(caps lists what it holds). {why}"
            )
        for name in args:
            if name not in self.shell.names:
                raise CommandError(f"agent: no cap named {name!r} to offer as tools (see: caps)")
        tools = tools_for(self.shell.names, only=args or None)
        # Imported here: agent mode is rare, and every boot of a shell would import it.
        from kernel.programs.shell.agent import Agent

        Agent(self.shell, model, tools, log=self._held("Log", prefer="logger")).run()

    def _held(self, interface: str, prefer: str) -> Cap | None:
        """A cap of this interface the shell holds (the one named `prefer` first)."""
        names = sorted(self.shell.names.items(), key=lambda item: item[0] != prefer)
        for _, binding in names:
            cap = binding.cap
            if cap is not None and cap.interface is not None and cap.interface.name == interface:
                return cap
        return None

    # --- help ------------------------------------------------------------------------------------

    def help(self, args: list[str]) -> None:
        self.shell.out(helptext.topic(args[0]) if args else helptext.overview())

    def man(self, args: list[str]) -> None:
        if len(args) != 1:
            raise CommandError("usage: man TOPIC   (apropos WORD finds topics)")
        manual = self.resolve("manual")
        lookup = manual.page(topic=args[0])["result"]
        if "page" in lookup:
            page = lookup["page"]
            self.shell.out(
                f"{page['topic']}({page['section']}) - {page['summary']}\n\n{page['body']}"
            )
        else:
            close = ", ".join(lookup["notFound"])
            self.shell.say(
                f"man: no page {args[0]!r}"
                + (f" (close: {close})" if close else "; try apropos WORD")
            )

    def apropos(self, args: list[str]) -> None:
        if len(args) != 1:
            raise CommandError("usage: apropos WORD")
        pages = self.resolve("manual").apropos(word=args[0])["pages"]
        if not pages:
            self.shell.say(f"apropos: nothing about {args[0]!r}")
        for page in pages:
            self.shell.say(f"{page['topic']} ({page['section']}) - {page['summary']}")

    def history(self, args: list[str]) -> None:
        for index, entry in enumerate(self.shell.editor.history.entries, 1):
            self.shell.say(f"{index:>4}  {entry}")

    def clear(self, args: list[str]) -> None:
        self.shell.out(b"\x1b[H\x1b[2J" if self.shell.interactive else b"")


def _interface_name(cap: Cap) -> str:
    return cap.interface.name if cap.interface else "?"
