// The tour panel: one step of a guided tour beside the terminal (/play?tour=NAME&step=N).
// A step passes when its checks hold in the live system: the kernel's SystemMonitor
// snapshots (the "capos-monitor" events play.js relays) and the terminal's text.
// The check kinds are those of server/tours.py; demos/README.md describes them.
import { renderMarkdown } from "/static/markdown.js";

const STORE = "capos-tour:"; // localStorage key prefix: progress survives a reload

// Every field given must match; `text` (of output checks) is a substring.
const matches = (record, wanted) =>
  Object.entries(wanted).every(([field, value]) => record?.[field] === value);

const CHECKS = {
  output: (wanted, view) => view.screen().includes(wanted.text),
  process: (wanted, view) => view.snapshot?.processes.some((p) => matches(p, wanted)),
  cap: ({ holder, ...cap }, view) => view.snapshot?.processes.some(
    (p) => (holder === undefined || p.binary === holder) && p.caps.some((c) => matches(c, cap))),
  call: (wanted, view) => view.snapshot?.calls.some(
    (c) => c.seq > view.startSeq && matches(c, wanted)),
  exit: (wanted, view) => view.snapshot?.exits.some(
    (e) => e.seq > view.startSeq && matches(e, wanted)),
};

// What a check expects, in words, for the panel to show while it does not hold.
function describe(kind, wanted) {
  const fields = Object.entries(wanted).map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(", ");
  return {
    output: `the terminal shows ${JSON.stringify(wanted.text)}`,
    process: `a running process with ${fields}`,
    cap: `a process holding a cap with ${fields}`,
    call: `a call with ${fields}`,
    exit: `a process ending with ${fields}`,
  }[kind];
}

class TourPanel {
  constructor(root, tour, term, startStep) {
    this.root = root;
    this.tour = tour;
    this.term = term;
    this.snapshot = null; // the newest MonitorSnapshot
    this.index = Math.min(Math.max(startStep, 0), tour.steps.length - 1);
    this.passed = new Set(JSON.parse(localStorage.getItem(STORE + tour.name) || "{}").passed || []);
    window.addEventListener("capos-monitor", ({ detail }) => {
      this.snapshot = typeof detail === "string" ? JSON.parse(detail) : detail;
      this.evaluate();
    });
    term.onWriteParsed(() => this.evaluate());
    this.begin();
  }

  // The screen's text from where the step began: output checks look only at that.
  screen() {
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let y = this.startLine; y < buffer.length; y++) {
      lines.push(buffer.getLine(y)?.translateToString(true) ?? "");
    }
    return lines.join("\n");
  }

  begin() {
    const buffer = this.term.buffer.active;
    this.startLine = buffer.baseY + buffer.cursorY;
    this.startSeq = this.snapshot?.seq ?? 0;
    // A running recording marks each step as a chapter (web/static/share-panel.js).
    document.dispatchEvent(new CustomEvent("capos:tour-step",
      { detail: `${this.tour.title}: ${this.step().title}` }));
    this.save();
    this.render();
    this.evaluate();
  }

  save() {
    localStorage.setItem(STORE + this.tour.name,
      JSON.stringify({ step: this.index, passed: [...this.passed] }));
    const url = new URL(location.href);
    url.searchParams.set("step", String(this.index + 1));
    history.replaceState(history.state, "", url); // the state may hold the owner credential
  }

  step() {
    return this.tour.steps[this.index];
  }

  go(index) {
    this.index = Math.min(Math.max(index, 0), this.tour.steps.length - 1);
    this.begin();
  }

  type() {
    const step = this.step();
    this.term.input(`${step.command}\r`, true);
    for (const line of step.input || []) this.term.input(`${line}\r`, true);
    this.term.focus();
  }

  evaluate() {
    const checks = Object.entries(this.step().check || {});
    const failing = checks.filter(([kind, wanted]) => !CHECKS[kind](wanted, this));
    const done = failing.length === 0;
    if (done && !this.passed.has(this.index)) {
      this.passed.add(this.index);
      this.save();
    }
    this.root.dataset.state = done ? "passed" : "waiting";
    this.expect.textContent = done
      ? (checks.length ? "✓ done" : "")
      : `Waiting for ${failing.map(([kind, wanted]) => describe(kind, wanted)).join(" and ")}.`;
    this.renderProgress();
  }

  renderProgress() {
    const total = this.tour.steps.length;
    this.progress.textContent = `step ${this.index + 1} of ${total} · ${this.passed.size} done`;
    this.back.disabled = this.index === 0;
    this.next.disabled = this.index === total - 1;
  }

  render() {
    const step = this.step();
    this.root.replaceChildren();
    const heading = document.createElement("h2");
    heading.textContent = this.tour.title;
    const title = document.createElement("h3");
    title.textContent = step.title;
    const text = document.createElement("div");
    text.className = "tour-text";
    text.innerHTML = renderMarkdown(step.text); // escaped by renderMarkdown
    this.root.append(heading, title, text);
    if (step.command) {
      const command = document.createElement("pre");
      command.className = "tour-command";
      command.textContent = step.command;
      const button = document.createElement("button");
      button.type = "button";
      button.id = "tour-type";
      button.textContent = "type it for me";
      button.addEventListener("click", () => this.type());
      this.root.append(command, button);
    }
    if (step.extensions) {
      // Generated from kernel/differences.py: shell words the capOS book does not have.
      const note = document.createElement("p");
      note.className = "tour-extension";
      note.textContent =
        `Playground extension: ${step.extensions.join(", ")} (not in the capOS book; ` +
        "man differences lists every departure).";
      this.root.append(note);
    }
    this.expect = document.createElement("p");
    this.expect.id = "tour-expect";
    this.progress = document.createElement("p");
    this.progress.className = "tour-progress";
    const nav = document.createElement("nav");
    const button = (id, label) =>
      Object.assign(document.createElement("button"), { type: "button", id, textContent: label });
    this.back = button("tour-back", "back");
    this.next = button("tour-next", "next");
    this.back.addEventListener("click", () => this.go(this.index - 1));
    this.next.addEventListener("click", () => this.go(this.index + 1));
    nav.append(this.back, this.next);
    this.root.append(this.expect, this.progress, nav);
  }
}

// Opens the tour named in the page's address, once the terminal exists.
export async function openTour(term) {
  const params = new URLSearchParams(location.search);
  const name = params.get("tour");
  if (!name) return null;
  const root = document.getElementById("tour");
  const response = await fetch(`/api/tours/${encodeURIComponent(name)}`);
  if (!response.ok) {
    root.textContent = `No tour named ${name}: see the list on the home page.`;
    document.body.classList.add("tour-open");
    return null;
  }
  const tour = await response.json();
  const saved = JSON.parse(localStorage.getItem(STORE + name) || "{}");
  const step = params.has("step") ? Number(params.get("step")) - 1 : (saved.step ?? 0);
  document.body.classList.add("tour-open");
  return new TourPanel(root, tour, term, Number.isFinite(step) ? step : 0);
}
