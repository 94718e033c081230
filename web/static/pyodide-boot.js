// Loading Pyodide and the kernel package: shared by the kernel and process workers.
export async function bootPython(versions) {
  const { loadPyodide } = await import(`/vendor/pyodide-${versions.pyodide}/pyodide.mjs`);
  const pyodide = await loadPyodide({ indexURL: `/vendor/pyodide-${versions.pyodide}/` });
  const archive = await (await fetch("/pkg/capos-playground.zip")).arrayBuffer();
  pyodide.unpackArchive(archive, "zip", { extractDir: "/capos" });
  pyodide.runPython("import sys; sys.path.insert(0, '/capos')");
  return pyodide;
}
