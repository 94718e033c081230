// Firefox ESR over WebDriver BiDi (puppeteer-core): the playground boots and answers.
// Usage: node firefox-play.mjs BASE_URL  -> prints one JSON line with what it saw.
import puppeteer from "puppeteer-core";

const base = process.argv[2];
const deadline = (seconds) => Date.now() + seconds * 1000;
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: "/usr/bin/firefox-esr",
  headless: true,
});
const result = { isolated: null, sharedArrayBuffer: null, rows: [], restoredBy: null, error: null };
try {
  const page = await browser.newPage();
  await page.goto(`${base}/play`);
  result.isolated = await page.evaluate(() => crossOriginIsolated);
  result.sharedArrayBuffer = await page.evaluate(() => typeof SharedArrayBuffer);
  const screen = () => page.evaluate(() => window.capos
    ? [...Array(capos.term.buffer.active.length).keys()]
      .map((i) => capos.term.buffer.active.getLine(i).translateToString().trim())
    : []);
  const waitFor = async (ready, seconds) => {
    const until = deadline(seconds);
    for (;;) {
      const rows = await screen();
      if (ready(rows)) return rows;
      if (Date.now() > until) throw new Error(`timed out; the terminal showed ${JSON.stringify(rows)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  await waitFor((rows) => rows.some((r) => r.startsWith("anonymous@capos>")), 240);
  await page.click("#terminal");
  await page.keyboard.type("guest\ncaps\n"); // the guest bundle holds the timer
  result.rows = await waitFor((rows) => rows.some((r) => r.startsWith("timer ")), 60);
  result.restoredBy = await page.evaluate(() => capos.restoredBy);
} catch (error) {
  result.error = String(error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
