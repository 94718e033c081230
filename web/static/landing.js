// The landing page: "Run on the server" beside "Open the playground", and the guided
// tours (from /api/tours, server/tourapi.py), each in the tab or on the server.
import { serverButton } from "/static/run-on-server.js";

const note = document.getElementById("run-on-server-note");
const server = serverButton("Run on the server", note);
server.id = "run-on-server";
document.getElementById("open").append(" ", server);

const list = document.getElementById("tours");
const tours = await (await fetch("/api/tours")).json();
for (const tour of tours) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  const query = `tour=${encodeURIComponent(tour.name)}&step=1`;
  link.href = `/play?${query}`;
  link.textContent = tour.title;
  const summary = document.createElement("span");
  summary.textContent = ` ${tour.summary} (${tour.steps} steps) `;
  const onServer = serverButton("on the server", note, query);
  onServer.classList.add("small");
  item.append(link, summary, onServer);
  list.append(item);
}
