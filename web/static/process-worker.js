// One capOS process: Pyodide restored ahead of time (the pool), then one program run.
import { boot, heapArrives, prepare } from "/static/pyodide-boot.js";

let pyodide;
let queued = null;

// cap_enter's waiting half, in JavaScript: one call from Python instead of a
// dozen Atomics calls through the FFI. Field offsets (bytes) from kernel/abi.py.
const H = { SQ_HEAD: 8, SQ_TAIL: 12, CQ_HEAD: 16, CQ_TAIL: 20, FLAGS: 52, ENTER_MIN: 56,
            IDLE_WAKES: 68, DOORBELL: 72, WAKE: 76, MEMORY_LIMIT_MIB: 80 };
const OVER_BUDGET = -2; // kernel/hosts/browser.py
const ENDED = { CRASHED: 1, OVER_BUDGET: 2 };
const DEAD = 1;
const CQ_ENTRIES = 32;

// This worker's WebAssembly heap: what a process's memory budget limits.
const heapBytes = () => pyodide._module.HEAP8.buffer.byteLength;

function capEnter(ring, bell, minComplete, timeoutMs) {
  const get = (field) => Atomics.load(ring, field >> 2) >>> 0;
  if (heapBytes() > get(H.MEMORY_LIMIT_MIB) * 1048576) return OVER_BUDGET;
  const idleWakes = get(H.IDLE_WAKES);
  Atomics.store(ring, H.ENTER_MIN >> 2, minComplete);
  let seen = Atomics.load(ring, H.WAKE >> 2);
  Atomics.add(ring, H.DOORBELL >> 2, 1);
  Atomics.add(bell, 0, 1);
  Atomics.notify(bell, 0);
  const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
  for (;;) {
    if (get(H.FLAGS) & DEAD) return -1;
    const available = (get(H.CQ_TAIL) - get(H.CQ_HEAD)) >>> 0;
    const settled = get(H.SQ_TAIL) === get(H.SQ_HEAD) || available >= CQ_ENTRIES;
    if (settled && (available >= minComplete || get(H.IDLE_WAKES) !== idleWakes)) return available;
    const now = performance.now();
    if (now >= deadline) return available;
    Atomics.wait(ring, H.WAKE >> 2, seen, Math.min(deadline - now, 1e9));
    seen = Atomics.load(ring, H.WAKE >> 2);
  }
}

async function run({ pid, module, region, bell }) {
  try {
    const browser = pyodide.pyimport("kernel.hosts.browser");
    const ended = browser.run_process(module, region, bell, (ring, min, timeoutMs) =>
      capEnter(ring, new Int32Array(bell), min, timeoutMs));
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
