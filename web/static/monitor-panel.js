// The monitoring views: processes, the authority graph, calls, logs and exit
// records, drawn from MonitorSnapshots (schema/capos.capnp) as JSON. The live page
// (web/static/monitor.js) feeds it each snapshot as it comes (`update`, which keeps
// the latest KEEP calls and logs across snapshots, by seq, whatever window each one
// carries); the replay page (web/static/replay.js) shows the state a recording's
// monitor timeline had at the player's time (`show`).
// Only the kernel's own data is shown; nothing here can act on the system.
import { drawGraph } from "/static/monitor-graph.js";
import { CallViews } from "/static/monitor-calls.js";
import { el, processDetail, seconds, table } from "/static/monitor-dom.js";

const LEVELS = ["debug", "info", "warn", "error"];
const TABS = ["processes", "graph", "calls", "logs", "exits"];
const KEEP = 200;

export class MonitorPanel {
  // `tabs`: the views offered, the first shown first; `isOpen()`: whether a new
  // snapshot is drawn at once (else when the panel opens); `charts`: whether the
  // calls view charts the call rate (from every snapshot `update` is given).
  constructor(root, { tabs = TABS, isOpen = () => true, charts = true } = {}) {
    this.root = root;
    this.isOpen = isOpen;
    this.snapshot = null;
    this.recent = { calls: [], logs: [] };
    this.tab = tabs[0];
    this.selected = null; // "pid:N" or an objectId: the node whose detail is shown
    this.logFilter = { pid: "", level: "debug" };
    this.calls = new CallViews({ charts });
    const bar = el("nav", { class: "mon-tabs", role: "tablist" },
      ...tabs.map((name) => {
        const button = el("button", { type: "button", role: "tab", "data-tab": name }, name);
        button.addEventListener("click", () => { this.tab = name; this.render(); });
        return button;
      }));
    this.summary = el("div", { class: "mon-summary" }, "waiting for the kernel…");
    this.body = el("div", { class: "mon-body" });
    root.append(bar, this.summary, this.body);
  }

  update(snapshot) {
    for (const kind of ["calls", "logs"]) {
      const last = this.recent[kind].at(-1)?.seq ?? 0;
      const fresh = snapshot[kind].filter((r) => r.seq > last);
      this.recent[kind] = [...this.recent[kind], ...fresh].slice(-KEEP);
    }
    this.calls.add(snapshot);
    this.snapshot = { ...snapshot, calls: this.recent.calls, logs: this.recent.logs };
    if (this.isOpen()) this.render();
  }

  // A state as it was (a replay's): drawn as it is, nothing carried over from the last.
  show(snapshot) {
    if (snapshot === this.snapshot) return;
    this.snapshot = snapshot;
    if (snapshot) this.render();
    else { this.summary.textContent = "no monitor state yet at this time"; this.body.replaceChildren(); }
  }

  select(key) {
    this.selected = this.selected === key ? null : key;
    this.render();
  }

  render() {
    const snap = this.snapshot;
    for (const button of this.root.querySelectorAll("[data-tab]")) {
      button.setAttribute("aria-selected", String(button.dataset.tab === this.tab));
    }
    if (!snap) return;
    const up = Math.floor(snap.uptimeNs / 1e9);
    this.summary.textContent = `${snap.processes.length} processes, up ${up} s, `
      + `${snap.calls.length} recent calls${snap.tracing ? "" : " (trace off)"}`;
    const names = new Map(snap.processes.map((p) => [p.pid, p.name]));
    for (const e of snap.exits) if (!names.has(e.pid)) names.set(e.pid, e.name);
    const view = {
      processes: () => this.processes(snap, names),
      graph: () => drawGraph(snap, names, this.selected, (key) => this.select(key)),
      calls: () => this.calls.render(snap, names),
      logs: () => this.logs(snap),
      exits: () => this.exits(snap),
    }[this.tab]();
    this.body.replaceChildren(view);
  }

  processes(snap, names) {
    const queued = new Map();
    for (const ep of snap.endpoints) {
      queued.set(ep.ownerPid, (queued.get(ep.ownerPid) ?? 0) + ep.queuedCalls);
    }
    const rows = [...snap.processes].sort((a, b) => a.pid - b.pid).map((p) => {
      const c = p.counters;
      const used = Object.fromEntries(p.ledger.map((u) => [u.resource, u.used]));
      const row = el("tr", { "data-pid": p.pid, class: this.selected === `pid:${p.pid}` ? "selected" : null },
        el("td", {}, p.pid), el("td", {}, p.parentPid || "-"), el("td", {}, p.name),
        el("td", {}, p.state), el("td", {}, c.enters), el("td", {}, c.sqes), el("td", {}, c.cqes),
        el("td", {}, c.errors.reduce((n, e) => n + e.count, 0)), el("td", {}, c.cqOverflow),
        el("td", {}, p.caps.length), el("td", {}, used.outstanding_calls ?? 0),
        el("td", {}, queued.get(p.pid) ?? 0));
      row.addEventListener("click", () => this.select(`pid:${p.pid}`));
      return row;
    });
    const out = el("div", {}, table(
      ["pid", "ppid", "name", "state", "enters", "SQEs", "CQEs", "errs", "ovfl", "caps", "calls", "queue"],
      rows));
    out.firstChild.id = "mon-processes";
    const chosen = snap.processes.find((p) => this.selected === `pid:${p.pid}`);
    if (chosen) out.append(processDetail(chosen, names));
    return out;
  }

  logs(snap) {
    const pids = [...new Map(snap.logs.map((r) => [r.pid, r.process])).entries()];
    const who = el("select", { "aria-label": "process", id: "mon-log-process" },
      el("option", { value: "" }, "all processes"),
      ...pids.map(([pid, name]) => el("option", { value: pid }, `${name}[${pid}]`)));
    who.value = this.logFilter.pid;
    const level = el("select", { "aria-label": "level", id: "mon-log-level" },
      ...LEVELS.map((l) => el("option", { value: l }, `${l} and above`)));
    level.value = this.logFilter.level;
    who.addEventListener("change", () => { this.logFilter.pid = who.value; this.render(); });
    level.addEventListener("change", () => { this.logFilter.level = level.value; this.render(); });
    const floor = LEVELS.indexOf(this.logFilter.level);
    const rows = snap.logs
      .filter((r) => LEVELS.indexOf(r.level) >= floor)
      .filter((r) => !this.logFilter.pid || String(r.pid) === this.logFilter.pid)
      .reverse()
      .map((r) => el("tr", { "data-log": r.seq, class: `level-${r.level}` },
        el("td", {}, seconds(r.atNs)), el("td", {}, r.level),
        el("td", {}, `${r.process}[${r.pid}]`), el("td", {}, r.text)));
    const out = el("div", {}, el("div", { class: "mon-filters" }, who, level));
    out.append(rows.length ? table(["time", "level", "process", "text"], rows)
      : el("p", {}, "no log records (a process writes them through a Log cap)"));
    return out;
  }

  exits(snap) {
    const rows = [...snap.exits].reverse().map((e) => el("tr", { "data-exit": e.pid, class: `exit-${e.kind}` },
      el("td", {}, e.pid), el("td", {}, e.name), el("td", {}, e.kind),
      el("td", {}, e.kind === "exited" ? e.code : e.reason),
      el("td", {}, `${seconds(e.startNs)}–${seconds(e.endNs)}`),
      el("td", {}, e.lastCalls.map((c) => `${c.interface}.${c.method} ${c.result}`).join("; ") || "-")));
    return rows.length ? table(["pid", "name", "ended", "code / reason", "lived (s)", "last calls"], rows)
      : el("p", {}, "no process has ended yet");
  }
}

