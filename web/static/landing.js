// The landing page's list of guided tours, from /api/tours (server/tourapi.py).
const list = document.getElementById("tours");
const tours = await (await fetch("/api/tours")).json();
for (const tour of tours) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = `/play?tour=${encodeURIComponent(tour.name)}&step=1`;
  link.textContent = tour.title;
  const summary = document.createElement("span");
  summary.textContent = ` ${tour.summary} (${tour.steps} steps)`;
  item.append(link, summary);
  list.append(item);
}
