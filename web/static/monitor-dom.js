// DOM helpers the monitoring views share (web/static/monitor*.js).

// A tiny element builder: el("td", { class: "x" }, "text", child, ...).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

export function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

export const seconds = (ns) => (ns / 1e9).toFixed(3);
export const duration = (ns) => (ns < 1e6 ? `${Math.round(ns / 1e3)}us` : `${(ns / 1e6).toFixed(1)}ms`);

// A hold edge's origin, and why calls through it fail if they do (a dead server, an ended session).
export function origin(cap) {
  return cap.revoked ? `${cap.origin}; revoked: ${cap.revoked}` : cap.origin;
}

// A process's cap table and ledger: what clicking a process shows.
export function processDetail(proc, names) {
  const caps = proc.caps.map((c) => el("tr", { "data-cap": c.capId },
    el("td", {}, `0x${c.capId.toString(16)}`), el("td", {}, c.name || "-"),
    el("td", {}, c.interface), el("td", {}, c.object),
    el("td", {}, c.servedBy ? `${names.get(c.servedBy) ?? "?"}[${c.servedBy}]` : "kernel"),
    el("td", {}, c.transfer), el("td", {}, origin(c))));
  const ledger = proc.ledger.map((u) => el("tr", {},
    el("td", {}, u.resource), el("td", {}, `${u.used} / ${u.limit}`)));
  const errors = proc.counters.errors.map((e) => `${e.name} ×${e.count}`).join(", ") || "none";
  return el("div", { class: "mon-detail", "data-detail": `pid:${proc.pid}` },
    el("h3", {}, `pid ${proc.pid} ${proc.name} (${proc.binary})`),
    el("p", {}, `ring: ${proc.counters.enters} enters, ${proc.counters.sqes} SQEs, `
      + `${proc.counters.cqes} CQEs, CQ overflow ${proc.counters.cqOverflow}; errors: ${errors}`),
    el("h4", {}, "cap table"),
    table(["cap", "name", "interface", "object", "served by", "transfer", "origin"], caps),
    el("h4", {}, "ledger"), table(["resource", "used / limit"], ledger));
}
