// Predictive local echo (predict.js) on an xterm.js terminal, and its toggle on the page.
//
// Predictions are drawn as xterm decorations over the cells they stand for (underlined,
// with a cursor after them), never written into the terminal: rolling one back removes a
// decoration, and the buffer stays exactly what the guest sent. A decoration registered
// while a key is handled is painted in the next frame. The mode (auto, on, off) is kept
// in this browser's localStorage.
import { MODES, ON_MS, Prediction } from "/static/predict.js";

const KEY = "capos.predictiveEcho";

function storedMode() {
  try {
    return localStorage.getItem(KEY) ?? "auto";
  } catch {
    return "auto"; // storage refused: the default
  }
}

// The terminal as predict.js reads it (the active buffer; y counts buffer lines).
function screenOf(term) {
  return {
    get cols() { return term.cols; },
    get alternate() { return term.buffer.active.type === "alternate"; },
    cursor() {
      const buffer = term.buffer.active;
      return { x: buffer.cursorX, y: buffer.baseY + buffer.cursorY };
    },
    cell(x, y) {
      return term.buffer.active.getLine(y)?.getCell(x)?.getChars() ?? "";
    },
  };
}

// Draws predictions as one decoration a row: each predicted glyph in its cell, underlined,
// and the predicted cursor after the last.
function overlayOf(term) {
  let shown = [];
  return (cells, cursor) => {
    for (const decoration of shown) decoration.dispose();
    shown = [];
    const buffer = term.buffer.active;
    const rows = new Map();
    for (const cell of cells) rows.set(cell.y, [...(rows.get(cell.y) ?? []), cell]);
    for (const [y, row] of rows) {
      const glyphs = row.map((cell) => cell.ch);
      if (cursor && cursor.y === y) glyphs.push("");
      const marker = term.registerMarker(y - (buffer.baseY + buffer.cursorY));
      const decoration = term.registerDecoration({
        marker, x: row[0].x, width: glyphs.length, layer: "top",
      });
      if (!decoration) {
        marker.dispose();
        continue;
      }
      decoration.onDispose(() => marker.dispose());
      decoration.onRender((element) => paint(term, element, glyphs, row[0].x, y));
      shown.push(decoration);
    }
  };
}

// The glyphs, and where they stand (data-col, data-line: a buffer line) for a reader.
function paint(term, element, glyphs, col, line) {
  if (element.dataset.predicted === glyphs.join("")) return;
  const theme = term.options.theme ?? {};
  element.classList.add("predicted");
  element.dataset.predicted = glyphs.join("");
  element.dataset.col = col;
  element.dataset.line = line;
  element.style.fontFamily = term.options.fontFamily;
  element.style.fontSize = `${term.options.fontSize}px`;
  element.style.color = theme.foreground ?? "#ffffff";
  element.style.background = theme.background ?? "#000000";
  const width = parseFloat(element.style.width) / glyphs.length;
  element.replaceChildren(...glyphs.map((ch) => {
    const span = document.createElement("span");
    span.style.width = `${width}px`;
    if (ch) span.textContent = ch;
    else span.className = "predicted-cursor";
    return span;
  }));
}

// A select in the page's header that sets the mode and says what auto decided.
function toggle(prediction) {
  const label = document.createElement("label");
  label.className = "predict-toggle";
  label.title = `Predictive local echo: shows what you type before the server echoes it `
    + `(underlined until it does). Auto turns it on when the echo takes over ${ON_MS} ms.`;
  const select = document.createElement("select");
  select.id = "predict-mode";
  for (const mode of MODES) select.append(new Option(mode, mode));
  select.value = prediction.mode;
  const state = document.createElement("span");
  const describe = () => {
    const rtt = prediction.srtt === null ? "" : `, echo ${Math.round(prediction.srtt)} ms`;
    state.textContent = `${prediction.shown ? "predicting" : "not predicting"}${rtt}`;
  };
  select.addEventListener("change", () => {
    try {
      localStorage.setItem(KEY, select.value);
    } catch {
      // kept for this page only
    }
    prediction.setMode(select.value);
  });
  prediction.onChange = describe;
  describe();
  label.append("echo ", select, " ", state);
  document.querySelector("header").append(label);
}

// Predictive echo for `term`, with its toggle in the page's header: the terminal socket
// (terminal-socket.js) feeds it each key before sending and checks it after each write.
export function predictiveEcho(term) {
  term.options.allowProposedApi = true; // registerDecoration
  const prediction = new Prediction(screenOf(term), overlayOf(term), storedMode());
  toggle(prediction);
  return prediction;
}
