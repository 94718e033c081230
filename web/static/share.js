// The viewer's page for a share link (/s/{token}): the live terminal, read-only for a
// view link. The server enforces the mode; the page only shows it.
import { connectTerminal, loadXterm } from "/static/terminal-socket.js";

async function main() {
  const token = location.pathname.split("/")[2];
  const status = document.getElementById("status");
  const info = await fetch(`/s/${token}/info`);
  if (!info.ok) {
    status.textContent = (await info.json()).error;
    document.body.dataset.state = "ended";
    return;
  }
  const { mode } = await info.json();
  document.getElementById("mode").textContent = mode === "drive" ? "shared: you can type" : "shared: view only";
  const { Terminal, FitAddon } = await loadXterm();
  const term = new Terminal({ fontSize: 15, disableStdin: mode !== "drive", cursorBlink: mode === "drive" });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();
  window.addEventListener("resize", () => fit.fit());
  window.capos = { term, mode };
  connectTerminal(term, `/s/${token}/terminal`, {
    canType: mode === "drive",
    onStatus: (text, state) => {
      status.textContent = text;
      document.body.dataset.state = state;
    },
  });
}

main();
