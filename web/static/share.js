// The viewer's page for a share link (/s/{token}): the live terminal, read-only for a
// view link. The server enforces the mode; the page only shows it. An agent link's
// page drives like a drive link's, and says where the agent uses the link. Typing gets
// predictive echo (predict-view.js); a view link types nothing, so it has none.
import { predictiveEcho } from "/static/predict-view.js";
import { openTerminal } from "/static/terminal.js";
import { connectTerminal } from "/static/terminal-socket.js";

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
  const canType = mode !== "view";
  document.getElementById("mode").textContent = {
    view: "shared: view only", drive: "shared: you can type",
    agent: `agent link: an MCP client of ${location.origin}/mcp takes this address as its session; you can type`,
  }[mode];
  const versions = await (await fetch("/vendor/versions.json")).json();
  const term = await openTerminal(versions, { disableStdin: !canType, cursorBlink: canType });
  const prediction = canType ? predictiveEcho(term) : null;
  window.capos = { term, mode, prediction };
  connectTerminal(term, `/s/${token}/terminal`, {
    canType,
    prediction,
    onStatus: (text, state) => {
      status.textContent = text;
      document.body.dataset.state = state;
    },
  });
}

main();
