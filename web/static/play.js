// The playground page: checks the browser can share memory between workers,
// opens the terminal, starts the kernel's worker and a pool of process workers,
// and relays between them. Every capOS process is a Web Worker of its own.
const status = document.getElementById("status");
const POOL = 9; // the default system's processes, loaded ahead so spawning is quick
const QUEUE = 64 * 1024;

function problem(text) {
  status.textContent = "cannot start";
  const box = document.createElement("div");
  box.id = "problem";
  box.innerHTML = "<h2>This browser cannot run capOS in the tab</h2>";
  const detail = document.createElement("p");
  detail.textContent = text;
  box.append(detail);
  document.getElementById("terminal").replaceWith(box);
}

// A single-producer byte queue the kernel drains (see kernel/hosts/browser.py SabQueue).
function sharedQueue(bytes) {
  const sab = new SharedArrayBuffer(8 + bytes);
  const counts = new Int32Array(sab, 0, 2);
  const data = new Uint8Array(sab, 8);
  return {
    sab,
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
  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = `/vendor/xterm-${versions.xterm}/css/xterm.css`;
  document.head.append(css);
  const { Terminal } = await import(`/vendor/xterm-${versions.xterm}/lib/xterm.mjs`);
  const { FitAddon } = await import(
    `/vendor/xterm-addon-fit-${versions["xterm-addon-fit"]}/lib/addon-fit.mjs`);
  const term = new Terminal({ cursorBlink: true, fontSize: 15 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();
  window.addEventListener("resize", () => fit.fit());

  const bell = new SharedArrayBuffer(8);
  const bellCells = new Int32Array(bell);
  const ring = () => { Atomics.add(bellCells, 0, 1); Atomics.notify(bellCells, 0); };
  const input = sharedQueue(QUEUE);
  const ended = sharedQueue(4 * 1024);
  const encoder = new TextEncoder();
  term.onData((text) => { input.push(encoder.encode(text)); ring(); });
  const size = new Int32Array(new SharedArrayBuffer(8)); // cols, rows: the kernel polls it
  const publishSize = () => { size[0] = term.cols; size[1] = term.rows; ring(); };
  term.onResize(publishSize);
  publishSize();

  const processes = new Map(); // pid -> worker
  const pool = [];
  const spawnWorker = () => {
    const worker = new Worker("/static/process-worker.js", { type: "module" });
    worker.postMessage({ kind: "boot", versions });
    return worker;
  };
  for (let i = 0; i < POOL; i++) pool.push(spawnWorker());
  const endWorker = (pid) => {
    const pidBytes = new Uint8Array(new Uint32Array([pid]).buffer);
    ended.push(pidBytes);
    ring();
  };

  window.capos = { term, processes, pool };
  status.textContent = "loading the kernel…";
  const started = performance.now();
  const kernel = new Worker("/static/kernel-worker.js", { type: "module" });
  kernel.onmessage = ({ data }) => {
    if (data.kind === "output") {
      if (status.textContent !== "running") {
        status.textContent = "running";
        window.capos.promptMs = performance.now() - started;
      }
      term.write(data.bytes);
    } else if (data.kind === "spawn") {
      const worker = pool.shift() || spawnWorker();
      pool.push(spawnWorker()); // keep the pool full for the next spawn
      processes.set(data.pid, worker);
      worker.onmessage = ({ data: event }) => {
        if (event.kind === "crashed") console.warn(`capOS pid ${event.pid}: ${event.text}`);
        if (event.kind === "exited" || event.kind === "crashed") {
          worker.terminate();
          processes.delete(event.pid);
          endWorker(event.pid);
        }
      };
      worker.onerror = () => { worker.terminate(); processes.delete(data.pid); endWorker(data.pid); };
      worker.postMessage({ kind: "run", pid: data.pid, module: data.module,
                           region: data.region, bell });
    } else if (data.kind === "stop") {
      const worker = processes.get(data.pid);
      if (worker) { worker.terminate(); processes.delete(data.pid); }
    } else if (data.kind === "selfcheck") {
      window.capos.selfcheck = data.text;
    } else if (data.kind === "status") {
      status.textContent = data.text;
    } else if (data.kind === "halted") {
      status.textContent = "the system halted";
    } else if (data.kind === "failed") {
      problem(data.text);
    }
  };
  kernel.onerror = (event) => problem(`the kernel worker failed: ${event.message}`);
  kernel.postMessage({ kind: "boot", versions, bell, terminalInput: input.sab,
                       ended: ended.sab, size: size.buffer });
}

main().catch((error) => problem(String(error)));
