// The monitoring views beside the terminal (web/static/monitor-panel.js). They draw
// MonitorSnapshots arriving as JSON in "capos-monitor" events: play.js relays the
// tab's kernel worker's (kernel/hosts/monitorfeed.py), and any other source (a
// native session's stream) can dispatch the same.
import { MonitorPanel } from "/static/monitor-panel.js";

const root = document.getElementById("monitor");
const panel = new MonitorPanel(root, { isOpen: () => document.body.classList.contains("monitor-open") });
const toggle = document.getElementById("monitor-toggle");
const setOpen = (open) => {
  document.body.classList.toggle("monitor-open", open);
  toggle.setAttribute("aria-expanded", String(open));
  if (open) panel.render();
};
toggle.addEventListener("click", () => setOpen(!document.body.classList.contains("monitor-open")));
setOpen(window.matchMedia("(min-width: 1500px)").matches);
window.addEventListener("capos-monitor", ({ detail }) => panel.update(JSON.parse(detail)));
window.caposMonitor = panel; // for tests and the curious: the latest snapshot is .snapshot
