// Restoring a Python for a worker: shared by the kernel and process workers.
//
// Every worker restores the same memory snapshot (server/snapshot.py): an interpreter
// that has already imported and warmed up the kernel package. The page does the costly
// parts once and shares them (image.js): Pyodide's WebAssembly module compiled once
// and posted here (a worker instantiates it without compiling, and the browser keeps
// one copy of its code), and the snapshot's heap and the package's zip in
// SharedArrayBuffers (one copy for the tab, not one per worker). The heap comes sparse
// (server/snapshot.py): only its pages that hold anything, so a worker writes only those,
// and a page of its heap never written costs no memory. The package is imported from the zip itself (kernel/shipped.py): one file
// write instead of unpacking a hundred files in every worker.
//
// A worker gets its messages in this order: `prepare` (start importing Pyodide's
// JavaScript), `boot` (the compiled module: start the runtime) and `heap` (the heap and
// the zip: restore). The runtime starts while the page still fetches the heap.
//
// `boot` says which path it took: the page shows it, and a test fails on any slower
// fallback (tests/test_browser.py), so a slow path cannot ship silently.

const PAGE = 4096; // the system's memory page: the unit of the heap's runs
let pyodideModules = null; // the two ES modules, imported once per worker
let heapArrived;
const heap = new Promise((resolve) => { heapArrived = resolve; });

export function prepare(versions) {
  const indexURL = `/vendor/pyodide-${versions.pyodide}/`;
  pyodideModules ??= Promise.all([import(`${indexURL}pyodide.mjs`),
                                  import(`${indexURL}pyodide.asm.mjs`)]);
  return pyodideModules;
}

// `parts`: { runs, pages, heapBytes, archive } (image.js)
export function heapArrives(parts) {
  heapArrived(parts);
}

// Pyodide's own instantiateWasm adds two imports from a tiny WebAssembly module it
// compiles itself; where that module cannot run (iOS) it uses this marker instead,
// which is what a worker handed a compiled module uses too.
function errorMarkerImports() {
  const marker = Symbol("error marker");
  return { Jsv_GetError_import: () => marker, JsvError_Check: (value) => value === marker };
}

// Write the snapshot's heap into a fresh module's memory, run by run; where the
// snapshot is zero, zero only what the module's own start-up wrote.
function writeHeap(memory, { runs, pages, heapBytes }) {
  let done = 0;
  let taken = 0;
  for (let i = 0; i < runs.length; i += 2) {
    const [start, end] = [runs[i], runs[i + 1]];
    clearDirty(memory, done, start);
    memory.set(pages.subarray(taken, taken + end - start), start);
    taken += end - start;
    done = end;
  }
  clearDirty(memory, done, heapBytes);
}

function clearDirty(memory, start, end) {
  const words = new Uint32Array(memory.buffer, start, (end - start) / 4);
  const perPage = PAGE / 4;
  for (let i = 0; i < words.length; i++) {
    if (words[i] !== 0) { // reading a page never written maps no memory; writing would
      const from = i - (i % perPage);
      words.fill(0, from, from + perPage);
      i = from + perPage - 1;
    }
  }
}

const decodeBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

// `wasm`: the compiled module, or null where the page could not share one.
export async function boot({ versions, wasm }) {
  const began = performance.now();
  const steps = {}; // milliseconds each step took: the page keeps them for the profile
  let last = began;
  const step = (name) => {
    const now = performance.now();
    steps[name] = Math.round(now - last);
    last = now;
  };
  const [{ loadPyodide }, { default: createPyodideModule }] = await prepare(versions);
  step("import");
  const path = [wasm ? "shared module" : "FALLBACK: compiled its own module"];
  const pyodide = await loadPyodide({
    indexURL: `/vendor/pyodide-${versions.pyodide}/`,
    // Pyodide checks the header (magic, build id) and reads its own state from it;
    // the heap is written below, once it has arrived.
    _loadSnapshot: decodeBase64(versions.snapshotHeader),
    createPyodideModule: async (settings) => {
      settings.INITIAL_MEMORY = versions.snapshotMemory; // as if handed the whole snapshot
      if (wasm) {
        settings.instantiateWasm = (imports, done) => {
          Object.assign(imports.env, errorMarkerImports());
          WebAssembly.instantiate(wasm, imports).then((instance) => done(instance, wasm));
          return {}; // instantiating asynchronously
        };
      }
      const module = await createPyodideModule(settings);
      step("runtime");
      const sparseHeap = await heap;
      step("wait for the heap");
      const readHeader = module.API.restoreSnapshot;
      module.API.restoreSnapshot = (header) => {
        const state = readHeader(header);
        writeHeap(module.HEAPU8, sparseHeap);
        step("heap");
        return state;
      };
      path.push(`snapshot: ${sparseHeap.runs.length / 2} page runs`);
      return module;
    },
  });
  step("finalize");
  pyodide.FS.writeFile("/capos.zip", (await heap).archive); // on sys.path in the snapshot
  path.push("package zip");
  return { pyodide, path, steps };
}
