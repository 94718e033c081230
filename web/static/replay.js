// The replay page (/r/{id}): asciinema-player (served from /vendor, pinned in
// package.json; asciicast v3 since its 3.10.0) plays the cast, v3 as recorded now
// or v2 as recorded before; its markers (`m` events: tour steps and the owner's)
// become chapters to jump to, and its keystrokes (`i` events, when the owner chose
// to record them) show in the player's keystroke overlay. Changing the speed keeps
// the position. Beside it, the monitoring views (web/static/monitor-panel.js) show
// the system as it was at the player's time, from the recording's monitor timeline
// (web/static/monitor-timeline.js): pause, seek or change the speed and they follow.
import { MonitorPanel } from "/static/monitor-panel.js";
import { Timeline } from "/static/monitor-timeline.js";

const IDLE_LIMIT = 2; // s: the player squeezes a longer pause to this
const FOLLOW_MS = 200; // how often the views look at the player's time

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

// The cast's version and its events with their times from the start (s): a v3
// line holds the interval since the event before, a v2 line the time itself.
function parseCast(cast) {
  const [header, ...lines] = cast.split("\n");
  const { version } = JSON.parse(header);
  let time = 0;
  const events = lines.filter((line) => line.startsWith("[")).map((line) => {
    const [seconds, kind, data] = JSON.parse(line);
    time = version === 3 ? time + seconds : seconds;
    return { time, kind, data };
  });
  return { version, events };
}

// The player squeezes each pause longer than IDLE_LIMIT to that, so after one its
// clock runs behind the cast's. Each event's time on both clocks: the markers go to
// the player on its clock, and `castTime` maps the player's time back to the cast's,
// on which the monitor timeline is.
function idleClock(events) {
  let before = 0;
  let shift = 0;
  const points = events.map((event) => {
    shift += Math.max(0, event.time - before - IDLE_LIMIT);
    before = event.time;
    return { cast: event.time, player: event.time - shift };
  });
  const castTime = (time) => {
    let low = 0;
    let high = points.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (points[mid].player <= time) low = mid + 1;
      else high = mid;
    }
    const point = points[low - 1] ?? { cast: 0, player: 0 };
    return point.cast + (time - point.player);
  };
  return { points, castTime };
}

// The recording's monitor timeline, or null when it has none (404); {error} when it
// cannot be read (the player plays on without the views).
async function loadTimeline(url) {
  const response = await fetch(url);
  if (!response.ok) return null;
  try {
    return new Timeline(await response.text());
  } catch (error) {
    return { error: error.message };
  }
}

async function main() {
  const id = location.pathname.split("/")[2];
  const status = document.getElementById("status");
  const castUrl = `/r/${id}.cast`;
  document.getElementById("download").href = `${castUrl}?download`;
  document.getElementById("download-v2").href = `${castUrl}?download&format=v2`;
  const versions = await (await fetch("/vendor/versions.json")).json();
  const base = `/vendor/asciinema-player-${versions["asciinema-player"]}/dist/bundle`;
  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = `${base}/asciinema-player.css`;
  document.head.append(css);
  await loadScript(`${base}/asciinema-player.min.js`);
  const [cast, loaded] = await Promise.all([
    fetch(castUrl).then((response) => response.text()),
    loadTimeline(`/r/${id}.monitor`),
  ]);
  const timeline = loaded?.error ? null : loaded;
  const { version, events } = parseCast(cast);
  const clock = idleClock(events);
  const chapters = events.flatMap((e, i) => (e.kind === "m"
    ? [{ time: e.time, at: clock.points[i].player, label: e.data }] : []));
  const keystrokes = events.some((e) => e.kind === "i");
  const element = document.getElementById("player");
  let player = null;
  const create = (speed, startAt) => {
    player?.dispose();
    player = window.AsciinemaPlayer.create({ data: cast }, element, {
      speed, startAt, markers: chapters.map((c) => [c.at, c.label]), fit: "width",
      idleTimeLimit: IDLE_LIMIT, keystrokeOverlay: keystrokes,
    });
    window.capos = { player, chapters, speed, version, keystrokes, monitor };
  };
  const monitor = timeline && follow(timeline, clock, () => player);
  create(1, 0);
  const nav = document.getElementById("chapters");
  chapters.forEach((chapter, index) => {
    const button = document.createElement("button");
    button.textContent = chapter.label;
    button.dataset.chapter = String(index);
    button.onclick = () => player.seek({ marker: index }).then(() => player.play());
    nav.append(button);
  });
  document.getElementById("speed").onchange = (event) => {
    create(Number(event.target.value), clock.castTime(player.getCurrentTime())); // startAt: cast time
    player.play();
  };
  status.textContent = [
    chapters.length ? `${chapters.length} chapters` : "",
    keystrokes ? "keystrokes shown (k hides them)" : "",
    timeline ? "the monitor shows the system at the player's time" : "",
    timeline?.note ? `(its timeline ${timeline.note})` : "",
    loaded?.error ? `its monitor timeline could not be read: ${loaded.error}` : "",
  ].filter(Boolean).join(" · ");
  document.body.dataset.state = "ready";
}

// The monitoring views, kept at the state the timeline had at the player's time.
function follow(timeline, clock, player) {
  document.body.classList.add("monitor-open");
  const panel = new MonitorPanel(document.getElementById("monitor"),
    { tabs: ["graph", "processes", "calls", "exits", "logs"], charts: false });
  const shown = { panel, time: null, playerTime: null }; // `time`: on the cast's clock
  setInterval(() => {
    const time = player()?.getCurrentTime();
    if (typeof time !== "number" || time === shown.playerTime) return;
    shown.playerTime = time;
    shown.time = clock.castTime(time);
    panel.show(timeline.stateAt(shown.time));
  }, FOLLOW_MS);
  return shown;
}

main().catch((error) => {
  document.getElementById("status").textContent = `the player could not start: ${error.message}`;
  document.body.dataset.state = "failed";
});
