"""`help` and `help TOPIC`: what each command does, with playground additions marked.

Commands marked [ext] are playground extensions, as kernel.differences lists
them; the rest are capOS's own (run, spawn, wait, login, setup, guest, man,
apropos, exit).
"""

from __future__ import annotations

from kernel.differences import extension_commands

COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "run a program in the foreground and wait for it",
        """\
run "BINARY" with { NAME: @CAP, NAME: client @CAP, ... }

Starts BINARY as a new process holding exactly the caps written, nothing
implicit, and gives it the terminal until it exits. Ctrl-C kills it.
  @name          pass a cap this shell holds (see: caps)
  client @name   pass the client side of an endpoint
  client @stdio  a fresh StdIO endpoint this shell serves for the child
  new Interface  a fresh endpoint the child serves; you keep a client of it
  move @name     give the cap away: the child gets it, this shell no longer has it
Example: run "chat-client" with { stdio: client @stdio, chat: client @chat }
""",
    ),
    "spawn": (
        "start a program in the background",
        """\
spawn "BINARY" with { ... }

Like run, but the shell keeps the terminal. Prints the job number:
use wait %N to bring it to the foreground, kill %N to end it.
Example: spawn "counter-server" with { counter: new Counter }
  (a second counter service; you hold counter2, a client of it)
""",
    ),
    "wait": (
        "bring a background job to the foreground until it ends",
        """\
wait [%N]      the most recent job, or job N
""",
    ),
    "ps": ("list this shell's jobs", "ps\n"),
    "kill": ("end a job through its ProcessHandle", "kill [%N]\n"),
    "caps": (
        "list the caps this shell holds",
        """\
caps

Every cap the shell holds, with its interface and origin: the broker-issued
bundle of this session's profile, let bindings, the shell's own CapSet
(its terminal: never passed on) and its jobs' handles and StdIO endpoints.
A shell can do nothing else.
""",
    ),
    "methods": ("list a cap's methods with their types", "methods NAME\n"),
    "calls": (
        "call a method: NAME.method(field=value, ...)",
        """\
NAME.method(field=value, ...)

Checked against the schema before anything is sent: an unknown method, a
wrong type or a missing field is named. Values:
  "text"  b"bytes"  42  -7  0x1f  3.5  true  false  null  [1, 2]
  { field: value }   @name (a cap, copied)   move @name (given away)   operator (an enum name)
Bool and List parameters may be left out (false, empty).
Examples:  timer.now()    entropy.getRandom(len=8)
""",
    ),
    "let": (
        "keep a call's result caps under a name",
        """\
let NAME = CAP.method(...)     keep the result (its caps stay held)
let NAME = spawn "..."         keep a child's ProcessHandle
let NAME = @CAP                another name for a cap
One cap in the result: NAME is that cap. Several: NAME.field names each.
""",
    ),
    "release": ("give back a let-bound cap (RELEASE)", "release NAME\n"),
    "login": (
        "log in: asks username> and a hidden password>",
        """\
login [USERNAME]

Checks the account through the SessionManager; on success the broker's
operator bundle replaces this session's caps. Failures are rate-limited.
""",
    ),
    "setup": (
        "create a volatile operator account, then log in",
        """\
setup [USERNAME]

Asks for a password twice (hidden). The account lasts until the system halts.
""",
    ),
    "guest": (
        "switch to the guest profile: the demo bundle",
        """\
guest

The SessionManager issues a guest session and the broker's guest bundle
replaces this session's caps: a launcher, the demo services (echo, counter,
paperclips, the model), a timer, a logger and a monitor. An anonymous shell
holds none of them. logout revokes them again.
""",
    ),
    "logout": (
        "end the session, then back to the anonymous profile",
        """\
logout

Every cap the broker issued for the session is revoked, in this shell and in
every child it was granted to: their calls fail with disconnected.
""",
    ),
    "whoami": ("this session's profile and provenance", "whoami\n"),
    "man": (
        "read a manual page",
        "man TOPIC      (topics: apropos WORD; interfaces: man Console)\n",
    ),
    "apropos": ("find manual pages about a word", "apropos WORD\n"),
    "top": (
        "a live process table from the monitor cap",
        """\
top [MONITOR]

Every process the monitor sees: pid, parent, state, ring counters (cap_enter
dispatches, SQEs, CQEs, errors, CQ overflows), caps held, outstanding calls
and calls queued on its endpoints, then the latest exit records. Refreshes
every second until you press a key. MONITOR is a SystemMonitor cap (default:
monitor); a narrower one shows less:  let mine = monitor.subtree(pid=9)
""",
    ),
    "log": (
        "the kernel log: records processes wrote through a Log cap",
        """\
log [MONITOR] [LEVEL] [PROCESS ...]

LEVEL (debug, info, warn, error) shows that level and above; PROCESS is a
name or pid. Write a record yourself:  logger.write(level=info, text="hi")
""",
    ),
    "trace": (
        "the latest calls in the kernel's IPC trace",
        """\
trace [MONITOR] [N] [PROCESS ...]

The last N calls (default 20) the monitor sees: caller, callee (kernel for
kernel services), interface.method, latency and result (ok, exception or a
transport error). PROCESS (a name or pid) keeps the calls it made or served.
""",
    ),
    "graph": (
        "who holds caps to what",
        """\
graph [MONITOR] NAME

NAME a cap this shell holds: the object behind it, who serves it, and every
process holding a cap to it. NAME a process (name, binary or pid): the caps
it holds, and who holds caps to the objects it serves.
""",
    ),
    "history": ("the lines typed so far", "history\n"),
    "clear": ("clear the screen", "clear\n"),
    "agent": (
        "agent mode: a language model proposes calls, this shell runs them",
        """\
agent [CAP ...]

The model (named when agent mode starts) sees the methods of the caps this
shell holds (or only of the CAPs named) as typed tools, never the caps. Each
call it proposes is checked against the schema and asks you first:
y runs it, a allows that tool for this session, n refuses, d denies it.
In agent mode: tools, allow|ask|deny TOOL|all, help, exit. Ctrl-C stops the
model or the running call. The built-in local model (SmolLM2-135M) is a demo
of the mechanism, not a capable assistant: read what it proposes.
""",
    ),
    "help": ("this help; help TOPIC for more", "help [TOPIC]\n"),
    "exit": ("leave the shell", "exit\n"),
}

KEYS = """\
Keys: Left/Right, Home/End (Ctrl-A/E), Up/Down history, Tab completes commands,
caps and methods, Ctrl-C interrupts the foreground child or call, Ctrl-D ends input.
"""


def overview() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["Commands ([ext] marks playground extensions to capOS's shell):"]
    lines += [f"  {name:<{width}}  {_summary(name)}" for name in COMMANDS]
    lines.append("help TOPIC for details; man TOPIC for the manual (man Console, man run).")
    return "\n".join(lines) + "\n" + KEYS


def topic(name: str) -> str:
    entry = COMMANDS.get(name)
    if entry is None:
        known = ", ".join(COMMANDS)
        return f"help: no topic {name!r}. Topics: {known}\n"
    return f"{name}: {_summary(name)}\n\n{entry[1]}"


def _summary(name: str) -> str:
    summary = COMMANDS[name][0]
    return f"[ext] {summary}" if name in extension_commands() else summary
