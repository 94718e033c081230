// The replay page (/r/{id}): asciinema-player (served from /vendor, pinned in
// package.json) plays the cast; its markers (`m` events: tour steps and the
// owner's) become chapters to jump to. Changing the speed keeps the position.

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

function chaptersOf(cast) {
  return cast.split("\n").slice(1).filter(Boolean).map((line) => JSON.parse(line))
    .filter(([, kind]) => kind === "m").map(([time, , label]) => ({ time, label }));
}

async function main() {
  const id = location.pathname.split("/")[2];
  const status = document.getElementById("status");
  const castUrl = `/r/${id}.cast`;
  document.getElementById("download").href = `${castUrl}?download`;
  const versions = await (await fetch("/vendor/versions.json")).json();
  const base = `/vendor/asciinema-player-${versions["asciinema-player"]}/dist/bundle`;
  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = `${base}/asciinema-player.css`;
  document.head.append(css);
  await loadScript(`${base}/asciinema-player.min.js`);
  const cast = await (await fetch(castUrl)).text();
  const chapters = chaptersOf(cast);
  const element = document.getElementById("player");
  let player = null;
  const create = (speed, startAt) => {
    player?.dispose();
    player = window.AsciinemaPlayer.create({ data: cast }, element, {
      speed, startAt, markers: chapters.map((c) => [c.time, c.label]), fit: "width",
      idleTimeLimit: 2,
    });
    window.capos = { player, chapters, speed };
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
  status.textContent = chapters.length ? `${chapters.length} chapters` : "";
  document.body.dataset.state = "ready";
}

main().catch((error) => {
  document.getElementById("status").textContent = `the player could not start: ${error.message}`;
  document.body.dataset.state = "failed";
});
