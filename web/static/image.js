// What every worker of the tab restores from, fetched and prepared once by the page
// (pyodide-boot.js says why each part is shared), with honest progress: what is
// loading, how far, and whether it came from the browser's cache or the network.

// A response's whole body, reporting the bytes as they come; into shared memory
// directly where its size is known.
async function readAll(response, size, onBytes) {
  const target = size ? new Uint8Array(new SharedArrayBuffer(size)) : null;
  const chunks = [];
  let received = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (target) {
      if (received + value.length > size) break;
      target.set(value, received);
    } else {
      chunks.push(value);
    }
    received += value.length;
    onBytes(received);
  }
  if (target) {
    if (received !== size) throw new Error(`${response.url} is not the ${size} bytes the server announced; reload the page`);
    return target;
  }
  const whole = new Uint8Array(new SharedArrayBuffer(received));
  let at = 0;
  for (const chunk of chunks) { whole.set(chunk, at); at += chunk.length; }
  return whole;
}

// The sparse snapshot (server/snapshot.py): its runs, and the bytes of every run.
function parseSnapshot(body) {
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  const [headerLength, memory, count] = [0, 4, 8].map((at) => view.getUint32(at, true));
  const table = 12 + headerLength;
  const runs = new Uint32Array(2 * count);
  for (let i = 0; i < runs.length; i++) runs[i] = view.getUint32(table + 4 * i, true);
  return { runs, pages: body.subarray(table + 8 * count), heapBytes: memory - headerLength };
}

// Where a finished download came from: the Resource Timing entry tells (a response
// from the cache transfers nothing; a revalidated one only its headers). The browser
// adds the entry a little after the body ends, so this waits for it (a second at most).
function origin(url) {
  const name = new URL(url, location.href).href;
  const kind = (entry) => {
    if (entry.transferSize === 0 && entry.decodedBodySize > 0) return "cache";
    return entry.transferSize < 1024 && entry.decodedBodySize > 4096 ? "revalidated" : "network";
  };
  return new Promise((resolve) => {
    const observer = new PerformanceObserver(() => {
      const entry = performance.getEntriesByName(name).at(-1);
      if (entry) { observer.disconnect(); clearTimeout(timer); resolve(kind(entry)); }
    });
    const timer = setTimeout(() => { observer.disconnect(); resolve("done"); }, 1000);
    observer.observe({ type: "resource", buffered: true });
  });
}

const megabytes = (bytes) => `${(bytes / 1048576).toFixed(1)} MB`;

// `onProgress(parts)`: parts is [{ name, state, ms }] in a fixed order, for the status line.
export function loadImage(versions, onProgress) {
  const indexURL = `/vendor/pyodide-${versions.pyodide}/`;
  const parts = [
    { name: "Python runtime", url: `${indexURL}pyodide.asm.wasm`, state: "waiting" },
    { name: "memory snapshot", url: versions.snapshot, state: "waiting" },
    { name: "kernel package", url: "/pkg/capos-playground.zip", state: "waiting" },
  ];
  let drawing = false; // progress is drawn at most once a frame, not once a chunk
  const report = () => {
    if (drawing) return;
    drawing = true;
    requestAnimationFrame(() => {
      drawing = false;
      onProgress(parts.map(({ name, state, ms }) => ({ name, state, ms })));
    });
  };
  const fetchPart = async (part) => {
    const response = await fetch(part.url);
    if (!response.ok) throw new Error(`${part.url} answered ${response.status}; reload the page`);
    return response;
  };
  const counted = (part, size) => (received) => {
    part.state = size ? `${Math.floor((100 * received) / size)}% of ${megabytes(size)}`
      : megabytes(received);
    report();
  };
  const finished = (part) => {
    const finishedAt = Math.round(performance.now()); // not when its origin is known
    part.state = "done";
    origin(part.url).then((from) => {
      part.state = from;
      part.ms = finishedAt;
      report();
    });
  };

  // Compiled while it streams in; posted to every worker as it is. The response goes to
  // the compiler as fetched, untouched: only then can the browser reuse the code it
  // compiled on an earlier visit (a response rebuilt from a stream, to count its bytes,
  // is compiled from scratch every time).
  const wasm = (async () => {
    const part = parts[0];
    const response = await fetchPart(part);
    part.state = `compiling ${megabytes(Number(response.headers.get("content-length")))}`;
    report();
    const module = await WebAssembly.compileStreaming(response);
    finished(part);
    return module;
  })();
  const snapshot = (async () => {
    const part = parts[1];
    const response = await fetchPart(part); // gzipped on the wire: its size is in versions
    const size = versions.snapshotBytes;
    const bytes = await readAll(response, size, counted(part, size));
    finished(part);
    return parseSnapshot(bytes);
  })();
  const archive = (async () => {
    const part = parts[2];
    const response = await fetchPart(part);
    const size = Number(response.headers.get("content-length"));
    const bytes = await readAll(response, size, counted(part, size));
    finished(part);
    return bytes;
  })();
  report();
  // Two halves, posted to each worker as they come (pyodide-boot.js): the module starts
  // a worker's runtime while the heap is still on its way.
  return {
    wasm,
    heap: Promise.all([snapshot, archive]).then(([heap, zip]) => ({ ...heap, archive: zip })),
  };
}

// Hand a new worker the image as it comes (the messages pyodide-boot.js expects). A
// module the page could not compile is sent as null: the worker compiles its own, the
// slow path the page then shows (and tests/test_browser.py refuses).
export function sendImage(worker, versions, image) {
  worker.postMessage({ kind: "prepare", versions });
  image.wasm.catch(() => null).then((wasm) => worker.postMessage({ kind: "boot", versions, wasm }));
  image.heap.then((parts) => worker.postMessage({ kind: "heap", ...parts }), () => {});
}
