// The tab kernel's LanguageModel cap, relayed to the server's model (server/modelapi.py).
//
// The kernel's worker asks for generations by message (model-start, model-cancel);
// this opens the socket at the first one and hands each event back through a shared
// queue the kernel drains, one JSON line {stream, event} each, because the kernel's
// worker never leaves Atomics.wait to read messages. A full queue keeps the rest here
// until the kernel has made room. A socket that drops ends every generation under way
// with an error (the shell says so), and the next request opens a new one.
const RETRY_MS = 20;
const utf8 = new TextEncoder();

// queue: a sharedQueue (play.js) the kernel drains; ring: wake the kernel.
export function relayModel(queue, ring) {
  let socket = null;
  const opening = []; // frames for a socket still connecting
  const active = new Set(); // streams under way
  const backlog = []; // lines the queue had no room for yet, oldest first
  let retry = null;

  const flush = () => {
    while (backlog.length && queue.push(backlog[0])) backlog.shift();
    ring();
    if (backlog.length && retry === null) {
      retry = setTimeout(() => { retry = null; flush(); }, RETRY_MS);
    }
  };
  const deliver = (stream, event) => {
    if ("done" in event || "error" in event) active.delete(stream);
    let line = utf8.encode(JSON.stringify({ stream, event }) + "\n");
    if (line.length > queue.capacity) { // never happens with the server's bounds; still ends it
      active.delete(stream);
      line = utf8.encode(JSON.stringify({ stream, event: { error: "an event too big" } }) + "\n");
    }
    backlog.push(line);
    flush();
  };
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/api/model/stream`);
    socket = ws;
    ws.onopen = () => { for (const frame of opening.splice(0)) ws.send(frame); };
    ws.onmessage = ({ data }) => {
      const frame = JSON.parse(data);
      if (frame.type === "event") deliver(frame.stream, frame.event);
      else console.warn(`capOS model relay: ${frame.message}`);
    };
    ws.onclose = (event) => {
      if (socket === ws) socket = null;
      opening.length = 0;
      const why = event.reason || `code ${event.code}`;
      for (const stream of [...active]) {
        deliver(stream, { error: `the connection to the server's model closed (${why}); ask again` });
      }
    };
  };
  const send = (frame) => {
    if (socket === null) open();
    if (socket.readyState === WebSocket.OPEN) socket.send(frame);
    else opening.push(frame);
  };
  return {
    // request: the generate params as JSON, from kernel/hosts/browser.py
    start(stream, request) {
      active.add(stream);
      send(`{"type":"generate","stream":${stream},"request":${request}}`);
    },
    cancel(stream) {
      if (active.has(stream)) send(JSON.stringify({ type: "cancel", stream }));
    },
  };
}
