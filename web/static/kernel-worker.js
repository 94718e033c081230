// The kernel's Web Worker. Once booted it lives inside Atomics.wait on its bell:
// everything reaches it through shared memory, and it answers with postMessage.
// The bridge below does the scanning and waking in JavaScript, so each pass of
// the kernel's loop crosses the Python/JavaScript boundary a few times, not dozens.
import { boot, heapArrives, prepare } from "/static/pyodide-boot.js";

const DOORBELL = 72 >> 2; // u32 indices of ring header fields (kernel/abi.py)
const WAKE = 76 >> 2;

// Drain a single-producer byte queue (see play.js sharedQueue).
function takeQueue(sab) {
  const counts = new Int32Array(sab, 0, 2);
  const data = new Uint8Array(sab, 8);
  const written = Atomics.load(counts, 0) >>> 0;
  const taken = Atomics.load(counts, 1) >>> 0;
  const count = (written - taken) >>> 0;
  if (count === 0) return new Uint8Array(0);
  const out = new Uint8Array(count);
  for (let i = 0; i < count; i++) out[i] = data[(taken + i) % data.length];
  Atomics.store(counts, 1, (taken + count) | 0);
  return out;
}

function makeBridge(data) {
  const bell = new Int32Array(data.bell);
  const size = new Int32Array(data.size);
  const rings = new Map(); // pid -> { ring: Int32Array, last: number }
  return {
    newRegion: (bytes) => new SharedArrayBuffer(bytes),
    spawn(pid, module, region) {
      rings.set(pid, { ring: new Int32Array(region), last: 0 });
      postMessage({ kind: "spawn", pid, module, region });
    },
    stop(pid) {
      rings.delete(pid);
      postMessage({ kind: "stop", pid });
    },
    output: (bytes) => postMessage({ kind: "output", bytes: bytes.slice() }),
    monitor: (json) => postMessage({ kind: "monitor", json }), // web/static/monitor.js
    // the server's model, through the page (web/static/model-relay.js)
    modelStart: (stream, request) => postMessage({ kind: "model-start", stream, request }),
    modelCancel: (stream) => postMessage({ kind: "model-cancel", stream }),
    // Everything that happened since the last pass; `bell` first, so nothing
    // that rings during the scan can be missed by the wait that follows.
    pending() {
      const state = { bell: Atomics.load(bell, 0), pids: [], ended: [],
                      input: takeQueue(data.terminalInput), model: takeQueue(data.modelEvents),
                      cols: Atomics.load(size, 0), rows: Atomics.load(size, 1) };
      for (const [pid, entry] of rings) {
        const rung = Atomics.load(entry.ring, DOORBELL);
        if (rung !== entry.last) { entry.last = rung; state.pids.push(pid); }
      }
      state.ended = Array.from(new Uint32Array(takeQueue(data.ended).buffer));
      return state;
    },
    wake(pid) {
      const entry = rings.get(pid);
      if (!entry) return;
      Atomics.add(entry.ring, WAKE, 1);
      Atomics.notify(entry.ring, WAKE);
    },
    wait: (seen, timeoutMs) => Atomics.wait(bell, 0, seen, timeoutMs),
  };
}

// What the kernel runs with (the page's shared buffers and the model), known once the
// page has asked the server which model it runs: it may come before or after the heap.
let started;
const start = new Promise((resolve) => { started = resolve; });

onmessage = async ({ data }) => {
  if (data.kind === "prepare") prepare(data.versions);
  if (data.kind === "heap") heapArrives(data);
  if (data.kind === "start") started(data);
  if (data.kind !== "boot") return;
  try {
    const { pyodide, path, steps } = await boot(data);
    postMessage({ kind: "restored", path, steps });
    const browser = pyodide.pyimport("kernel.hosts.browser");
    postMessage({ kind: "selfcheck", text: browser.SELF_CHECK.join("") }); // made with the snapshot
    const params = await start;
    postMessage({ kind: "status", text: "booting…" });
    const size = new Int32Array(params.size);
    browser.run_kernel(makeBridge(params), size[0], size[1], params.memoryMiB, params.model);
    postMessage({ kind: "halted" });
  } catch (error) {
    postMessage({ kind: "failed", text: `the kernel stopped: ${error}` });
  }
};
