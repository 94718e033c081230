"""The monitoring commands: `top`, `log`, `trace` and `graph`, over a SystemMonitor cap.

They show what the monitor cap the shell holds can see, nothing more: the
bundle's `monitor` sees the whole system, and a narrower view kept with
`let mine = monitor.subtree(pid=N)` can be passed by name (`top mine`).
"""

from __future__ import annotations

from collections.abc import Callable

from kernel.programs.shell.lineedit import printable
from kernel.programs.shell.shell import CommandError, Shell
from kernel.runtime import Cap
from kernel.runtime.buffers import BufferExhausted

LEVELS = ("debug", "info", "warn", "error")
SNAPSHOT_RESULT = 24 * 1024  # well inside the shell's 56 KiB buffer area
MAX_CALLS = 100  # what one snapshot answer carries
MAX_LOGS = 100
REFRESH_NS = 1_000_000_000
EXITS_SHOWN = 4


class MonitorCommands:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.rt = shell.rt
        self.builtins: dict[str, Callable[[list[str]], None]] = {
            "top": self.top,
            "log": self.log,
            "trace": self.trace,
            "graph": self.graph,
        }

    # --- plumbing ------------------------------------------------------------------------

    def _monitor(self, name: str, command: str) -> Cap:
        binding = self.shell.names.get(name)
        if binding is None or binding.cap is None:
            raise CommandError(
                f"{command}: this session holds no monitor named {name!r} "
                "(a SystemMonitor cap; see: caps)"
            )
        cap = binding.cap
        if cap.interface is None or cap.interface.name != "SystemMonitor":
            actual = cap.interface.name if cap.interface else "cap"
            raise CommandError(f"{command}: {name} is a {actual}, not a SystemMonitor")
        return cap

    def _snapshot(self, monitor: Cap, calls: int = 0, logs: int = 0) -> dict:
        try:
            return self.rt.call(
                monitor,
                "snapshot",
                {"maxCalls": calls, "maxLogs": logs},
                result_size=SNAPSHOT_RESULT,
            )["snapshot"]
        except BufferExhausted:
            raise CommandError(
                "the shell's buffer area is busy with its children's I/O; try again"
            ) from None

    def _split(self, args: list[str], command: str) -> tuple[Cap, list[str]]:
        """The monitor named by a leading arg (a SystemMonitor cap), else `monitor`; the rest."""
        if args and self._is_monitor(args[0]):
            return self._monitor(args[0], command), args[1:]
        return self._monitor("monitor", command), args

    def _is_monitor(self, name: str) -> bool:
        binding = self.shell.names.get(name)
        cap = binding.cap if binding else None
        return (
            cap is not None
            and cap.interface is not None
            and (cap.interface.name == "SystemMonitor")
        )

    # --- top -----------------------------------------------------------------------------

    def top(self, args: list[str]) -> None:
        if len(args) > 1:
            raise CommandError("usage: top [MONITOR]")
        monitor = self._monitor(args[0] if args else "monitor", "top")
        timer = self.shell.names.get("timer")
        if not self.shell.interactive or timer is None or timer.cap is None:
            for line in self.frame(self._snapshot(monitor), rows=1000):
                self.shell.say(line)
            return
        rows = self.rt.call(self.shell.terminal, "size")["size"]["rows"] or 24
        self.shell.out(b"\x1b[?1049h\x1b[?25l")  # the alternate screen, cursor hidden
        try:
            while True:
                lines = self.frame(self._snapshot(monitor), rows=rows - 1)
                screen = "\x1b[H" + "".join(line + "\x1b[K\r\n" for line in lines) + "\x1b[J"
                self.shell.out(screen.encode())
                tick = self.rt.begin(timer.cap, "sleep", {"ns": REFRESH_NS})
                if not self.shell.wait_or_key(tick):
                    break
        finally:
            self.shell.out(b"\x1b[?25h\x1b[?1049l")

    def frame(self, snap: dict, rows: int) -> list[str]:
        procs = sorted(snap["processes"], key=lambda p: p["pid"])
        seconds = snap["uptimeNs"] // 1_000_000_000
        scope = f"pid {snap['scopePid']} and descendants" if snap["scopePid"] else "whole system"
        head = [
            f"top - up {seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}, "
            f"{len(procs)} processes, {scope}"
            + ("" if not self.shell.interactive else "   (any key quits)"),
            f"{'PID':>4} {'PPID':>4} {'NAME':<16} {'STATE':<8} {'ENTERS':>7} {'SQES':>7} "
            f"{'CQES':>7} {'ERRS':>5} {'OVFL':>4} {'CAPS':>4} {'CALLS':>5} {'QUEUE':>5}",
        ]
        queued: dict[int, int] = {}
        for ep in snap["endpoints"]:
            queued[ep["ownerPid"]] = queued.get(ep["ownerPid"], 0) + ep["queuedCalls"]
        body = []
        for p in procs:
            c = p["counters"]
            ledger = {u["resource"]: u["used"] for u in p["ledger"]}
            errors = sum(e["count"] for e in c["errors"])
            body.append(
                f"{p['pid']:>4} {p['parentPid'] or '-':>4} {p['name'][:16]:<16} "
                f"{p['state']:<8} {c['enters']:>7} {c['sqes']:>7} {c['cqes']:>7} "
                f"{errors:>5} {c['cqOverflow']:>4} {len(p['caps']):>4} "
                f"{ledger.get('outstanding_calls', 0):>5} {queued.get(p['pid'], 0):>5}"
            )
        exits = [
            f"  pid {e['pid']} {e['name']}: {e['kind']}"
            + (f" {e['code']}" if e["kind"] == "exited" else f" ({e['reason']})")
            for e in snap["exits"][-EXITS_SHOWN:]
        ]
        tail = ["recent exits:", *exits] if exits else []
        room = max(rows - len(head) - len(tail), 1)
        if len(body) > room:
            body = body[: room - 1] + [f"  ... {len(body) - room + 1} more"]
        return head + body + tail

    # --- log -------------------------------------------------------------------------------

    def log(self, args: list[str]) -> None:
        monitor, rest = self._split(args, "log")
        level = next((a for a in rest if a in LEVELS), "debug")
        who = [a for a in rest if a not in LEVELS]
        snap = self._snapshot(monitor, logs=MAX_LOGS)
        floor = LEVELS.index(level)
        records = [
            r
            for r in snap["logs"]
            if LEVELS.index(r["level"]) >= floor and _matches(who, r["pid"], r["process"])
        ]
        if not records:
            self.shell.say(
                "log: no records"
                + (" matching that" if rest else "")
                + ' (processes write them with a Log cap: logger.write(level=info, text="..."))'
            )
        for r in records:
            self.shell.say(
                f"{r['atNs'] / 1e9:10.3f} {r['level']:<5} {r['process']}[{r['pid']}]: "
                + printable(r["text"])
            )

    # --- trace -----------------------------------------------------------------------------

    def trace(self, args: list[str]) -> None:
        monitor, rest = self._split(args, "trace")
        count = next((int(a) for a in rest if a.isdigit()), 20)
        who = [a for a in rest if not a.isdigit()]
        snap = self._snapshot(monitor, calls=MAX_CALLS)
        names = {p["pid"]: p["name"] for p in snap["processes"]}
        names.update({e["pid"]: e["name"] for e in snap["exits"]})

        calls = [
            c
            for c in snap["calls"]
            if _matches(who, c["callerPid"], names.get(c["callerPid"], ""))
            or _matches(who, c["calleePid"], names.get(c["calleePid"], ""))
        ][-count:]
        if not snap["tracing"]:
            self.shell.say("trace: the kernel's IPC trace is off")
        if not calls:
            self.shell.say("trace: no calls" + (" matching that" if rest else ""))
            return
        self.shell.say(
            f"{'TIME':>10} {'CALLER':<18} {'CALLEE':<18} {'CALL':<32} {'LATENCY':>9} RESULT"
        )
        for c in calls:
            self.shell.say(
                f"{c['atNs'] / 1e9:10.3f} {_label(c['callerPid'], names, '(outside)'):<18} "
                f"{_label(c['calleePid'], names, 'kernel'):<18} "
                f"{c['interface'] + '.' + c['method']:<32} {_duration(c['latencyNs']):>9} "
                f"{c['result']}"
            )

    # --- graph -----------------------------------------------------------------------------

    def graph(self, args: list[str]) -> None:
        monitor, rest = self._split(args, "graph") if len(args) > 1 else (None, args)
        if len(rest) != 1:
            raise CommandError("usage: graph NAME   (a cap this shell holds, or a process)")
        snap = self._snapshot(monitor or self._monitor("monitor", "graph"))
        name = rest[0]
        procs = {p["pid"]: p for p in snap["processes"]}
        binding = self.shell.names.get(name)
        if binding is not None and binding.cap is not None:
            mine = procs.get(self.rt.pid)
            slot = next(
                (c for c in (mine or {}).get("caps", []) if c["capId"] == binding.cap.cap_id), None
            )
            if slot is None:
                raise CommandError(f"graph: this monitor cannot see the shell's own cap {name!r}")
            self._object(name, slot, procs)
            return
        matches = [p for p in procs.values() if name in (p["name"], p["binary"], str(p["pid"]))]
        if not matches:
            raise CommandError(
                f"graph: {name!r} is neither a cap this shell holds nor a process this "
                "monitor sees (see: caps, top)"
            )
        for proc in matches:
            self._process(proc, procs)

    def _holders(self, object_id: str, procs: dict[int, dict]) -> list[tuple[dict, dict]]:
        return [(p, c) for p in procs.values() for c in p["caps"] if c["objectId"] == object_id]

    def _object(self, name: str, slot: dict, procs: dict[int, dict]) -> None:
        server = slot["servedBy"]
        by = (
            f"pid {server} ({procs[server]['name']})"
            if server in procs
            else ("the kernel" if server == 0 else f"pid {server}")
        )
        self.shell.say(f"{name}: {slot['interface']}, {slot['object']}, served by {by}")
        self.shell.say("held by:")
        for proc, cap in self._holders(slot["objectId"], procs):
            self.shell.say(f"  {_hold(proc, cap)}")

    def _process(self, proc: dict, procs: dict[int, dict]) -> None:
        self.shell.say(f"pid {proc['pid']} {proc['name']} ({proc['binary']}) holds:")
        names = {pid: p["name"] for pid, p in procs.items()}
        for cap in proc["caps"]:
            server = cap["servedBy"]
            by = "itself" if server == proc["pid"] else _label(server, names, nobody="kernel")
            self.shell.say(f"  {cap['name'] or '-':<16} {cap['interface']:<18} served by {by}")
        served = {
            c["objectId"]: c
            for p in procs.values()
            for c in p["caps"]
            if c["servedBy"] == proc["pid"]
        }
        if served:
            self.shell.say("holders of what it serves:")
        for object_id, cap in sorted(served.items()):
            holders = [
                f"{p['name']}[{p['pid']}]"
                for p, _ in self._holders(object_id, procs)
                if p["pid"] != proc["pid"]
            ]
            self.shell.say(
                f"  {cap['interface']} ({object_id}): {', '.join(holders) or 'nobody else'}"
            )


def _label(pid: int, names: dict[int, str], nobody: str) -> str:
    """`name[pid]`, or `nobody` for pid 0 (the kernel, or a caller outside the view)."""
    return f"{names.get(pid, '?')}[{pid}]" if pid else nobody


def _matches(who: list[str], pid: int, name: str) -> bool:
    return not who or any(w == name or w == str(pid) for w in who)


def _hold(proc: dict, cap: dict) -> str:
    label = f"{proc['name']}[{proc['pid']}]"
    as_name = f" as {cap['name']}" if cap["name"] else ""
    revoked = f", revoked: {cap['revoked']}" if cap["revoked"] else ""
    return f"{label:<20}{as_name:<16} ({cap['transfer']}, {cap['origin']}{revoked})"


def _duration(ns: int) -> str:
    if ns < 1_000_000:
        return f"{ns / 1000:.0f}us"
    return f"{ns / 1e6:.1f}ms"
