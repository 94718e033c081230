// Makes the Pyodide memory snapshot every worker of the playground starts from:
// Python initialised, the kernel package imported and warmed up (kernel/hosts/browser.py
// warm_up), so a worker restores a ready interpreter instead of booting one. The package
// is imported from its zip at /capos.zip, which every worker writes back after restoring
// (web/static/pyodide-boot.js): files are not part of a snapshot.
// Run by server/snapshot.py: node make-snapshot.mjs PYODIDE_DIR ARCHIVE OUT
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [pyodideDir, archivePath, outPath] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
const pyodide = await loadPyodide({ _makeSnapshot: true });
pyodide.FS.writeFile("/capos.zip", new Uint8Array(fs.readFileSync(archivePath)));
pyodide.runPython(`
import sys
sys.path.insert(0, "/capos.zip")
from kernel.hosts.browser import warm_up
warm_up()
`);
fs.writeFileSync(outPath, pyodide.makeMemorySnapshot());
