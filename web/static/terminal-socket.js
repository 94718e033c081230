// A terminal websocket (server/terminal.py's protocol) driving an xterm.js Terminal.
//
// It keeps the offset of the next byte it expects, so a dropped connection
// reconnects with `resume` and gets exactly what it missed (or a `reset`,
// which clears the screen, when that fell out of the server's scrollback).
// Close codes 4404 (no such session or link), 4410 (the link stopped
// working) and an `exit` frame are final: no reconnect.

const utf8 = new TextEncoder();
const FINAL = new Set([1000, 1008, 4403, 4404, 4409, 4410, 4429]);
const MAX_INPUT = 16 * 1024; // bytes an input frame (the server refuses more)

// onStatus(text, state): state is "live", "reconnecting" or "ended". canType sends
// keystrokes; sendsSize reports the terminal's size (the session's owner does);
// `prediction` (predict.js), if given, sees each key before it is sent and checks its
// predictions after each output frame is in the terminal.
export function connectTerminal(term, path, {
  onStatus, canType, sendsSize = false, prediction = null,
}) {
  let offset = 0;
  let socket = null;
  let over = false;
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${path}`);
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "resume", offset }));
      if (sendsSize) sendSize();
      onStatus("live", "live");
    };
    socket.onmessage = ({ data }) => {
      const frame = JSON.parse(data);
      if (frame.type === "output") {
        term.write(frame.data, () => prediction?.check());
        offset = frame.offset + utf8.encode(frame.data).length;
      } else if (frame.type === "reset") {
        term.reset();
        prediction?.rollback();
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
  const send = (frame) => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  };
  const sendSize = () => send({ type: "resize", cols: term.cols, rows: term.rows });
  if (canType) {
    term.onData((text) => {
      if (utf8.encode(text).length <= MAX_INPUT) {
        prediction?.input(text);
        send({ type: "input", data: text });
      } else onStatus("that paste is too big to send at once", "live");
    });
  }
  if (sendsSize) term.onResize(sendSize);
  open();
  return { close: () => { over = true; socket?.close(); } };
}
