// A recording's monitor timeline (server/monitortimeline.py): keyframes (`k`) of
// the system monitor's state and deltas (`d`) from the state before, each at its
// time in seconds on the cast's clock, and perhaps a note (`n`) that it stopped
// early. `stateAt(t)` is the state at t: the last keyframe at or before t with the
// deltas after it applied, so a seek anywhere costs a bounded amount of work.
// Pure: no DOM, so the tests run it in Node too.

const FORMAT = "capos-monitor-timeline";
const SCALARS = ["seq", "uptimeNs", "scopePid", "tracing"];

export class Timeline {
  constructor(text) {
    const lines = text.split("\n");
    lines.pop(); // after the last newline: empty, or a line still being written
    const header = JSON.parse(lines.shift() ?? "null");
    if (header?.format !== FORMAT || header.version !== 1) {
      throw new Error("not a capOS monitor timeline (version 1)");
    }
    this.keep = header.keep;
    this.events = lines.filter((line) => line.startsWith("[")).map((line) => {
      const [time, code, data] = JSON.parse(line);
      return { time, code, data };
    });
    this.note = this.events.find((e) => e.code === "n")?.data ?? null;
    this.cache = null; // {index, state}: the last state made, to step on from
  }

  // The index of the last event at or before `time`, or -1.
  indexAt(time) {
    let low = 0;
    let high = this.events.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.events[mid].time <= time) low = mid + 1;
      else high = mid;
    }
    return low - 1;
  }

  // The state at `time` (a MonitorSnapshot), or null before the first keyframe.
  stateAt(time) {
    const index = this.indexAt(time);
    let from = index;
    while (from >= 0 && this.events[from].code !== "k") from--;
    if (from < 0) return null;
    let state = this.events[from].data;
    let next = from + 1;
    if (this.cache && this.cache.index >= from && this.cache.index <= index) {
      ({ state } = this.cache); // playing on: only the deltas since the last call
      next = this.cache.index + 1;
    }
    for (let i = next; i <= index; i++) {
      if (this.events[i].code === "d") state = apply(state, this.events[i].data, this.keep);
    }
    this.cache = { index, state };
    return state;
  }
}

// The state after one delta; the states before stay as they were.
export function apply(state, change, keep) {
  const next = { ...state };
  for (const name of SCALARS) if (name in change) next[name] = change[name];
  if (change.processes || change.gone) {
    const byPid = new Map(state.processes.map((p) => [p.pid, p]));
    for (const pid of change.gone ?? []) byPid.delete(pid);
    for (const proc of change.processes ?? []) byPid.set(proc.pid, { ...byPid.get(proc.pid), ...proc });
    next.processes = [...byPid.values()];
  }
  if (change.endpoints) next.endpoints = change.endpoints;
  for (const [name, count] of Object.entries(keep)) {
    if (change[name]) next[name] = [...state[name], ...change[name]].slice(-count);
  }
  return next;
}
