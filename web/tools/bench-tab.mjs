// The playground tab in a real browser, measured: bench/browser.py runs this once per
// benchmark, with the same probes in Chromium (CDP) and Firefox (WebDriver BiDi).
// Usage: node bench-tab.mjs CONFIG_JSON, where CONFIG_JSON has browser ("chrome" or
// "firefox"), executable, args, base (the server), runs, residents (the processes of
// a settled tab, not counting the model service) and prompt (the shell's). Prints one
// JSON object: every figure's samples, each visit's milestones (play.js `marks`, ms
// since navigation start) and how its workers restored (`restoredBy`), what each return visit added by kind of process (MiB),
// the browser's version. Progress goes to stderr.
//
// Every time is taken inside the page (performance.now()), so the driver's polling
// adds no error to it; the page's CSP forbids eval, so the driver polls for results
// with page.evaluate(function). Firefox needs no waits of its own.
import fs from "node:fs";
import puppeteer from "puppeteer-core";

const config = JSON.parse(process.argv[2]);
const BANNER = "[counter] inc [n], get, exit";
const COUNTER = 'run "counter" with { stdio: client @stdio, counter: client @counter }';
const PING = 'run "ping" with { stdio: client @stdio, echo: client @echo }\n';
const TYPED = "abcdefghijklmnopqrstuvwxy"; // echo_ms: one sample a keystroke
const FLOOR_ROUNDS = 2000;
// Before a blank page's memory counts: long enough for a closed tab's processes to go.
const QUIET_MS = 3000;

const log = (line) => console.error(line);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- run in the page ---------------------------------------------------------------

// A preload script, run before the page's own: when play.js publishes window.capos,
// watch its terminal and note when the prompt first lands in the buffer, in
// milliseconds since navigation start (the origin of performance.now()).
function watchForPrompt(prompt) {
  let capos;
  Object.defineProperty(window, "capos", {
    configurable: true,
    get: () => capos,
    set(value) {
      capos = value;
      const parsed = value.term.onWriteParsed(() => {
        const buffer = value.term.buffer.active;
        for (let i = 0; i < buffer.length; i++) {
          if (buffer.getLine(i).translateToString(true).startsWith(prompt)) {
            window.benchPromptMs = performance.now();
            parsed.dispose();
            return;
          }
        }
      });
    },
  });
}

// At the prompt: times from a key's keydown (a capture listener, ahead of the
// terminal's own) until a row at or below the cursor's row then holds a needle, as
// the terminal's parser reports each write. `armKey` sets the next one.
function installKeyProbe() {
  const term = window.capos.term;
  const probe = { armed: null, timings: [] };
  window.benchKeys = probe;
  addEventListener("keydown", (event) => {
    const armed = probe.armed;
    if (armed && armed.start === undefined && event.key === armed.key) {
      armed.start = performance.now();
      armed.marker = term.registerMarker(0); // follows its row if the buffer scrolls
    }
  }, true);
  term.onWriteParsed(() => {
    const armed = probe.armed;
    if (!armed || armed.start === undefined) return;
    const buffer = term.buffer.active;
    for (let i = armed.marker.line; i < buffer.length; i++) {
      if (buffer.getLine(i).translateToString(true).includes(armed.needle)) {
        probe.timings.push(performance.now() - armed.start);
        armed.marker.dispose();
        probe.armed = null;
        return;
      }
    }
  });
}

// `needle` null: the key's own glyph, after what the cursor's row shows before it.
function armKey(key, needle) {
  const buffer = window.capos.term.buffer.active;
  const row = buffer.getLine(buffer.baseY + buffer.cursorY).translateToString(false);
  window.benchKeys.armed = { key, needle: needle ?? row.slice(0, buffer.cursorX) + key };
}

function screen() {
  const buffer = window.capos.term.buffer.active;
  return [...Array(buffer.length).keys()]
    .map((i) => buffer.getLine(i).translateToString(true));
}

// Every resident process running and a spare worker restored, so `run` finds one.
function settled(residents) {
  const capos = window.capos;
  return Boolean(capos) && capos.spares() >= 1
    && capos.processes.size === residents + (capos.model ? 1 : 0);
}

// --- the browser's memory, from /proc ------------------------------------------------

// The PSS (smaps_rollup) of every process under the browser's, by kind of process:
// Chromium's --type (its dedicated workers are threads of the renderer), Firefox's
// content process types (the last word of their command lines), the browser itself.
function memory(rootPid) {
  const children = new Map();
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch { /* gone meanwhile */ }
  }
  const byKind = {};
  const pending = [rootPid];
  while (pending.length) {
    const pid = pending.pop();
    pending.push(...(children.get(pid) ?? []));
    try {
      const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
      const kib = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)[1]);
      const kind = kindOf(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8"));
      byKind[kind] = (byKind[kind] ?? 0) + kib / 1024;
    } catch { /* gone meanwhile */ }
  }
  return byKind;
}

// Chromium and Firefox's fork server rewrite their children's command lines into one
// string, so this reads the line as a whole.
function kindOf(commandLine) {
  const line = commandLine.replaceAll("\0", " ").trim();
  const type = /--type=(\S+)/.exec(line);
  if (type) return type[1];
  if (line.includes(" -contentproc")) return `content ${line.split(" ").at(-1)}`;
  return line.split(" ")[0].split("/").at(-1);
}

function added(before, after) {
  const kinds = new Set([...Object.keys(before), ...Object.keys(after)]);
  return Object.fromEntries([...kinds].map((kind) => [kind, (after[kind] ?? 0) - (before[kind] ?? 0)]));
}

// --- the measurements ----------------------------------------------------------------

async function poll(page, what, seconds, probe, ...args) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await page.evaluate(probe, ...args);
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// The terminal's rows once `ready(rows)` holds (tested here: the page cannot eval).
async function waitRows(page, what, seconds, ready) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const rows = await page.evaluate(screen);
    if (ready(rows)) return rows;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; the terminal showed ${JSON.stringify(rows)}`);
    }
    await sleep(20);
  }
}

const promptMs = (page) => poll(page, "the shell prompt", 240, () => window.benchPromptMs);
const settle = (page) => poll(page, "a settled tab", 120, settled, config.residents);

async function newPage(context) {
  const page = await context.newPage();
  page.on("pageerror", (error) => log(`  page error: ${error.message ?? error}`));
  await page.evaluateOnNewDocument(watchForPrompt, config.prompt);
  return page;
}

// One blank page, the only one open (opened before the others close: Firefox
// replaces a closed last tab with a new one).
async function blankPage(context) {
  const others = await browser.pages();
  const page = await newPage(context);
  for (const other of others) await other.close();
  return page;
}

async function pyodideLoad(context) {
  const page = await newPage(context);
  await page.goto(`${config.base}/static/bench-pyodide.html`);
  const ms = await poll(page, "a bare loadPyodide()", 120, () => window.pyodideLoadMs);
  await page.close();
  return ms;
}

async function floorRtt(context, runs) {
  const page = await newPage(context);
  await page.goto(`${config.base}/static/bench-floor.html?runs=${runs}&rounds=${FLOOR_ROUNDS}`);
  const medians = await poll(page, "the round-trip floor", 240, () => window.floorRttUs);
  await page.close();
  return medians;
}

const marks = (page) => page.evaluate(() => window.capos.marks);
// how each worker restored and what each step took (web/static/pyodide-boot.js)
const restored = (page) => page.evaluate(() => window.capos.restoredBy);

async function coldVisit() {
  const context = await browser.createBrowserContext(); // a fresh profile: nothing cached
  const page = await newPage(context);
  await page.goto(`${config.base}/play`);
  const ms = await promptMs(page);
  await settle(page); // the marks of a whole boot, as a return visit's
  const visit = { promptMs: ms, marks: await marks(page), restored: await restored(page) };
  await context.close();
  return visit;
}

// A return visit: the browser's memory with one blank page, then with that page at
// the playground, settled. Leaves the page open.
async function warmVisit(page) {
  await sleep(QUIET_MS);
  const before = memory(browser.process().pid);
  await page.goto(`${config.base}/play`);
  const ms = await promptMs(page);
  await settle(page);
  await sleep(1000); // the last worker's allocations done
  const after = memory(browser.process().pid);
  return { promptMs: ms, marks: await marks(page), restored: await restored(page),
           added: added(before, after) };
}

async function spawn(page) {
  await settle(page);
  await page.keyboard.type(COUNTER);
  await page.evaluate(armKey, "Enter", BANNER);
  const seen = await page.evaluate(() => window.benchKeys.timings.length);
  await page.keyboard.press("Enter");
  await poll(page, "the counter's banner", 60, (n) => window.benchKeys.timings.length > n, seen);
  const ms = await page.evaluate(() => window.benchKeys.timings.at(-1));
  await page.keyboard.type("exit\n");
  await settle(page);
  return ms;
}

async function echo(page) {
  const timings = [];
  for (const key of TYPED) {
    await page.evaluate(armKey, key, null);
    await page.keyboard.press(key);
    await poll(page, `the echo of ${key}`, 30, () => window.benchKeys.armed === null);
    timings.push(await page.evaluate(() => window.benchKeys.timings.at(-1)));
    await sleep(50); // a quick typist's pace, not a burst
  }
  await page.keyboard.down("Control"); // Ctrl-U: the line editor drops the line
  await page.keyboard.press("u");
  await page.keyboard.up("Control");
  await waitRows(page, "the line cleared", 30, (rows) => !rows.some((row) => row.includes(TYPED)));
  return timings;
}

async function endpointRtt(page) {
  await settle(page);
  // ping's last line, its result: the first ("ping: timing N round trips ...") says it began.
  const reports = (rows) => rows.filter((row) => /^ping: .* median [0-9.]+ us/.test(row));
  const before = reports(await page.evaluate(screen)).length;
  await page.keyboard.type(PING);
  const rows = await waitRows(page, "ping's report", 120, (rows) => reports(rows).length > before);
  return Number(/median ([0-9.]+) us/.exec(reports(rows).at(-1))[1]);
}

async function repeat(count, measure) {
  const samples = [];
  for (let i = 0; i < count; i++) samples.push(await measure());
  return samples;
}

const browser = await puppeteer.launch({
  browser: config.browser,
  executablePath: config.executable,
  args: config.args,
  headless: true,
});
try {
  const runs = config.runs;
  const warm = browser.defaultBrowserContext();
  const samples = {};
  log("measuring a bare loadPyodide() in a worker ...");
  await pyodideLoad(warm); // a first visit fills the cache: the floor is a warm load
  samples.pyodide_load_ms = await repeat(runs, () => pyodideLoad(warm));
  log("measuring the round-trip floor: two Pyodide workers, one shared word ...");
  samples.floor_rtt_us = await floorRtt(warm, runs);
  log("measuring the time to the shell prompt, cold (a fresh profile each) ...");
  const coldVisits = await repeat(runs, coldVisit);
  samples.prompt_cold_ms = coldVisits.map((visit) => visit.promptMs);
  log("measuring return visits: the time to the prompt, the tab's memory ...");
  let page = await blankPage(warm);
  await page.goto(`${config.base}/play`); // the first visit fills the cache
  await settle(page);
  const visits = await repeat(runs, async () => {
    page = await blankPage(warm);
    return warmVisit(page);
  });
  samples.prompt_ms = visits.map((visit) => visit.promptMs);
  samples.tab_memory_mib = visits.map((visit) => Object.values(visit.added).reduce((a, b) => a + b));
  log("measuring spawn, keystroke echo and the cross-worker round trip ...");
  await page.keyboard.type("guest\n"); // the demo bundle: a launcher, counter and echo
  await waitRows(page, "the guest prompt", 60, (rows) => rows.some((row) => row.startsWith("guest@capos>")));
  await page.evaluate(installKeyProbe);
  samples.spawn_ms = await repeat(runs, () => spawn(page));
  samples.echo_ms = await echo(page);
  samples.endpoint_rtt_us = await repeat(runs, () => endpointRtt(page));
  console.log(JSON.stringify({
    samples,
    marks: {
      prompt_ms: visits.map((visit) => visit.marks),
      prompt_cold_ms: coldVisits.map((visit) => visit.marks),
    },
    restored: {
      prompt_ms: visits.map((visit) => visit.restored),
      prompt_cold_ms: coldVisits.map((visit) => visit.restored),
    },
    memoryAdded: visits.map((visit) => visit.added),
    version: await browser.version(),
  }));
} finally {
  await browser.close();
}
