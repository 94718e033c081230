// Sharing a tab session: the tab's terminal output goes to the server, which fans it
// out to share links (server/relay.py); keystrokes from drive links come back here.
// The owner's own keystrokes go to the server only while it asks for them (`keys`):
// while a recording runs whose owner chose to keep keystrokes. Likewise the tab's
// monitor snapshots (`monitor`): while a recording runs, it keeps them in its
// monitor timeline (server/monitortimeline.py) for the replay page's views.
//
// Nothing is sent until the owner first shares or records: then the page makes a
// tab session (POST /api/tabs), whose id only this page holds (it is the owner's
// proof), and keeps its relay socket open, reconnecting if it drops. The page
// keeps its last KEEP bytes of output, so after a reconnect it resends from where
// the server says it left off. Closing the tab closes the socket with 1001 ("going
// away"), and the server ends the session for viewers with that reason.
//
// An agent link's agent reaches this tab's shell through the same socket: each
// `agent` frame is queued for the kernel's AgentPort (`queueAgent`), and the shell's
// answer goes back as `agent-reply` (server/sessions/tab.py). `agent-call` frames
// tell the share panel what the agent did.
import { markTourSteps, sharePanel } from "/static/share-panel.js";

const KEEP = 256 * 1024;
const KEYS_CHUNK = 4 * 1024; // characters: at most the server's 16 KiB a frame in UTF-8
const MONITOR_FRAME = 512 * 1024; // characters: the most the server takes (RELAY_FRAME)
const utf8 = new TextEncoder();

export function shareTab(term, typeIn, queueAgent) {
  const decoder = new TextDecoder();
  const kept = []; // {offset, text}: the recent output, oldest first
  let keptBytes = 0;
  let end = 0; // offset after the last byte of output
  let socket = null;
  let live = false; // resumed: new output goes straight out
  let session = null; // {id, relay} once shared
  let over = false;
  let sendKeys = false; // a recording that keeps keystrokes is running
  let sendMonitor = false; // a recording is running: it keeps the monitor's snapshots
  let snapshot = null; // the newest, as JSON: sent at once when the server asks
  const sendSnapshot = () => {
    if (!live || !sendMonitor || snapshot === null) return;
    const frame = `{"type":"monitor","snapshot":${snapshot}}`;
    if (frame.length <= MONITOR_FRAME) socket.send(frame);
  };
  window.addEventListener("capos-monitor", ({ detail }) => { snapshot = detail; sendSnapshot(); });

  const send = (frame) => socket.send(JSON.stringify(frame));
  const sendSize = () => { if (live) send({ type: "size", cols: term.cols, rows: term.rows }); };
  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${session.relay}`);
    socket.onmessage = ({ data }) => {
      const frame = JSON.parse(data);
      if (frame.type === "resume") {
        for (const chunk of kept) {
          if (chunk.offset + utf8.encode(chunk.text).length > frame.offset) {
            send({ type: "output", offset: chunk.offset, data: chunk.text });
          }
        }
        live = true;
        sendSize();
      } else if (frame.type === "input") {
        typeIn(frame.data);
      } else if (frame.type === "agent") {
        const line = JSON.stringify({ id: frame.id, request: frame.request }) + "\n";
        if (!queueAgent(line)) {
          const error = { kind: "busy", type: "", message: "the tab's queue of agent requests is full" };
          send({ type: "agent-reply", id: frame.id, response: { error } });
        }
      } else if (frame.type === "agent-call") {
        panel.agentCalled(frame);
      } else if (frame.type === "keys") {
        sendKeys = frame.record;
      } else if (frame.type === "monitor") {
        sendMonitor = frame.record;
        sendSnapshot();
      } else if (frame.type === "exit") {
        over = true;
      }
    };
    socket.onclose = (event) => {
      live = false;
      sendKeys = false; // the server says again after a reconnect
      sendMonitor = false;
      if (!over && event.code !== 4404 && event.code !== 4409) setTimeout(connect, 1000);
    };
  };
  const ensure = async () => {
    if (session === null) {
      const response = await fetch("/api/tabs", { method: "POST" });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error);
      session = body;
      window.caposShare = { id: body.id }; // the owner's page: tests and the console use it
      connect();
    }
    return session.id;
  };
  term.onResize(sendSize);
  const panel = sharePanel(ensure);
  markTourSteps(() => session?.id ?? null);
  return {
    output(bytes) {
      const text = decoder.decode(bytes, { stream: true });
      if (!text) return;
      const size = utf8.encode(text).length;
      kept.push({ offset: end, text });
      keptBytes += size;
      while (keptBytes - utf8.encode(kept[0].text).length >= KEEP) {
        keptBytes -= utf8.encode(kept.shift().text).length;
      }
      if (live) send({ type: "output", offset: end, data: text });
      end += size;
    },
    agentReply(json) { // the tab's shell answered an agent request (kernel/hosts/browser.py)
      const { id, ...response } = JSON.parse(json);
      if (live) send({ type: "agent-reply", id, response }); // else the server failed it
    },
    keys(text) { // the owner typed `text` (the tab's own kernel has it already)
      const chars = [...text]; // whole characters: a chunk never splits a surrogate pair
      for (let at = 0; live && sendKeys && at < chars.length; at += KEYS_CHUNK) {
        send({ type: "keys", data: chars.slice(at, at + KEYS_CHUNK).join("") });
      }
    },
  };
}
