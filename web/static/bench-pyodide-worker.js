onmessage = async ({ data: versions }) => {
  const { loadPyodide } = await import(`/vendor/pyodide-${versions.pyodide}/pyodide.mjs`);
  await loadPyodide({ indexURL: `/vendor/pyodide-${versions.pyodide}/` });
  postMessage("loaded");
};
