// /play?session={id}: xterm.js attached to a server-hosted session (capOS booted
// natively in a QEMU VM) over the terminal websocket (server/terminal.py).
// The socket reconnects by itself and resumes at the last offset it showed, so a
// dropped connection loses and repeats nothing; a reset clears the screen.
import { openTerminal } from "/static/terminal.js";
import { openTour } from "/static/tour.js";

const status = document.getElementById("status");
const MAX_INPUT = 16 * 1024; // bytes a frame (the server refuses more)
const encoder = new TextEncoder();

function attach(term, id) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`
    + `/api/sessions/${encodeURIComponent(id)}/terminal`;
  let offset = 0;
  let socket = null;
  let ended = false;
  let retry = 250;
  const send = (frame) => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  };
  const resize = () => send({ type: "resize", cols: term.cols, rows: term.rows });

  const connect = () => {
    socket = new WebSocket(url);
    socket.onopen = () => {
      retry = 250;
      status.textContent = "on the server";
      socket.send(JSON.stringify({ type: "resume", offset }));
      resize();
    };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "output") {
        term.write(frame.data);
        offset = frame.offset + encoder.encode(frame.data).length;
      } else if (frame.type === "reset") {
        term.reset();
        offset = frame.offset;
      } else if (frame.type === "exit") {
        ended = true;
        status.textContent = `ended: ${frame.reason}`;
      } else if (frame.type === "error") {
        status.textContent = frame.message;
      }
    };
    socket.onclose = () => {
      if (ended) return;
      status.textContent = "reconnecting…";
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 8000);
    };
  };

  term.onData((text) => {
    const bytes = encoder.encode(text);
    if (bytes.length <= MAX_INPUT) send({ type: "input", data: text });
    else status.textContent = "that paste is too big to send at once";
  });
  term.onResize(resize);
  connect();
}

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

async function main() {
  const id = new URLSearchParams(location.search).get("session");
  const info = await fetch(`/api/sessions/${encodeURIComponent(id)}`);
  if (!info.ok) {
    status.textContent = (await info.json()).error;
    return;
  }
  const versions = await (await fetch("/vendor/versions.json")).json();
  const term = await openTerminal(versions);
  window.capos = { term, session: id };
  attach(term, id);
  watch(id);
  window.capos.tour = await openTour(term);
  term.focus();
}

main().catch((error) => { status.textContent = `cannot attach: ${error}`; });
