// The playground page: checks the browser can share memory between workers,
// opens the terminal, and starts the kernel's worker.
const status = document.getElementById("status");

function problem(text) {
  status.textContent = "cannot start";
  const box = document.createElement("div");
  box.id = "problem";
  box.innerHTML = "<h2>This browser cannot run capOS in the tab</h2>";
  const detail = document.createElement("p");
  detail.textContent = text;
  box.append(detail);
  document.getElementById("terminal").replaceWith(box);
}

async function main() {
  if (!window.crossOriginIsolated || typeof SharedArrayBuffer === "undefined") {
    problem("capOS runs every process in its own Web Worker and shares each process's "
      + "ring with the kernel through SharedArrayBuffer, which needs a cross-origin "
      + "isolated page. This page was not isolated (is it behind a proxy that drops the "
      + "Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy headers?). "
      + "Use a current Chrome, Edge or Firefox.");
    return;
  }
  const versions = await (await fetch("/vendor/versions.json")).json();
  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = `/vendor/xterm-${versions.xterm}/css/xterm.css`;
  document.head.append(css);
  const { Terminal } = await import(`/vendor/xterm-${versions.xterm}/lib/xterm.mjs`);
  const { FitAddon } = await import(
    `/vendor/xterm-addon-fit-${versions["xterm-addon-fit"]}/lib/addon-fit.mjs`);
  const term = new Terminal({ cursorBlink: true, convertEol: false, fontSize: 15 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();
  window.addEventListener("resize", () => fit.fit());
  window.capos = { term };

  status.textContent = "loading the kernel…";
  const kernel = new Worker("/static/kernel-worker.js", { type: "module" });
  kernel.onmessage = ({ data }) => {
    if (data.kind === "output") term.write(data.text);
    else if (data.kind === "status") status.textContent = data.text;
    else if (data.kind === "failed") problem(data.text);
  };
  kernel.onerror = (event) => problem(`the kernel worker failed: ${event.message}`);
  kernel.postMessage({ kind: "boot", versions });
}

main().catch((error) => problem(String(error)));
