"""A server-hosted session's owner page in Chromium, read the way a person sees it.

Shared by the predictive-echo browser test and `bench echo`. The page's CSP forbids
eval, so everything here polls from Python with page.evaluate (as bench/tab.py does).
What is on screen is read from xterm's DOM renderer: its rows, and the predicted
glyphs drawn over them (web/static/predict-view.js).
"""

from __future__ import annotations

import time

from bench.poolserver import PoolServer
from bench.tab import become_guest, has_prompt, wait_screen

# Installs window.caposWatch: every predicted glyph string ever drawn (`shown`), and for
# each keydown the time it was dispatched and the time its glyph was first in the rendered
# terminal at the cell the cursor was in (either drawn as a prediction or in the rows).
WATCH = """() => {
  const term = capos.term;
  const root = document.querySelector('#terminal .xterm-screen');
  const watch = { shown: [], keys: [] };
  const rowText = (line) => {
    const row = root.querySelector('.xterm-rows').children[line - term.buffer.active.viewportY];
    return row ? row.textContent.replace(/\\u00a0/g, ' ') : '';
  };
  const visible = (key) => {
    if (rowText(key.line)[key.col] === key.key) return true;
    for (const el of root.querySelectorAll('.xterm-decoration.predicted')) {
      const at = key.col - Number(el.dataset.col);
      if (Number(el.dataset.line) === key.line && el.style.display !== 'none'
          && el.dataset.predicted[at] === key.key) return true;
    }
    return false;
  };
  const look = () => {
    const now = performance.now();
    for (const el of root.querySelectorAll('.xterm-decoration.predicted')) {
      if (el.style.display !== 'none' && el.dataset.predicted) {
        if (watch.shown.at(-1) !== el.dataset.predicted) watch.shown.push(el.dataset.predicted);
      }
    }
    for (const key of watch.keys) {
      if (key.painted === null && visible(key)) key.painted = now;
    }
  };
  document.addEventListener('keydown', (event) => {
    if (event.key.length !== 1) return;
    const buffer = term.buffer.active;
    const last = capos.prediction.cells.at(-1);
    const col = last && last.epoch === capos.prediction.epoch ? last.x + 1 : buffer.cursorX;
    watch.keys.push({ key: event.key, at: event.timeStamp, col,
                      line: buffer.baseY + buffer.cursorY, painted: null });
  }, true);
  new MutationObserver(look).observe(root,
    { subtree: true, childList: true, characterData: true, attributes: true });
  window.caposWatch = watch;
}"""

# The rows as painted (after the next frame's rendering): the DOM renderer's rows with every
# predicted glyph drawn over them.
PAINTED = """() => new Promise((resolve) => requestAnimationFrame(() => {
  const term = capos.term;
  const root = document.querySelector('#terminal .xterm-screen');
  const rows = [...root.querySelector('.xterm-rows').children]
    .map((row) => [...row.textContent.replace(/\\u00a0/g, ' ').padEnd(term.cols)]);
  for (const el of root.querySelectorAll('.xterm-decoration.predicted')) {
    if (el.style.display === 'none') continue;
    const row = rows[Number(el.dataset.line) - term.buffer.active.viewportY];
    [...el.dataset.predicted].forEach((ch, i) => { row[Number(el.dataset.col) + i] = ch; });
  }
  resolve(rows.map((row) => row.join('').trimEnd()));
}))"""

# The rows of the terminal's buffer that the viewport shows: exactly what the guest sent.
BUFFER = """() => {
  const buffer = capos.term.buffer.active;
  return [...Array(capos.term.rows).keys()].map((i) =>
    buffer.getLine(buffer.viewportY + i).translateToString().trimEnd());
}"""


def open_owner_page(browser, server: PoolServer):
    """A fresh session from the landing page's Run on the server, at its prompt as a guest
    (the scripted session runs programs and reads the timer, which anonymous lacks)."""
    server.wait_for(lambda: server.pool()["warm"] >= 1, "a warm VM")
    page = browser.new_page()
    page.goto(server.base + "/")
    page.click("#run-on-server")
    page.wait_for_url(f"{server.base}/play")
    wait_screen(page, has_prompt, 120)
    become_guest(page)
    page.evaluate(WATCH)
    page.click("#terminal")
    return page


def set_mode(page, mode: str) -> None:
    """Predictive echo's mode, chosen on the page's toggle: auto, on or off; then back to
    typing in the terminal."""
    page.select_option("#predict-mode", mode)
    page.click("#terminal")


def settle(page, timeout: float = 30) -> None:
    """Until no prediction is outstanding (each confirmed or rolled back)."""
    deadline = time.monotonic() + timeout
    while page.evaluate("() => capos.prediction.cells.length"):
        if time.monotonic() > deadline:
            raise TimeoutError("predictions still outstanding")
        time.sleep(0.02)


def quiet(page, still_s: float = 0.3, timeout: float = 30) -> None:
    """Until the guest's screen has not changed for `still_s`."""
    deadline = time.monotonic() + timeout
    before = buffer_rows(page)
    while True:
        time.sleep(still_s)
        now = buffer_rows(page)
        if now == before:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the guest's screen never settled")
        before = now


def painted(page) -> list[str]:
    return page.evaluate(PAINTED)


def buffer_rows(page) -> list[str]:
    return page.evaluate(BUFFER)


def shown(page) -> list[str]:
    """Every predicted glyph string drawn since the watch began, in order."""
    return page.evaluate("() => caposWatch.shown")


def forget_shown(page) -> None:
    page.evaluate("() => { caposWatch.shown = []; }")
