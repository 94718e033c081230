// The owner's share controls, for any session whose id the page holds: make view and
// drive links, see who is watching and end any of them, revoke links, start and stop
// a recording (its keystrokes too only when the owner ticks that box, as they would
// include any password typed) and drop markers (chapters) into it. Everything goes
// through the API in server/shareapi.py and server/recordapi.py. A link's address
// (its token) is answered only when the link or recording is made, as the server
// keeps only its digest: the panel remembers the addresses it was given, for this tab.
// An agent link hands the tab to an outside agent (MCP or REST, the link as its
// session): the header says while one is attached, and the panel lists its calls.

const MAX_CALLS = 50; // the agent's calls the panel lists, newest last

// Each tour step (web/static/tour.js announces them) is a chapter in a running
// recording of the session `current()` names, if any yet (409: none is running, fine),
// so a replay's chapters are the tour's steps.
export function markTourSteps(current) {
  document.addEventListener("capos:tour-step", ({ detail }) => {
    const id = current();
    if (id === null) return;
    fetch(`/api/sessions/${encodeURIComponent(id)}/markers`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ label: detail }),
    });
  });
}

function el(tag, { dataset = {}, ...props } = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  Object.assign(node.dataset, dataset);
  node.append(...children);
  return node;
}

export function sharePanel(sessionId) {
  const panel = el("div", { id: "share-panel", className: "share-panel", hidden: true });
  const message = el("span", { id: "share-message" });
  const links = el("ul", { id: "share-links" });
  const recordings = el("ul", { id: "share-recordings" });
  const calls = el("ol", { id: "agent-calls" });
  const attached = el("button", { id: "agent-attached", hidden: true, textContent: "agent attached",
                                  onclick: () => { panel.hidden = false; refresh().catch(() => {}); } });
  const lastCall = new Map(); // agent link id -> when its agent last called
  let cut = new Set(); // agent links revoked or expired
  const showAttached = () => {
    const live = [...lastCall.keys()].filter((id) => !cut.has(id));
    attached.hidden = live.length === 0;
    attached.title = live.length ? `last call ${new Date(Math.max(...live.map((id) => lastCall.get(id)))).toLocaleTimeString()}` : "";
  };
  const remembered = JSON.parse(sessionStorage.getItem("capos-links") || "{}");
  const remember = (answer) => {
    if (answer.url) {
      remembered[answer.id] = answer.url;
      sessionStorage.setItem("capos-links", JSON.stringify(remembered));
    }
  };
  const linkTo = (id, props, text) => (remembered[id]
    ? el("a", { href: remembered[id], target: "_blank", textContent: text, ...props })
    : el("span", { title: "its address was shown only where it was made", textContent: text, ...props }));
  const api = async (method, path, body) => {
    const id = await sessionId();
    const response = await fetch(`/api/sessions/${id}${path}`, {
      method, headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = response.status === 204 ? {} : await response.json();
    if (!response.ok) throw new Error(answer.error);
    remember(answer);
    return answer;
  };
  const act = (fn) => async () => {
    try { message.textContent = ""; await fn(); await refresh(); } catch (error) { message.textContent = error.message; }
  };
  const refresh = async () => {
    const { shares } = await api("GET", "/shares");
    cut = new Set(shares.filter((s) => s.revoked || s.expires_at * 1000 <= Date.now()).map((s) => s.id));
    showAttached();
    links.replaceChildren(...shares.filter((s) => !s.revoked).map((share) => el("li",
      { dataset: { shareId: share.id, mode: share.mode } },
      linkTo(share.id, { className: "link" }, `${share.mode} link`),
      share.mode === "agent"
        ? ` for an MCP client of ${location.origin}/mcp: pass the link as \`session\` `
        : ` ${share.viewers.length} watching `,
      el("button", { className: "revoke", textContent: "revoke", onclick: act(() => api("DELETE", `/shares/${share.id}`)) }),
      ...share.viewers.map((viewer) => el("button", {
        className: "end-viewer", textContent: `end ${viewer.ip}`,
        onclick: act(() => api("DELETE", `/viewers/${viewer.id}`)),
      })))));
    const { recordings: list } = await api("GET", "/recordings");
    recordings.replaceChildren(...list.map((rec) => el("li", { dataset: { recordingId: rec.id } },
      linkTo(rec.id, { className: "replay" }, rec.recording ? "recording…" : "replay"),
      rec.input ? " with keystrokes" : "",
      rec.reason ? ` (${rec.reason})` : "")));
  };
  const keystrokes = el("input", { type: "checkbox", id: "share-record-input" });
  const running = () => [...recordings.querySelectorAll("li")]
    .find((li) => li.querySelector(".replay").textContent === "recording…");
  panel.append(
    el("button", { id: "share-view", textContent: "view link", onclick: act(() => api("POST", "/shares", { mode: "view" })) }),
    el("button", { id: "share-drive", textContent: "drive link", onclick: act(() => api("POST", "/shares", { mode: "drive" })) }),
    el("button", { id: "share-agent", textContent: "agent link", title: "Hand this tab to an outside agent: it gets the same tools as for a server session, with this tab's caps", onclick: act(() => api("POST", "/shares", { mode: "agent" })) }),
    el("button", { id: "share-record", textContent: "record", onclick: act(() => api("POST", "/recordings", { input: keystrokes.checked })) }),
    el("label", { title: "Everything typed goes into the recording, passwords included, for anyone with its replay link to see." },
      keystrokes, " record keystrokes too (passwords included)"),
    el("button", { id: "share-mark", textContent: "marker", onclick: act(() => api("POST", "/markers", { label: `marker ${new Date().toLocaleTimeString()}` })) }),
    el("button", { id: "share-stop", textContent: "stop recording", onclick: act(async () => {
      const li = running();
      if (li) await api("POST", `/recordings/${li.dataset.recordingId}/stop`);
    }) }),
    links, recordings, calls, message);
  const toggle = el("button", { id: "share-toggle", textContent: "share", onclick: act(async () => { panel.hidden = !panel.hidden; }) });
  document.querySelector("header").append(toggle, attached);
  document.querySelector("header").after(panel);
  setInterval(() => { if (!panel.hidden) refresh().catch(() => {}); }, 2000);
  // What an agent did through an agent link (an `agent-call` frame, server/sessions/tab.py).
  const agentCalled = ({ link, tool, target, outcome }) => {
    if (!cut.has(link)) lastCall.set(link, Date.now());
    calls.append(el("li", { dataset: { link, tool, outcome }, textContent:
      `${new Date().toLocaleTimeString()} ${tool}${target ? " " + target : ""}${outcome === "ok" ? "" : ` (refused: ${outcome})`}` }));
    while (calls.children.length > MAX_CALLS) calls.firstChild.remove();
    showAttached();
  };
  return { refresh, agentCalled };
}
