// One capOS process: Pyodide restored ahead of time (the pool), then one program run.
import { boot, heapArrives, prepare } from "/static/pyodide-boot.js";
import { H, PROCESS, RegionPort } from "/static/ring-port.js";

let pyodide;
let queued = null;

const OVER_BUDGET = -2; // kernel/hosts/browser.py
const ENDED = { CRASHED: 1, OVER_BUDGET: 2 };
const DEAD = 1;
const CQ_ENTRIES = 32;

// This worker's WebAssembly heap: what a process's memory budget limits.
const heapBytes = () => pyodide._module.HEAP8.buffer.byteLength;

// Ring the kernel's bell for this process's ring.
function ringBell(port, bell) {
  Atomics.add(port.i32, H.DOORBELL >> 2, 1);
  Atomics.add(bell, 0, 1);
  Atomics.notify(bell, 0);
}

// cap_enter, in JavaScript: one call from Python hands the kernel what Python
// wrote in its copy of the ring, waits, and brings back what the kernel wrote.
function capEnter(port, bell, minComplete, timeoutMs) {
  const get = (field) => port.get(field);
  const ring = port.i32;
  if (heapBytes() > get(H.MEMORY_LIMIT_MIB) * 1048576) return OVER_BUDGET;
  port.flush(); // the SQEs and their buffers, then SQ_TAIL
  const idleWakes = get(H.IDLE_WAKES);
  Atomics.store(ring, H.ENTER_MIN >> 2, minComplete);
  let seen = Atomics.load(ring, H.WAKE >> 2);
  ringBell(port, bell);
  const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
  for (;;) {
    if (get(H.FLAGS) & DEAD) return -1;
    const available = (get(H.CQ_TAIL) - get(H.CQ_HEAD)) >>> 0;
    const settled = get(H.SQ_TAIL) === get(H.SQ_HEAD) || available >= CQ_ENTRIES;
    const now = performance.now();
    if ((settled && (available >= minComplete || get(H.IDLE_WAKES) !== idleWakes))
        || now >= deadline) {
      port.take(); // the CQEs, and the header fields the kernel moved
      return available;
    }
    Atomics.wait(ring, H.WAKE >> 2, seen, Math.min(deadline - now, 1e9));
    seen = Atomics.load(ring, H.WAKE >> 2);
  }
}

async function run({ pid, module, region, bell }) {
  try {
    const browser = pyodide.pyimport("kernel.hosts.browser");
    const bellCells = new Int32Array(bell);
    const memory = () => pyodide._module.HEAPU8.buffer;
    let port;
    const kernel = { // the process's side of the ring, as kernel/hosts/browser.py uses it
      attach: (copy) => (port = new RegionPort(region, copy, memory, PROCESS)),
      enter: (minComplete, timeoutMs) => capEnter(port, bellCells, minComplete, timeoutMs),
      exit: () => { port.flush(); ringBell(port, bellCells); },
    };
    const ended = browser.run_process(module, region.byteLength, kernel);
    if (ended === ENDED.OVER_BUDGET) {
      postMessage({ kind: "crashed", pid, reason: ENDED.OVER_BUDGET, text: "over its memory budget" });
    } else {
      postMessage({ kind: "exited", pid });
    }
  } catch (error) {
    postMessage({ kind: "crashed", pid, reason: ENDED.CRASHED, text: String(error) });
  }
}

onmessage = async ({ data }) => {
  if (data.kind === "prepare") {
    prepare(data.versions);
  } else if (data.kind === "heap") {
    heapArrives(data);
  } else if (data.kind === "boot") {
    let path, steps;
    try {
      ({ pyodide, path, steps } = await boot(data)); // warmed up: a spawn pays only for its program
    } catch (error) {
      postMessage({ kind: "failed", text: `a process worker could not start: ${error}` });
      return;
    }
    postMessage({ kind: "ready", path, steps });
    if (queued) run(queued);
  } else if (data.kind === "run") {
    if (pyodide) run(data);
    else queued = data;
  }
};
