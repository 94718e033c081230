// The kernel's Web Worker: Pyodide, the kernel package, and the kernel itself.
let pyodide;

async function boot(versions) {
  const started = performance.now();
  const { loadPyodide } = await import(`/vendor/pyodide-${versions.pyodide}/pyodide.mjs`);
  pyodide = await loadPyodide({ indexURL: `/vendor/pyodide-${versions.pyodide}/` });
  const archive = await (await fetch("/pkg/capos-playground.zip")).arrayBuffer();
  pyodide.unpackArchive(archive, "zip", { extractDir: "/capos" });
  pyodide.runPython("import sys; sys.path.insert(0, '/capos')");
  const report = pyodide.runPython(`
from kernel.selfcheck import describe
describe()
`);
  const ms = Math.round(performance.now() - started);
  postMessage({ kind: "output", text: report.replaceAll("\n", "\r\n") });
  postMessage({ kind: "output", text: "\r\nThe kernel above ran in this tab. Its processes, each in a Web Worker "
    + "of its own, and the shell come next;\r\n`make run` in the repository opens the same "
    + "shell natively today.\r\n" });
  postMessage({ kind: "status", text: `kernel loaded in ${ms} ms` });
}

onmessage = ({ data }) => {
  if (data.kind === "boot") {
    boot(data.versions).catch((error) =>
      postMessage({ kind: "failed", text: `the kernel did not load: ${error}` }));
  }
};
