// The IPC views: call rate and latency charts (uPlot, pinned in web/package.json
// and served from /vendor) and a timeline of the latest calls in the kernel's
// bounded trace. Each snapshot carries the newest calls; the charts count the
// ones not seen before (by seq) per interval between snapshots.
import { duration, el, seconds, table } from "/static/monitor-dom.js";

const POINTS = 120; // about two minutes of history
const SHOWN = 60; // calls listed in the timeline

let uPlotModule = null;
async function loadUPlot() {
  if (!uPlotModule) {
    uPlotModule = (async () => {
      const versions = await (await fetch("/vendor/versions.json")).json();
      const base = `/vendor/uplot-${versions.uplot}/dist`;
      const css = el("link", { rel: "stylesheet", href: `${base}/uPlot.min.css` });
      document.head.append(css);
      return (await import(`${base}/uPlot.esm.js`)).default;
    })();
  }
  return uPlotModule;
}

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

export class CallViews {
  // `charts`: false for a list alone (a replay's: its charts would need every snapshot)
  constructor({ charts = true } = {}) {
    this.withCharts = charts;
    this.lastSeq = 0;
    this.lastNs = null;
    this.series = [[], [], []]; // uptime s, calls per s, median latency us
    this.box = el("div", { class: "mon-charts" });
    this.charts = null;
  }

  add(snap) {
    const fresh = snap.calls.filter((c) => c.seq > this.lastSeq);
    if (snap.calls.length) this.lastSeq = Math.max(this.lastSeq, snap.calls[snap.calls.length - 1].seq);
    if (this.lastNs !== null && snap.uptimeNs > this.lastNs) {
      const dt = (snap.uptimeNs - this.lastNs) / 1e9;
      const latency = median(fresh.map((c) => c.latencyNs / 1e3));
      this.series[0].push(snap.uptimeNs / 1e9);
      this.series[1].push(fresh.length / dt);
      this.series[2].push(latency);
      for (const s of this.series) if (s.length > POINTS) s.shift();
    }
    this.lastNs = snap.uptimeNs;
    if (this.charts) for (const chart of this.charts) chart.setData(this.dataFor(chart));
  }

  dataFor(chart) {
    return [this.series[0], this.series[chart.capos_series]];
  }

  async makeCharts() {
    const uPlot = await loadUPlot();
    const make = (title, label, index, stroke) => {
      const chart = new uPlot({
        title, width: 520, height: 130,
        scales: { x: { time: false } },
        axes: [{ stroke: "#aaa", grid: { stroke: "#2a3038" } },
               { stroke: "#aaa", grid: { stroke: "#2a3038" }, size: 64 }],
        series: [{ label: "uptime s" }, { label, stroke, width: 2, spanGaps: true }],
      }, [this.series[0], this.series[index]], this.box);
      chart.capos_series = index;
      return chart;
    };
    this.charts = [
      make("calls per second", "calls/s", 1, "#7cc4ff"),
      make("median call latency (us)", "latency us", 2, "#ffb86c"),
    ];
  }

  render(snap, names) {
    if (this.withCharts && !this.charts && !this.loading) {
      this.loading = this.makeCharts().catch((error) => {
        this.box.textContent = `charts unavailable: ${error}`;
      });
    }
    const who = (pid, nobody) => (pid ? `${names.get(pid) ?? "?"}[${pid}]` : nobody);
    const rows = snap.calls.slice(-SHOWN).reverse().map((c) =>
      el("tr", { "data-call": `${c.interface}.${c.method}`, class: c.result === "ok" ? null : "failed" },
        el("td", {}, seconds(c.atNs)), el("td", {}, who(c.callerPid, "(outside)")),
        el("td", {}, who(c.calleePid, "kernel")), el("td", {}, `${c.interface}.${c.method}`),
        el("td", {}, duration(c.latencyNs)), el("td", {}, c.result)));
    const timeline = rows.length
      ? table(["time", "caller", "callee", "call", "latency", "result"], rows)
      : el("p", {}, snap.tracing ? "no calls yet" : "the kernel's IPC trace is off");
    timeline.id = "mon-calls";
    return this.withCharts ? el("div", {}, this.box, timeline) : el("div", {}, timeline);
  }
}
