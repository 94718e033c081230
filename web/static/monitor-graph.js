// The authority graph: processes and objects as nodes, held caps as edges.
// Processes stand in the left column, the objects they hold caps to in the
// right one (endpoints by their server, kernel objects last); a solid edge is
// a cap-table slot, a dashed one joins an endpoint to the process serving it.
// Clicking a node shows its cap table and ledger, or the object's holders.
import { el, origin, processDetail, table } from "/static/monitor-dom.js";

const SVG = "http://www.w3.org/2000/svg";
const ROW = 26;
const PROC_X = 16;
const OBJ_X = 300;
const NODE_W = 190;

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Every object some visible process holds a cap to, keyed by its objectId.
function objectsOf(snap) {
  const objects = new Map();
  for (const proc of snap.processes) {
    for (const cap of proc.caps) {
      const known = objects.get(cap.objectId);
      if (!known || cap.interface !== "Endpoint") { // prefer the interface clients see
        objects.set(cap.objectId, { id: cap.objectId, interface: cap.interface,
                                    object: cap.object, servedBy: cap.servedBy });
      }
    }
  }
  return [...objects.values()].sort((a, b) =>
    (a.servedBy || 1e9) - (b.servedBy || 1e9) || a.id.localeCompare(b.id));
}

function node(x, y, key, label, kind, selected, onSelect) {
  const group = svg("g", { class: `mon-node ${kind}${selected ? " selected" : ""}`,
                           "data-node": key, tabindex: "0", role: "button" });
  group.append(svg("rect", { x, y: y - ROW / 2 + 3, width: NODE_W, height: ROW - 6, rx: kind === "process" ? 10 : 2 }),
    svg("text", { x: x + 8, y: y + 4 }, label.length > 28 ? `${label.slice(0, 27)}…` : label),
    svg("title", {}, label));
  group.addEventListener("click", () => onSelect(key));
  group.addEventListener("keydown", (event) => { if (event.key === "Enter") onSelect(key); });
  return group;
}

export function drawGraph(snap, names, selected, onSelect) {
  const procs = [...snap.processes].sort((a, b) => a.pid - b.pid);
  const objects = objectsOf(snap);
  const procY = new Map(procs.map((p, i) => [p.pid, 20 + i * ROW]));
  const objY = new Map(objects.map((o, i) => [o.id, 20 + i * ROW]));
  const height = 20 + Math.max(procs.length, objects.length, 1) * ROW;
  const width = OBJ_X + NODE_W + 60;
  const picture = svg("svg", { id: "mon-graph", viewBox: `0 0 ${width} ${height}`,
                               width, height, role: "img", "aria-label": "authority graph" });
  const edges = svg("g", { class: "mon-edges" });
  const seen = new Set();
  for (const proc of procs) {
    for (const cap of proc.caps) {
      const key = `${proc.pid}->${cap.objectId}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const y1 = procY.get(proc.pid);
      const y2 = objY.get(cap.objectId);
      const line = svg("line", { x1: PROC_X + NODE_W, y1, x2: OBJ_X, y2, "data-edge": key,
                                 class: selected === `pid:${proc.pid}` || selected === cap.objectId ? "lit" : "" });
      line.append(svg("title", {}, `${proc.name}[${proc.pid}] holds ${cap.name || cap.interface}`));
      edges.append(line);
    }
  }
  for (const object of objects) {
    if (!object.servedBy || !procY.has(object.servedBy)) continue;
    const y1 = objY.get(object.id);
    const y2 = procY.get(object.servedBy);
    const bulge = OBJ_X + NODE_W + 50;
    edges.append(svg("path", { d: `M ${OBJ_X + NODE_W} ${y1} C ${bulge} ${y1}, ${bulge} ${y2}, ${PROC_X + NODE_W} ${y2}`,
                               class: "serves", "data-serves": `${object.id}->${object.servedBy}` }));
  }
  picture.append(edges);
  for (const proc of procs) {
    picture.append(node(PROC_X, procY.get(proc.pid), `pid:${proc.pid}`, `${proc.name} [${proc.pid}]`,
      "process", selected === `pid:${proc.pid}`, onSelect));
  }
  for (const object of objects) {
    const server = object.servedBy ? ` ← ${names.get(object.servedBy) ?? object.servedBy}` : "";
    picture.append(node(OBJ_X, objY.get(object.id), object.id, `${object.interface}${server}`,
      object.servedBy ? "endpoint" : "kernel", selected === object.id, onSelect));
  }
  const out = el("div", { class: "mon-graph" }, picture);
  const proc = procs.find((p) => selected === `pid:${p.pid}`);
  const object = objects.find((o) => o.id === selected);
  if (proc) out.append(processDetail(proc, names));
  if (object) {
    const holders = procs.flatMap((p) => p.caps.filter((c) => c.objectId === object.id).map((c) =>
      el("tr", {}, el("td", {}, `${p.name}[${p.pid}]`), el("td", {}, c.name || "-"),
        el("td", {}, c.interface), el("td", {}, c.transfer), el("td", {}, origin(c)))));
    const ep = snap.endpoints.find((e) => e.objectId === object.id);
    out.append(el("div", { class: "mon-detail", "data-detail": object.id },
      el("h3", {}, `${object.object} (${object.interface})`),
      el("p", {}, object.servedBy ? `served by ${names.get(object.servedBy)}[${object.servedBy}]` : "served by the kernel"),
      ep ? el("p", {}, `queue: ${ep.queuedCalls} waiting, ${ep.waitingReceives} receives, ${ep.inFlight} in flight`) : "",
      el("h4", {}, "held by"), table(["process", "as", "interface", "transfer", "origin"], holders)));
  }
  return out;
}
