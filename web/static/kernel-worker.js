// The kernel's Web Worker. Once booted it lives inside Atomics.wait on its bell:
// everything reaches it through shared memory, and it answers with postMessage.
import { bootPython } from "/static/pyodide-boot.js";

onmessage = async ({ data }) => {
  if (data.kind !== "boot") return;
  try {
    const pyodide = await bootPython(data.versions);
    const report = pyodide.runPython("from kernel.selfcheck import describe\ndescribe()");
    postMessage({ kind: "selfcheck", text: report });
    const bridge = {
      bell: data.bell,
      terminalInput: data.terminalInput,
      ended: data.ended,
      size: data.size,
      newRegion: (size) => new SharedArrayBuffer(size),
      spawn: (pid, module, region) => postMessage({ kind: "spawn", pid, module, region }),
      stop: (pid) => postMessage({ kind: "stop", pid }),
      output: (bytes) => postMessage({ kind: "output", bytes: bytes.slice() }),
    };
    postMessage({ kind: "status", text: "booting…" });
    pyodide.pyimport("kernel.hosts.browser").run_kernel(bridge);
    postMessage({ kind: "halted" });
  } catch (error) {
    postMessage({ kind: "failed", text: `the kernel stopped: ${error}` });
  }
};
