// One capOS process: Pyodide loaded ahead of time (the pool), then one program run.
import { bootPython } from "/static/pyodide-boot.js";

let pyodide;
let queued = null;

async function run({ pid, module, region, bell }) {
  try {
    const browser = pyodide.pyimport("kernel.hosts.browser");
    browser.run_process(module, region, bell);
    postMessage({ kind: "exited", pid });
  } catch (error) {
    postMessage({ kind: "crashed", pid, text: String(error) });
  }
}

onmessage = async ({ data }) => {
  if (data.kind === "boot") {
    pyodide = await bootPython(data.versions);
    postMessage({ kind: "ready" });
    if (queued) run(queued);
  } else if (data.kind === "run") {
    if (pyodide) run(data);
    else queued = data;
  }
};
