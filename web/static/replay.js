// The replay page (/r/{id}): asciinema-player (served from /vendor, pinned in
// package.json; asciicast v3 since its 3.10.0) plays the cast, v3 as recorded now
// or v2 as recorded before; its markers (`m` events: tour steps and the owner's)
// become chapters to jump to, and its keystrokes (`i` events, when the owner chose
// to record them) show in the player's keystroke overlay. Changing the speed keeps
// the position.

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
  const cast = await (await fetch(castUrl)).text();
  const { version, events } = parseCast(cast);
  const chapters = events.filter((e) => e.kind === "m").map((e) => ({ time: e.time, label: e.data }));
  const keystrokes = events.some((e) => e.kind === "i");
  const element = document.getElementById("player");
  let player = null;
  const create = (speed, startAt) => {
    player?.dispose();
    player = window.AsciinemaPlayer.create({ data: cast }, element, {
      speed, startAt, markers: chapters.map((c) => [c.time, c.label]), fit: "width",
      idleTimeLimit: 2, keystrokeOverlay: keystrokes,
    });
    window.capos = { player, chapters, speed, version, keystrokes };
  };
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
    create(Number(event.target.value), player.getCurrentTime());
    player.play();
  };
  status.textContent = [
    chapters.length ? `${chapters.length} chapters` : "",
    keystrokes ? "keystrokes shown (k hides them)" : "",
  ].filter(Boolean).join(" · ");
  document.body.dataset.state = "ready";
}

main().catch((error) => {
  document.getElementById("status").textContent = `the player could not start: ${error.message}`;
  document.body.dataset.state = "failed";
});
