// Loading Pyodide and the kernel package: shared by the kernel and process workers.
// Every worker restores the same memory snapshot (server/snapshot.py): an interpreter
// that has already imported and warmed up the kernel package. The page fetches the
// snapshot and the package archive once and hands each worker a copy (`image`). Files
// are not part of a snapshot, so the archive is unpacked again for what is read later.
export async function bootPython({ versions, snapshot, archive }) {
  const indexURL = `/vendor/pyodide-${versions.pyodide}/`;
  const { loadPyodide } = await import(`${indexURL}pyodide.mjs`);
  const pyodide = await loadPyodide({ indexURL, _loadSnapshot: snapshot });
  pyodide.unpackArchive(archive, "zip", { extractDir: "/capos" });
  return pyodide;
}
