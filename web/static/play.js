// The tab's own kernel on /play (play-page.js loads it): checks the browser can share memory between workers,
// opens the terminal, starts the kernel's worker and a pool of process workers,
// and relays between them. Every capOS process is a Web Worker of its own.
import { loadImage, sendImage } from "/static/image.js";
import { relayModel } from "/static/model-relay.js";
import { serverButton } from "/static/run-on-server.js";
import { shareTab } from "/static/share-relay.js";
import { openTerminal } from "/static/terminal.js";
import { openTour } from "/static/tour.js";
import { WorkerPool } from "/static/worker-pool.js";

const status = document.getElementById("status");
const QUEUE = 64 * 1024;
const AGENT_QUEUE = 160 * 1024; // the server sends at most 16 requests of under 8 KiB at once
// Milestones of this tab's start, for the benchmark and for anyone asking why it was slow.
const marks = [];
const mark = (what) => marks.push([what, Math.round(performance.now())]);

function problem(text) {
  status.textContent = "cannot start";
  const box = document.createElement("div");
  box.id = "problem";
  box.innerHTML = "<h2>This browser cannot run capOS in the tab</h2>";
  const detail = document.createElement("p");
  detail.textContent = text;
  // The same system, booted on the server instead, keeping any tour the link named.
  const note = document.createElement("p");
  note.textContent = "The server can run the same kernel for you in a VM:";
  const tour = new URLSearchParams(location.search).get("tour");
  const query = tour ? `tour=${encodeURIComponent(tour)}&step=1` : "";
  box.append(detail, note, serverButton("Run on the server", note, query));
  document.getElementById("terminal").replaceWith(box);
}

// A single-producer byte queue the kernel drains (see kernel/hosts/browser.py SabQueue).
function sharedQueue(bytes) {
  const sab = new SharedArrayBuffer(8 + bytes);
  const counts = new Int32Array(sab, 0, 2);
  const data = new Uint8Array(sab, 8);
  return {
    sab,
    capacity: bytes,
    push(chunk) {
      const written = Atomics.load(counts, 0) >>> 0;
      const taken = Atomics.load(counts, 1) >>> 0;
      if (((written - taken) >>> 0) + chunk.length > bytes) return false; // full: dropped
      for (let i = 0; i < chunk.length; i++) data[(written + i) % bytes] = chunk[i];
      Atomics.store(counts, 0, (written + chunk.length) | 0);
      return true;
    },
  };
}

// The header names the model agent mode uses, and what a person should know about it.
function showModel(info, reason) {
  const tag = document.getElementById("model");
  tag.textContent = info ? `agent model: ${info.modelId} (on the server)` : "agent model: none";
  tag.title = info ? `${info.provider}. ${info.note}` : reason;
}

async function main() {
  if (!window.crossOriginIsolated || typeof SharedArrayBuffer === "undefined") {
    problem("capOS runs every process in its own Web Worker and shares each process's "
      + "ring with the kernel through SharedArrayBuffer, which needs a cross-origin "
      + "isolated page. This page was not isolated (is it behind a proxy that drops the "
      + "Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy headers?). "
      + "Use a current Chrome, Edge or Firefox.");
    return;
  }
  const versions = await (await fetch("/vendor/versions.json")).json();
  // Which model agent mode uses: the server's (server/modelapi.py), known before boot.
  const model = fetch("/api/model").then((response) => response.json())
    .catch(() => ({ info: null, reason: "the server did not say which model it runs" }));
  // What every worker restores from, fetched and prepared once and shared with each
  // (image.js, pyodide-boot.js), while the terminal loads.
  const loaded = new Set();
  const image = loadImage(versions, (parts) => {
    for (const { name, state, ms } of parts) {
      if (ms && !loaded.has(name)) { loaded.add(name); marks.push([`${name} (${state})`, ms]); }
    }
    if (status.dataset.stage !== "loading") return;
    status.textContent = "loading " + parts.map(({ name, state }) => `${name}: ${state}`).join(" · ");
  });
  image.heap.then(() => {
    mark("image ready");
    status.dataset.stage = "restoring";
    status.textContent = "restoring the kernel and the shell from the snapshot…";
  }, (error) => problem(`the tab could not load what it runs: ${error.message}`));
  status.dataset.stage = "loading";
  const kernel = new Worker("/static/kernel-worker.js", { type: "module" });
  sendImage(kernel, versions, image);
  // The process workers restore meanwhile; spawns reach them once the kernel runs.
  const processes = new Map(); // pid -> worker
  const restoredBy = { kernel: null, processes: [] }; // how each worker restored: a test
  const pool = new WorkerPool({                        // fails on any fallback path
    url: "/static/process-worker.js", versions, image, mark,
    start: (worker, spawn) => run(worker, spawn),
    first: ["kernel.programs.init", "kernel.programs.shell.main"],
    restored: (path, steps) => restoredBy.processes.push({ path, steps }), failed: problem,
  });
  const term = await openTerminal(versions);

  const bell = new SharedArrayBuffer(8);
  const bellCells = new Int32Array(bell);
  const ring = () => { Atomics.add(bellCells, 0, 1); Atomics.notify(bellCells, 0); };
  const input = sharedQueue(QUEUE);
  const ended = sharedQueue(4 * 1024);
  const modelEvents = sharedQueue(QUEUE);
  const modelRelay = relayModel(modelEvents, ring);
  const encoder = new TextEncoder();
  const agentRequests = sharedQueue(AGENT_QUEUE);
  const relay = shareTab(term, (text) => { input.push(encoder.encode(text)); ring(); },
    (line) => { const queued = agentRequests.push(encoder.encode(line)); ring(); return queued; });
  term.onData((text) => { input.push(encoder.encode(text)); ring(); relay.keys(text); });
  const size = new Int32Array(new SharedArrayBuffer(8)); // cols, rows: the kernel polls it
  const publishSize = () => { size[0] = term.cols; size[1] = term.rows; ring(); };
  term.onResize(publishSize);
  publishSize();

  const endWorker = (pid, reason) => { // a worker that ended without `exit`
    ended.push(new Uint8Array(new Uint32Array([pid, reason]).buffer));
    ring();
  };
  const run = (worker, spawn) => {
    mark(`run pid ${spawn.pid} ${spawn.module}`);
    processes.set(spawn.pid, worker);
    worker.onmessage = ({ data: event }) => {
      if (event.kind === "crashed") console.warn(`capOS pid ${event.pid}: ${event.text}`);
      if (event.kind === "exited" || event.kind === "crashed") {
        worker.terminate();
        processes.delete(event.pid);
        if (event.kind === "crashed") endWorker(event.pid, event.reason);
      }
    };
    worker.onerror = () => {
      worker.terminate();
      processes.delete(spawn.pid);
      endWorker(spawn.pid, 1);
    };
    worker.postMessage({ kind: "run", pid: spawn.pid, module: spawn.module,
                         region: spawn.region, bell });
  };
  // ?memory=MiB sets this tab's per-process memory budget (the ledger's default otherwise)
  const memoryMiB = Number(new URLSearchParams(location.search).get("memory")) || 0;
  model.then(({ info, reason }) => {
    showModel(info, reason);
    window.capos.model = info;
    kernel.postMessage({ kind: "start", bell, terminalInput: input.sab,
                         ended: ended.sab, modelEvents: modelEvents.sab, size: size.buffer,
                         agentRequests: agentRequests.sab,
                         memoryMiB, model: info ? JSON.stringify(info) : "" });
  });
  window.capos = { term, processes, marks, restoredBy, spares: () => pool.spares };
  openTour(term).then((tour) => { window.capos.tour = tour; });
  kernel.onmessage = ({ data }) => {
    if (data.kind === "output") {
      if (status.textContent !== "running") {
        mark("first output");
        status.textContent = "running";
        status.dataset.stage = "running";
        window.capos.promptMs = performance.now(); // since navigation started
        // A visitor who types before clicking anywhere types into the shell, unless
        // they have put the focus somewhere else meanwhile (a tour's panel, a link).
        if (document.activeElement === document.body || !document.activeElement) term.focus();
      }
      term.write(data.bytes);
      relay.output(data.bytes);
    } else if (data.kind === "spawn") {
      mark(`spawn pid ${data.pid}`);
      pool.spawn(data);
    } else if (data.kind === "stop") {
      const worker = processes.get(data.pid);
      if (worker) { worker.terminate(); processes.delete(data.pid); }
    } else if (data.kind === "model-start") {
      modelRelay.start(data.stream, data.request);
    } else if (data.kind === "model-cancel") {
      modelRelay.cancel(data.stream);
    } else if (data.kind === "agent-reply") {
      relay.agentReply(data.json);
    } else if (data.kind === "monitor") { // a whole-system snapshot: web/static/monitor.js
      window.dispatchEvent(new CustomEvent("capos-monitor", { detail: data.json }));
    } else if (data.kind === "restored") {
      mark("kernel worker ready");
      restoredBy.kernel = { path: data.path, steps: data.steps };
    } else if (data.kind === "selfcheck") {
      window.capos.selfcheck = data.text;
    } else if (data.kind === "status") {
      if (status.dataset.stage !== "running") status.textContent = data.text;
    } else if (data.kind === "halted") {
      status.textContent = "the system halted";
    } else if (data.kind === "failed") {
      problem(data.text);
    }
  };
  kernel.onerror = (event) => problem(`the kernel worker failed: ${event.message}`);
}

main().catch((error) => problem(String(error)));
