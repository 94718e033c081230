// One side of the round-trip floor (bench-floor.js). Everything a round trip does runs
// in Python, each Atomics call a call through Pyodide's FFI, as the kernel's own
// waiting would. The word counts up: ping writes odd values, pong answers with even.
// Browsers coarsen the clock (performance.now(), under time.perf_counter_ns) to steps
// near one round trip, so ping times blocks of BLOCK round trips: a sample is a block's
// mean, and a run's figure the median of its samples.
const SIDES = `
import itertools
import statistics
import time

from js import Atomics, Int32Array

WARMUP = 200
BLOCK = 10


def round_trip(cells, sent):
    Atomics.store(cells, 0, sent)
    Atomics.notify(cells, 0)
    while Atomics.load(cells, 0) == sent:
        Atomics.wait(cells, 0, sent)


def ping(word, runs, rounds):
    cells = Int32Array.new(word)
    odd = itertools.count(1, 2)
    for _ in range(WARMUP):
        round_trip(cells, next(odd))
    medians = []
    for _ in range(runs):
        samples = []
        for _ in range(rounds // BLOCK):
            start = time.perf_counter_ns()
            for _ in range(BLOCK):
                round_trip(cells, next(odd))
            samples.append((time.perf_counter_ns() - start) / BLOCK)
        medians.append(statistics.median(samples) / 1000)
    return medians


def pong(word, runs, rounds):
    cells = Int32Array.new(word)
    for i in range(WARMUP + runs * rounds):
        while Atomics.load(cells, 0) == 2 * i:
            Atomics.wait(cells, 0, 2 * i)
        Atomics.store(cells, 0, 2 * i + 2)
        Atomics.notify(cells, 0)
    return []
`;

let pyodide;
let word;

onmessage = async ({ data }) => {
  if (data.kind === "load") {
    const indexURL = `/vendor/pyodide-${data.versions.pyodide}/`;
    const { loadPyodide } = await import(`${indexURL}pyodide.mjs`);
    pyodide = await loadPyodide({ indexURL });
    pyodide.runPython(SIDES);
    word = data.word;
    postMessage("loaded");
  } else if (data.kind === "run") {
    const side = pyodide.globals.get(data.role);
    postMessage(side(word, data.runs, data.rounds).toJs());
  }
};
