// A terminal websocket (server/terminal.py's protocol) driving an xterm.js Terminal.
//
// It keeps the offset of the next byte it expects, so a dropped connection
// reconnects with `resume` and gets exactly what it missed (or a `reset`,
// which clears the screen, when that fell out of the server's scrollback).
// Close codes 4404 (no such session or link), 4410 (the link stopped
// working) and an `exit` frame are final: no reconnect.

const utf8 = new TextEncoder();
const FINAL = new Set([1000, 1008, 4403, 4404, 4409, 4410, 4429]);

export async function loadXterm() {
  const versions = await (await fetch("/vendor/versions.json")).json();
  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = `/vendor/xterm-${versions.xterm}/css/xterm.css`;
  document.head.append(css);
  const { Terminal } = await import(`/vendor/xterm-${versions.xterm}/lib/xterm.mjs`);
  const { FitAddon } = await import(
    `/vendor/xterm-addon-fit-${versions["xterm-addon-fit"]}/lib/addon-fit.mjs`);
  return { Terminal, FitAddon };
}

// onStatus(text, state): state is "live", "reconnecting" or "ended".
export function connectTerminal(term, path, { onStatus, canType }) {
  let offset = 0;
  let socket = null;
  let over = false;
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${path}`);
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "resume", offset }));
      onStatus("live", "live");
    };
    socket.onmessage = ({ data }) => {
      const frame = JSON.parse(data);
      if (frame.type === "output") {
        term.write(frame.data);
        offset = frame.offset + utf8.encode(frame.data).length;
      } else if (frame.type === "reset") {
        term.reset();
        offset = frame.offset;
      } else if (frame.type === "exit") {
        over = true;
        onStatus(`ended: ${frame.reason}`, "ended");
      } else if (frame.type === "error") {
        onStatus(frame.message, over ? "ended" : "live");
      }
    };
    socket.onclose = (event) => {
      if (over || FINAL.has(event.code)) {
        over = true;
        if (event.reason) onStatus(`ended: ${event.reason}`, "ended");
        else if (document.body.dataset.state !== "ended") onStatus("ended", "ended");
        return;
      }
      onStatus("connection lost; reconnecting…", "reconnecting");
      setTimeout(open, 1000);
    };
  };
  if (canType) {
    term.onData((text) => {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ type: "input", data: text }));
      }
    });
  }
  open();
  return { close: () => { over = true; socket?.close(); } };
}
