// The owner's share controls, for any session whose id the page holds: make view and
// drive links, see who is watching and end any of them, revoke links, start and stop
// a recording (its keystrokes too only when the owner ticks that box, as they would
// include any password typed) and drop markers (chapters) into it. Everything goes
// through the API in server/shareapi.py and server/recordapi.py. A link's address
// (its token) is answered only when the link or recording is made, as the server
// keeps only its digest: the panel remembers the addresses it was given, for this tab.

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
    links.replaceChildren(...shares.filter((s) => !s.revoked).map((share) => el("li",
      { dataset: { shareId: share.id, mode: share.mode } },
      linkTo(share.id, { className: "link" }, `${share.mode} link`),
      ` ${share.viewers.length} watching `,
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
    el("button", { id: "share-record", textContent: "record", onclick: act(() => api("POST", "/recordings", { input: keystrokes.checked })) }),
    el("label", { title: "Everything typed goes into the recording, passwords included, for anyone with its replay link to see." },
      keystrokes, " record keystrokes too (passwords included)"),
    el("button", { id: "share-mark", textContent: "marker", onclick: act(() => api("POST", "/markers", { label: `marker ${new Date().toLocaleTimeString()}` })) }),
    el("button", { id: "share-stop", textContent: "stop recording", onclick: act(async () => {
      const li = running();
      if (li) await api("POST", `/recordings/${li.dataset.recordingId}/stop`);
    }) }),
    links, recordings, message);
  const toggle = el("button", { id: "share-toggle", textContent: "share", onclick: act(async () => { panel.hidden = !panel.hidden; }) });
  document.querySelector("header").append(toggle);
  document.querySelector("header").after(panel);
  setInterval(() => { if (!panel.hidden) refresh().catch(() => {}); }, 2000);
  return { refresh };
}
