// The owner's page of a server-hosted session (opened by play-page.js): xterm.js attached
// to it (capOS booted natively in a QEMU VM) over the terminal websocket (server/terminal.py).
// The socket reconnects by itself and resumes at the last offset it showed, so a
// dropped connection loses and repeats nothing; a reset clears the screen. What the owner
// types is echoed at once when the round trip is long (predict-view.js).
import { forkButton } from "/static/fork-button.js";
import { predictiveEcho } from "/static/predict-view.js";
import { markTourSteps, sharePanel } from "/static/share-panel.js";
import { openTerminal } from "/static/terminal.js";
import { connectTerminal } from "/static/terminal-socket.js";
import { openTour } from "/static/tour.js";

const status = document.getElementById("status");

// The guest kernel's MonitorSnapshots (server/monitorapi.py), relayed as the same
// "capos-monitor" events the tab's kernel worker produces: the monitoring views and
// tour checks work unchanged on a native session.
function watch(id) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`
    + `/api/sessions/${encodeURIComponent(id)}/monitor/stream`;
  const socket = new WebSocket(url);
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "snapshot") {
      window.dispatchEvent(new CustomEvent("capos-monitor",
        { detail: JSON.stringify(frame.snapshot) }));
    }
  };
  socket.onclose = (event) => { if (event.code !== 1000) setTimeout(() => watch(id), 2000); };
}

// Attach this page to session `id`, whose owner the page is; says on the page why not.
export async function attach(id) {
  try {
    await show(id);
  } catch (error) {
    status.textContent = `cannot attach: ${error}`;
  }
}

async function show(id) {
  const info = await fetch(`/api/sessions/${encodeURIComponent(id)}`);
  if (!info.ok) {
    status.textContent = (await info.json()).error;
    return;
  }
  const versions = await (await fetch("/vendor/versions.json")).json();
  const term = await openTerminal(versions);
  const prediction = predictiveEcho(term);
  window.capos = { term, session: id, prediction };
  connectTerminal(term, `/api/sessions/${encodeURIComponent(id)}/terminal`, {
    canType: true,
    prediction,
    sendsSize: true, // the owner's page sets the session's terminal size
    onStatus: (text, state) => { status.textContent = state === "live" ? "on the server" : text; },
  });
  watch(id);
  sharePanel(async () => id); // the page holds the id: it is the owner
  markTourSteps(() => id);
  forkButton(id, status);
  window.capos.tour = await openTour(term);
  term.focus();
}
