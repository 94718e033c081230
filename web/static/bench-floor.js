// The floor under any cross-worker call in the playground: two Pyodide workers
// ping-ponging one SharedArrayBuffer word with Atomics.wait/notify called from Python.
// ?runs=N&rounds=M (defaults 5 and 2000); each run's median round trip (µs) lands in
// window.floorRttUs once both workers are done.
const query = new URLSearchParams(location.search);
const runs = Number(query.get("runs")) || 5;
const rounds = Number(query.get("rounds")) || 2000;
const versions = await (await fetch("/vendor/versions.json")).json();
const word = new SharedArrayBuffer(4);

// One request, one answer: each side answers a message before it gets the next.
const ask = (worker, message) => new Promise((resolve) => {
  worker.onmessage = ({ data }) => resolve(data);
  worker.postMessage(message);
});

const sides = ["ping", "pong"].map((role) => ({
  role, worker: new Worker("/static/bench-floor-worker.js", { type: "module" }),
}));
// both loaded before either starts: only the round trips count
await Promise.all(sides.map(({ worker }) => ask(worker, { kind: "load", versions, word })));
const [medians] = await Promise.all(
  sides.map(({ role, worker }) => ask(worker, { kind: "run", role, runs, rounds })));
window.floorRttUs = medians;
