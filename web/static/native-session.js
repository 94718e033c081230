// /play?session={id}: xterm.js attached to a server-hosted session (capOS booted
// natively in a QEMU VM) over the terminal websocket (server/terminal.py).
// The socket reconnects by itself and resumes at the last offset it showed, so a
// dropped connection loses and repeats nothing; a reset clears the screen.
const status = document.getElementById("status");
const MAX_INPUT = 16 * 1024; // bytes a frame (the server refuses more)
const encoder = new TextEncoder();

async function openTerminal() {
  const versions = await (await fetch("/vendor/versions.json")).json();
  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = `/vendor/xterm-${versions.xterm}/css/xterm.css`;
  document.head.append(css);
  const { Terminal } = await import(`/vendor/xterm-${versions.xterm}/lib/xterm.mjs`);
  const { FitAddon } = await import(
    `/vendor/xterm-addon-fit-${versions["xterm-addon-fit"]}/lib/addon-fit.mjs`);
  const term = new Terminal({ cursorBlink: true, fontSize: 15 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();
  window.addEventListener("resize", () => fit.fit());
  return term;
}

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

async function main() {
  const id = new URLSearchParams(location.search).get("session");
  const info = await fetch(`/api/sessions/${encodeURIComponent(id)}`);
  if (!info.ok) {
    status.textContent = (await info.json()).error;
    return;
  }
  const term = await openTerminal();
  window.capos = { term, session: id };
  attach(term, id);
  term.focus();
}

main().catch((error) => { status.textContent = `cannot attach: ${error}`; });
