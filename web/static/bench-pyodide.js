// The floor any Pyodide page pays: a bare loadPyodide() in a worker, timed from here.
const versions = await (await fetch("/vendor/versions.json")).json();
const started = performance.now();
const worker = new Worker("/static/bench-pyodide-worker.js", { type: "module" });
worker.onmessage = () => { window.pyodideLoadMs = performance.now() - started; };
worker.postMessage(versions);
