// The kernel's Web Worker. Once booted it lives inside Atomics.wait on its bell:
// everything reaches it through shared memory, and it answers with postMessage.
// The bridge below does the scanning, copying and waking in JavaScript, so each
// pass of the kernel's loop crosses the Python/JavaScript boundary once (`step`).
import { boot, heapArrives, prepare } from "/static/pyodide-boot.js";
import { H, HeapBytes, KERNEL, RegionPort } from "/static/ring-port.js";

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

function makeBridge(data, memory) {
  const bell = new Int32Array(data.bell);
  const size = new Int32Array(data.size);
  const queues = [data.terminalInput, data.modelEvents, data.agentRequests, data.ended].map(
    (sab) => new Int32Array(sab, 0, 2));
  const rings = new Map(); // pid -> { port: RegionPort, last: its DOORBELL when last taken }
  let commands; // the kernel's pid list: woken pids on the way out, rung ones back
  let seen = 0; // the bell when the rings were last scanned
  let shown = [0, 0]; // the terminal size the kernel was last given
  const queued = (counts) => Atomics.load(counts, 0) !== Atomics.load(counts, 1);
  // Flush what the kernel wrote, then wake the pids listed: a woken process
  // finds everything it was woken for.
  const publish = () => {
    for (const { port } of rings.values()) port.flush();
    const words = commands.words;
    for (let i = 1; i <= words[0]; i++) {
      const entry = rings.get(words[i]);
      if (entry) {
        Atomics.add(entry.port.i32, H.WAKE >> 2, 1);
        Atomics.notify(entry.port.i32, H.WAKE >> 2);
      }
    }
    words[0] = 0;
  };
  return {
    newRegion: (bytes, copy) => new RegionPort(new SharedArrayBuffer(bytes), copy, memory, KERNEL),
    spawn(pid, module, port) {
      port.flush(); // the ring and CapSet the kernel laid out, before the worker looks
      rings.set(pid, { port, last: 0 });
      postMessage({ kind: "spawn", pid, module, region: port.sab });
    },
    stop(pid) {
      const entry = rings.get(pid);
      if (entry) {
        entry.port.flush(); // the ring marked dead
        entry.port.release();
        rings.delete(pid);
      }
      postMessage({ kind: "stop", pid });
    },
    output: (bytes) => postMessage({ kind: "output", bytes: bytes.slice() }),
    monitor: (json) => postMessage({ kind: "monitor", json }), // web/static/monitor.js
    // the server's model, through the page (web/static/model-relay.js)
    modelStart: (stream, request) => postMessage({ kind: "model-start", stream, request }),
    modelCancel: (stream) => postMessage({ kind: "model-cancel", stream }),
    // an outside agent's answer, from the tab's shell: the page relays it (share-relay.js)
    agentReply: (json) => postMessage({ kind: "agent-reply", json }),
    listen: (pids) => { commands = new HeapBytes(pids, memory); },
    publish,
    // One pass's crossing: publish, sleep until the bell rings (or `timeoutMs`),
    // then take each rung ring's submissions and list its pid. The bell is read
    // before the scan, so nothing that rings during it is missed by the next
    // sleep. True when the page has queued something for `pageEvents`.
    step(timeoutMs) {
      publish();
      if (timeoutMs > 0) Atomics.wait(bell, 0, seen, timeoutMs);
      seen = Atomics.load(bell, 0);
      const words = commands.words;
      let count = 0;
      for (const [pid, entry] of rings) {
        const rung = entry.port.get(H.DOORBELL);
        if (rung !== entry.last) {
          entry.last = rung;
          entry.port.take();
          words[++count] = pid;
        }
      }
      words[0] = count;
      return queues.some(queued) || Atomics.load(size, 0) !== shown[0]
        || Atomics.load(size, 1) !== shown[1];
    },
    // What the page queued: terminal input, model events, agent requests, ended workers,
    // the size.
    pageEvents() {
      shown = [Atomics.load(size, 0), Atomics.load(size, 1)];
      return { input: takeQueue(data.terminalInput), model: takeQueue(data.modelEvents),
               agent: takeQueue(data.agentRequests),
               ended: Array.from(new Uint32Array(takeQueue(data.ended).buffer)),
               cols: shown[0], rows: shown[1] };
    },
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
    const memory = () => pyodide._module.HEAPU8.buffer;
    browser.run_kernel(makeBridge(params, memory), size[0], size[1], params.memoryMiB, params.model);
    postMessage({ kind: "halted" });
  } catch (error) {
    postMessage({ kind: "failed", text: `the kernel stopped: ${error}` });
  }
};
