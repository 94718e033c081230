// Predictive local echo for a server-hosted session's terminal, after mosh's prediction
// engine (src/frontend/terminaloverlay.cc): a printable key typed at the end of an input
// line is shown at once, as a prediction, until the guest's own echo confirms it.
//
// It never writes to the terminal: predictions are drawn over it (predict-view.js), so the
// terminal's buffer is always exactly what the guest sent, and a rollback only takes the
// drawing away. The rules that keep a wrong glyph off the screen:
// - Predict only in a safe state: the normal screen (not a full-screen program's alternate
//   one), the cursor at the end of its line with text (a prompt) to its left, and never in
//   the last column (the shell's line editor never writes there, so nothing wraps).
// - Epochs: any other input (Enter, a control key, an escape sequence, a paste) starts a new
//   epoch, whose predictions stay hidden ("tentative") until the guest has echoed one of them.
//   A password prompt or a program that does not echo never confirms one, so what is typed
//   there is never shown.
// - A prediction is confirmed when its glyph is in its cell with the cursor after it on its
//   row, as an echo leaves it (a redraw that happens to put the glyph there moves the
//   cursor elsewhere). One the guest contradicts (another glyph in its cell, or the cursor
//   gone elsewhere while it is unconfirmed) or leaves unconfirmed past its expiry rolls
//   every prediction back and starts a new epoch.
//
// The round trip it measures (a key sent to its echo in the terminal) decides whether
// predictions are shown in "auto" mode: from ON_MS up, until it falls under OFF_MS (mosh's
// thresholds, 30 and 20 ms). "on" always shows them; "off" never does.

export const ON_MS = 30;
export const OFF_MS = 20;
const EXPIRY_MIN_MS = 500; // a prediction unconfirmed this long (or 4 round trips) is dropped
const EXPIRY_RTTS = 4;
const SAMPLES_KEPT = 1000;
export const MODES = ["auto", "on", "off"];

// One printable character, one column wide: the only input predicted.
function predictable(data) {
  return data.length === 1 && data >= " " && data <= "~";
}

// `screen` reads the terminal: cursor() -> {x, y} (y a buffer line), cell(x, y) -> its
// character ("" when blank), cols, alternate (a full-screen program's screen is up).
// `draw(cells, cursor)` shows the predictions to display (cursor: where the predicted
// cursor goes, or null).
export class Prediction {
  constructor(screen, draw, mode = "auto") {
    this.screen = screen;
    this.draw = draw;
    this.mode = MODES.includes(mode) ? mode : "auto";
    this.cells = []; // {x, y, ch, epoch, sentAt}, in the order typed
    this.epoch = 1; // the epoch new predictions join
    this.confirmedEpoch = 0; // the newest epoch the guest has echoed a prediction of
    this.srtt = null; // smoothed round trip (ms), from confirmed predictions
    this.samples = []; // recent round trips (ms)
    this.showing = false; // auto mode's state, with hysteresis
    this.timer = null;
    this.onChange = () => {};
  }

  setMode(mode) {
    this.mode = mode;
    this.redraw();
    this.onChange();
  }

  // Whether predictions are drawn now.
  get shown() {
    if (this.mode === "on") return true;
    if (this.mode === "off") return false;
    return this.showing;
  }

  // A key the user typed, before it is sent.
  input(data) {
    if (!predictable(data)) {
      this.epoch += 1;
      return;
    }
    const last = this.cells.at(-1);
    if (last && last.epoch !== this.epoch) return; // the cursor's place is unknown until they settle
    const at = last ? { x: last.x + 1, y: last.y } : this.screen.cursor();
    if (!this.safe(at, !last)) {
      this.rollback();
      return;
    }
    this.cells.push({ x: at.x, y: at.y, ch: data, epoch: this.epoch, sentAt: performance.now() });
    this.redraw();
    this.arm();
  }

  // At the end of an input line: the rest of the row blank, not the last column, and for
  // the first prediction on a row, text (a prompt) to the cursor's left.
  safe(at, first) {
    const screen = this.screen;
    if (screen.alternate || at.x >= screen.cols - 1) return false;
    for (let x = at.x; x < screen.cols; x++) if (screen.cell(x, at.y) !== "") return false;
    if (!first) return true;
    for (let x = 0; x < at.x; x++) if (screen.cell(x, at.y) !== "") return true;
    return false;
  }

  // The terminal has taken in more of the guest's output: confirm, keep or roll back.
  check() {
    const now = performance.now();
    if (this.screen.alternate && this.cells.length) {
      this.rollback();
      return;
    }
    let confirmed = false;
    while (this.cells.length) {
      const cell = this.cells[0];
      const actual = this.screen.cell(cell.x, cell.y);
      const cursor = this.screen.cursor();
      if (actual === cell.ch && cursor.y === cell.y && cursor.x > cell.x) { // echoed, not redrawn
        this.cells.shift();
        this.sample(now - cell.sentAt);
        this.confirmedEpoch = Math.max(this.confirmedEpoch, cell.epoch);
        confirmed = true;
        continue;
      }
      const waiting = actual === "" && cursor.x === cell.x && cursor.y === cell.y;
      if (!waiting || now - cell.sentAt > this.expiry()) {
        this.rollback();
        return;
      }
      break;
    }
    for (const cell of this.cells.slice(1)) {
      if (this.screen.cell(cell.x, cell.y) !== "") {
        this.rollback(); // the guest wrote where a later prediction stands
        return;
      }
    }
    if (confirmed) this.redraw();
    this.arm();
  }

  // Drop every prediction; what follows is tentative until the guest echoes again.
  rollback() {
    this.cells = [];
    this.epoch += 1;
    this.redraw();
  }

  expiry() {
    return Math.max(EXPIRY_MIN_MS, EXPIRY_RTTS * (this.srtt ?? 0));
  }

  // Check again when the oldest prediction would expire, in case no output comes.
  arm() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.cells.length) return;
    const due = this.cells[0].sentAt + this.expiry() + 1 - performance.now();
    this.timer = setTimeout(() => this.check(), Math.max(0, due));
  }

  sample(ms) {
    this.samples.push(ms);
    if (this.samples.length > SAMPLES_KEPT) this.samples.shift();
    this.srtt = this.srtt === null ? ms : 0.875 * this.srtt + 0.125 * ms;
    if (this.srtt > ON_MS) this.showing = true;
    else if (this.srtt < OFF_MS) this.showing = false;
    this.onChange();
  }

  redraw() {
    const visible = this.shown
      ? this.cells.filter((cell) => cell.epoch <= this.confirmedEpoch)
      : [];
    const last = visible.at(-1);
    const cursor = last && visible.length === this.cells.length
      ? { x: last.x + 1, y: last.y } : null;
    this.draw(visible, cursor);
  }
}
