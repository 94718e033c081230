"""A line editor for the native shell: bytes in, events and bytes-to-write out.

The shell reads raw bytes from a TerminalSession (a raw-mode tty, xterm.js, a serial line
or a pipe), so the editor does no I/O of its own: `feed` takes whatever bytes arrived, in any
chunking, and returns the events they complete; everything to display goes to `write`.
That keeps it testable, and runnable in Pyodide (standard library only).

Input is decoded one byte at a time by a small state machine (UTF-8, ESC, CSI, SS3) whose
state survives between calls, so a split escape sequence or character behaves exactly as an
unsplit one.  Ctrl-C is acted on in every state, even mid-sequence and even while no line is
being read: the shell uses it to interrupt a running call.

The edit line always stays on one screen row: a line wider than the terminal is shown
through a window that scrolls sideways to keep the cursor visible, and the last column is
never written, so no terminal's wrapping rules can corrupt the display.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kernel.programs.shell.history import History, HistoryCursor

__all__ = ["EndOfInput", "Event", "Interrupt", "Line", "LineEditor"]


@dataclass(frozen=True, slots=True)
class Line:
    """A line was entered (without its line ending)."""

    text: str


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Ctrl-C: the line (if any) was discarded; a running call should be interrupted."""


@dataclass(frozen=True, slots=True)
class EndOfInput:
    """Ctrl-D on an empty line, or the input stream ended."""


Event = Line | Interrupt | EndOfInput

Completer = Callable[[str], Sequence[str]]

CTRL_C = 0x03
_ESC = 0x1B
_CSI_MAX = 32  # parameter bytes kept per CSI; more are consumed and dropped
_PROMPT_CODES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
_WORD_TAIL = re.compile(r"\S*$")
_NO_SPACE_AFTER = ("(", ".", "/")

# Single control bytes (ground state) and the editing action each one means.
_CONTROL_KEYS = {
    0x01: "home",  # Ctrl-A
    0x02: "left",  # Ctrl-B
    0x04: "eof_or_delete",  # Ctrl-D
    0x05: "end",  # Ctrl-E
    0x06: "right",  # Ctrl-F
    0x08: "backspace",  # Ctrl-H
    0x09: "tab",
    0x0A: "enter",
    0x0B: "kill_end",  # Ctrl-K
    0x0C: "clear",  # Ctrl-L
    0x0D: "enter",
    0x0E: "down",  # Ctrl-N
    0x10: "up",  # Ctrl-P
    0x15: "kill_start",  # Ctrl-U
    0x17: "kill_word_back",  # Ctrl-W
    0x19: "yank",  # Ctrl-Y
    0x7F: "backspace",
}
# CSI/SS3 final bytes without parameters (or with a modifier parameter).
_FINAL_KEYS = {
    "A": "up",
    "B": "down",
    "C": "right",
    "D": "left",
    "H": "home",
    "F": "end",
}
# CSI <n> ~ sequences.
_TILDE_KEYS = {
    "1": "home",
    "7": "home",
    "4": "end",
    "8": "end",
    "3": "delete",
    "200": "paste_start",
    "201": "paste_end",
}
# ESC <char>: Alt/Meta keys.
_ALT_KEYS = {
    ord("b"): "word_left",
    ord("f"): "word_right",
    ord("d"): "kill_word_fwd",
    0x7F: "kill_word_back",
    0x08: "kill_word_back",
}


def visible_width(text: str) -> int:
    """Columns `text` occupies: colour and title escapes take none (wide chars count 1)."""
    return len(_PROMPT_CODES.sub("", text))


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def printable(text: str) -> str:
    """`text` safe to echo: control characters (C0, DEL, C1) become spaces."""
    return "".join(" " if ch < " " or "\x7f" <= ch < "\xa0" else ch for ch in text)


def _common_prefix(words: list[str]) -> str:
    first, last = min(words), max(words)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]


class LineEditor:
    """Reads one line at a time from raw terminal bytes; see the module docstring.

    Between `prompt()` and the event that ends the line the editor is `reading`; bytes fed
    while idle are kept as type-ahead and processed by the next `prompt()`, except Ctrl-C,
    which `feed` reports at once (and removes) so the shell can interrupt a running call.
    """

    def __init__(
        self,
        write: Callable[[bytes], object],
        interactive: bool = True,
        history: History | None = None,
        complete: Completer | None = None,
        width: int = 80,
    ) -> None:
        self._write = write
        self.interactive = interactive
        self.history = history if history is not None else History()
        self._complete = complete
        self._width = max(1, int(width))
        self._out = bytearray()
        self._events: list[Event] = []
        self._pending = bytearray()
        self._eof = False
        # Line state.
        self._reading = False
        self._hidden = False
        self._prompt_last = ""  # the prompt's last row: what a redraw rewrites
        self._prompt_width = 0
        self._buf: list[str] = []
        self._pos = 0
        self._scroll = 0
        self._cursor: HistoryCursor | None = None
        self._kill = ""
        self._tab_unchanged = False  # the previous key was a Tab that changed nothing
        # Decoder state (survives line ends, so split input behaves as unsplit input).
        self._state = "ground"
        self._seq = bytearray()
        self._utf8_need = 0
        self._after_cr = False
        self._paste = False

    # -- public API ---------------------------------------------------------------------

    @property
    def reading(self) -> bool:
        """True between `prompt()` and the Line/Interrupt/EndOfInput that ends the line."""
        return self._reading

    @property
    def typeahead(self) -> bool:
        """Whether bytes typed while idle wait for the next `prompt()` (a key was pressed)."""
        return bool(self._pending)

    def drop_typeahead(self) -> None:
        """Forget what was typed while idle (the key that ended a live view)."""
        self._pending.clear()

    @property
    def buffer(self) -> str:
        """The text being edited."""
        return "".join(self._buf)

    @property
    def cursor(self) -> int:
        """The cursor's index into `buffer`."""
        return self._pos

    @property
    def width(self) -> int:
        return self._width

    def prompt(self, prompt: str = "", hidden: bool = False) -> list[Event]:
        """Start reading a line: write the prompt, then process any type-ahead.

        Returns the events the type-ahead completes (usually none), and EndOfInput at once
        when the input already ended.  Calling it while a line is being read abandons that
        line (no event) and starts again on a fresh row."""
        if self._reading and self.interactive:
            self._emit("\r\n")
        self._reading = True
        self._hidden = hidden
        self._buf = []
        self._pos = 0
        self._scroll = 0
        self._tab_unchanged = False
        self._cursor = self.history.cursor()
        head, _, last = prompt.rpartition("\n")
        self._prompt_last = last
        self._prompt_width = visible_width(last)
        if self.interactive:
            if head:
                self._emit((head + "\n").replace("\r\n", "\n").replace("\n", "\r\n"))
            self._emit(last)
        self._pump()
        return self._flush()

    def feed(self, data: bytes) -> list[Event]:
        """Process input bytes (any chunking) and return the events they complete."""
        if not self._eof:
            self._pending += data
            self._pump()
        return self._flush()

    def feed_eof(self) -> list[Event]:
        """The input stream ended: flush a partial line as a Line, then EndOfInput.

        While idle the end is remembered and reported by the next `prompt()`, after any
        complete type-ahead lines."""
        self._eof = True
        self._pump()
        return self._flush()

    def resize(self, cols: int) -> None:
        """The terminal is now `cols` wide: redraw the line to fit, as much of it before the
        cursor as fits (a wider window shows again what had scrolled off). A line that
        shows the same at either width is left alone: nothing on the row changes."""
        before = self._shown()
        self._width = max(1, int(cols))
        if self._reading and self.interactive:
            self._scroll = min(self._scroll, max(0, self._pos - self._avail()))
            self._fix_scroll()
            if self._shown() != before:
                self._refresh()
        self._flush_output()

    def retitle(self, prompt: str) -> None:
        """Show a new one-row prompt before the line being read, keeping what was typed."""
        if not self._reading:
            return
        self._prompt_last = prompt
        self._prompt_width = visible_width(prompt)
        self._fix_scroll()
        self._refresh()
        self._flush_output()

    def cancel(self) -> None:
        """Stop reading without an event (the child that asked for the line ended):
        the half-typed line stays on screen and the cursor moves below it."""
        if not self._reading:
            return
        self._reading = False
        self._buf = []
        self._pos = 0
        if self.interactive:
            self._emit("\r\n")
        self._flush_output()

    def print_above(self, data: bytes) -> None:
        """Show asynchronous output (a message, a log line) without corrupting the line.

        While a line is being edited: clear the edit row, write `data` (a line ending is
        added if it lacks one), then redraw the prompt, the line and the cursor."""
        if self._reading and self.interactive:
            self._emit("\r\x1b[K")
            self._out += data
            if data and not data.endswith(b"\n"):
                self._out += b"\r\n"
            self._refresh()
        else:
            self._out += data
        self._flush_output()

    # -- plumbing -----------------------------------------------------------------------

    def _emit(self, text: str) -> None:
        self._out += text.encode("utf-8", "replace")

    def _flush_output(self) -> None:
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            self._write(data)

    def _flush(self) -> list[Event]:
        self._flush_output()
        events, self._events = self._events, []
        return events

    def _pump(self) -> None:
        """Decode pending bytes while a line is being read; pull out Ctrl-C while idle."""
        data = self._pending
        i = 0
        while i < len(data) and self._reading:
            byte = data[i]
            i += 1
            if self.interactive:
                self._decode(byte)
            else:
                self._decode_plain(byte)
        del data[:i]
        if not self._reading and CTRL_C in data:
            self._events.extend(Interrupt() for _ in range(data.count(CTRL_C)))
            self._pending = bytearray(data.replace(b"\x03", b""))
        if self._reading and self._eof and not self._pending:
            self._state = "ground"  # an incomplete sequence at the end is dropped
            self._utf8_need = 0
            self._seq.clear()
            if self._buf:
                self._accept()
            self._end(EndOfInput(), "\r\n")

    def _end(self, event: Event, echo: str) -> None:
        if self.interactive:
            self._emit(echo)
        self._reading = False
        self._cursor = None
        self._events.append(event)

    def _accept(self) -> None:
        if self.interactive and not self._hidden:
            self._move_to(len(self._buf))
        text = "".join(self._buf)
        if self.interactive and not self._hidden:
            self.history.add(text)
        self._end(Line(text), "\r\n")

    # -- decoding -----------------------------------------------------------------------

    def _decode_plain(self, byte: int) -> None:
        """Pipe/script input: UTF-8 text, \\n ends a line, \\r is ignored, Ctrl-C interrupts."""
        if byte == CTRL_C:
            self._key("interrupt")
        elif self._utf8(byte):
            return
        elif byte == 0x0A:
            self._accept()
        elif byte != 0x0D:
            self._insert(chr(byte))

    def _utf8(self, byte: int) -> bool:
        """Handle `byte` if it belongs to a multi-byte character; True when consumed."""
        if self._utf8_need:
            if 0x80 <= byte <= 0xBF:
                self._seq.append(byte)
                self._utf8_need -= 1
                if not self._utf8_need:
                    text = bytes(self._seq).decode("utf-8", "replace")
                    self._seq.clear()
                    self._state = "ground"
                    if not "\x80" <= text < "\xa0":  # a C1 control is a key, not text
                        self._insert_text(text)
                return True
            # Truncated character: show a replacement, then handle the byte normally.
            self._utf8_need = 0
            self._seq.clear()
            self._state = "ground"
            self._insert_text("\ufffd")
            return False
        if byte < 0x80:
            return False
        if 0xC2 <= byte <= 0xDF:
            need = 1
        elif 0xE0 <= byte <= 0xEF:
            need = 2
        elif 0xF0 <= byte <= 0xF4:
            need = 3
        else:
            self._insert_text("\ufffd")
            return True
        self._seq = bytearray([byte])
        self._utf8_need = need
        self._state = "utf8"
        return True

    def _decode(self, byte: int) -> None:
        """Terminal input: one byte through the UTF-8/ESC/CSI/SS3 state machine."""
        if byte == CTRL_C:  # acted on in any state, which is left as it was
            self._key("interrupt")
            return
        state = self._state
        if state == "ground" or state == "utf8":
            if self._utf8(byte):
                self._after_cr = False
                return
            if byte == 0x0A and self._after_cr:  # \r\n is one line ending
                self._after_cr = False
                return
            self._after_cr = byte == 0x0D
            if byte == _ESC:
                self._state = "esc"
            elif 0x20 <= byte < 0x7F:
                self._insert_text(chr(byte))
            elif byte in _CONTROL_KEYS:
                self._key(_CONTROL_KEYS[byte])
        elif state == "esc":
            if byte == ord("["):
                self._state = "csi"
                self._seq.clear()
            elif byte == ord("O"):
                self._state = "ss3"
            elif byte == _ESC:
                pass  # ESC ESC: the first one is dropped
            elif byte < 0x20 or byte >= 0x80:
                self._state = "ground"  # a lone Esc before a key: treat the key plainly
                self._decode(byte)
            else:
                self._state = "ground"
                if byte in _ALT_KEYS:
                    self._key(_ALT_KEYS[byte])
        elif state == "csi":
            if 0x40 <= byte <= 0x7E:
                self._state = "ground"
                self._csi(bytes(self._seq).decode("ascii"), chr(byte))
                self._seq.clear()
            elif 0x20 <= byte <= 0x3F:
                if len(self._seq) < _CSI_MAX:
                    self._seq.append(byte)
            elif byte == _ESC:
                self._seq.clear()
                self._state = "esc"
            elif byte >= 0x80 or byte == 0x7F:
                self._seq.clear()
                self._state = "ground"
                self._decode(byte)
            # other C0 controls inside a sequence are dropped
        elif state == "ss3":
            if 0x40 <= byte <= 0x7E:
                self._state = "ground"
                key = _FINAL_KEYS.get(chr(byte))
                if key:
                    self._key(key)
            elif byte == _ESC:
                self._state = "esc"
            elif byte >= 0x80 or byte == 0x7F:
                self._state = "ground"
                self._decode(byte)
            elif byte >= 0x20:
                self._state = "ground"

    def _csi(self, params: str, final: str) -> None:
        if final == "~":
            key = _TILDE_KEYS.get(params.split(";", 1)[0])
        elif final in _FINAL_KEYS:
            key = _FINAL_KEYS[final]
            modifier = params.rpartition(";")[2]
            if modifier in ("3", "5", "9") and key in ("left", "right"):  # Alt/Ctrl-arrow
                key = "word_" + key
        else:
            key = None
        if key:
            self._key(key)

    # -- editing ------------------------------------------------------------------------

    def _insert_text(self, text: str) -> None:
        for ch in text:
            self._key("insert", ch)

    def _key(self, key: str, ch: str = "") -> None:
        """Apply one editing action to the line being read."""
        tab_unchanged, self._tab_unchanged = self._tab_unchanged, False
        if key == "interrupt":
            if self.interactive and not self._hidden:
                self._move_to(len(self._buf))
            self._buf = []
            self._pos = 0
            self._end(Interrupt(), "^C\r\n")
            return
        if self._paste and key not in ("insert", "enter", "paste_end"):
            if key == "tab":  # a pasted tab is text, not a completion request
                self._insert(" ")
            return
        if key == "insert":
            self._insert(ch)
        elif key == "enter":
            self._accept()
        elif key == "paste_start":
            self._paste = True
        elif key == "paste_end":
            self._paste = False
        elif key == "eof_or_delete":
            if not self._buf:
                self._end(EndOfInput(), "\r\n")
            else:
                self._delete(self._pos, self._pos + 1)
        elif key == "left":
            self._move_to(self._pos - 1)
        elif key == "right":
            self._move_to(self._pos + 1)
        elif key == "home":
            self._move_to(0)
        elif key == "end":
            self._move_to(len(self._buf))
        elif key == "word_left":
            self._move_to(self._word_left())
        elif key == "word_right":
            self._move_to(self._word_right())
        elif key == "backspace":
            self._delete(self._pos - 1, self._pos)
        elif key == "delete":
            self._delete(self._pos, self._pos + 1)
        elif key == "kill_end":
            self._delete(self._pos, len(self._buf), kill=True)
        elif key == "kill_start":
            self._delete(0, self._pos, kill=True)
        elif key == "kill_word_back":
            start = self._pos
            while start > 0 and self._buf[start - 1].isspace():
                start -= 1
            while start > 0 and not self._buf[start - 1].isspace():
                start -= 1
            self._delete(start, self._pos, kill=True)
        elif key == "kill_word_fwd":
            self._delete(self._pos, self._word_right(), kill=True)
        elif key == "yank":
            for yanked in self._kill:
                self._insert(yanked)
        elif key == "clear":
            if self.interactive:
                self._emit("\x1b[H\x1b[2J")
                self._refresh()
        elif key in ("up", "down"):
            self._browse(key == "up")
        elif key == "tab":
            self._tab_unchanged = not self._tab(tab_unchanged)

    def _word_left(self) -> int:
        pos = self._pos
        while pos > 0 and not _is_word_char(self._buf[pos - 1]):
            pos -= 1
        while pos > 0 and _is_word_char(self._buf[pos - 1]):
            pos -= 1
        return pos

    def _word_right(self) -> int:
        pos, end = self._pos, len(self._buf)
        while pos < end and not _is_word_char(self._buf[pos]):
            pos += 1
        while pos < end and _is_word_char(self._buf[pos]):
            pos += 1
        return pos

    def _insert(self, ch: str) -> None:
        at_end = self._pos == len(self._buf)
        self._buf.insert(self._pos, ch)
        self._pos += 1
        if not self.interactive or self._hidden:
            return
        if at_end and self._pos - self._scroll <= self._avail():
            self._emit(ch)  # the common case: typing at the end writes just the character
        else:
            self._fix_scroll()
            self._refresh()

    def _delete(self, start: int, end: int, kill: bool = False) -> None:
        start, end = max(0, start), min(len(self._buf), end)
        if start >= end:
            return
        if kill:
            self._kill = "".join(self._buf[start:end])
        del self._buf[start:end]
        if self._pos > end:
            self._pos -= end - start
        elif self._pos > start:
            self._pos = start
        self._fix_scroll()
        self._refresh()

    def _replace(self, text: str) -> None:
        self._buf = list(printable(text))
        self._pos = len(self._buf)
        self._fix_scroll()
        self._refresh()

    def _browse(self, older: bool) -> None:
        if self._hidden or not self.interactive or self._cursor is None:
            return
        current = "".join(self._buf)
        text = self._cursor.previous(current) if older else self._cursor.next(current)
        if text is not None:
            self._replace(text)

    def _tab(self, list_now: bool) -> bool:
        """Complete the word before the cursor; True if the line changed."""
        if self._complete is None or self._hidden or not self.interactive:
            return False
        before = "".join(self._buf[: self._pos])
        start = _WORD_TAIL.search(before).start()  # type: ignore[union-attr]  # \S*$ always matches
        word = before[start:]
        try:
            found = self._complete(before)
        except Exception:
            found = ()  # a faulty completer must not break the session
        candidates = [printable(c) for c in found or () if isinstance(c, str) and c]
        candidates = list(dict.fromkeys(candidates))
        if len(candidates) == 1:
            only = candidates[0]
            new = only if only.endswith(_NO_SPACE_AFTER) else only + " "
        elif candidates:
            new = _common_prefix(candidates)
            if len(new) <= len(word):
                if list_now:
                    self._list(candidates)
                else:
                    self._emit("\x07")
                return False
        else:
            self._emit("\x07")
            return False
        if new == word:
            return False
        self._buf[start : self._pos] = list(new)
        self._pos = start + len(new)
        self._fix_scroll()
        self._refresh()
        return True

    def _list(self, candidates: list[str]) -> None:
        """Show candidates in columns under the line, then redraw the line below them."""
        cell = max(len(c) for c in candidates) + 2
        cols = max(1, (self._width + 1) // cell)
        rows = -(-len(candidates) // cols)
        lines = []
        for row in range(rows):
            cells = candidates[row::rows]
            lines.append("".join(c.ljust(cell) for c in cells).rstrip())
        self._emit("\r\n" + "\r\n".join(lines) + "\r\n")
        self._refresh()

    # -- display ------------------------------------------------------------------------

    def _avail(self) -> int:
        """Columns for line text: the last column is never written, so nothing wraps."""
        return max(1, self._width - self._prompt_width - 1)

    def _fix_scroll(self) -> None:
        """Scroll the window sideways so the cursor is in it, by half a window at a time."""
        avail = self._avail()
        half = avail // 2
        scroll = min(self._scroll, max(0, len(self._buf) - half))
        if self._pos < scroll or self._pos - scroll > avail:
            scroll = max(0, self._pos - half)
        self._scroll = scroll

    def _shown(self) -> str:
        """The part of the line its row shows (none of a hidden one)."""
        if self._hidden:
            return ""
        return "".join(self._buf[self._scroll : self._scroll + self._avail()])

    def _refresh(self) -> None:
        """Redraw the prompt's last row, the visible window of the line, and the cursor."""
        if not self.interactive or not self._reading:
            return
        shown = self._shown()
        self._emit("\r" + self._prompt_last + shown + "\x1b[K")
        if self._hidden:
            return
        back = len(shown) - (self._pos - self._scroll)
        if back > 0:
            self._emit(f"\x1b[{back}D" if back > 1 else "\x1b[D")

    def _move_to(self, pos: int) -> None:
        pos = max(0, min(len(self._buf), pos))
        if pos == self._pos:
            return
        old_pos, old_scroll = self._pos, self._scroll
        self._pos = pos
        if not self.interactive or self._hidden:
            return
        self._fix_scroll()
        if self._scroll != old_scroll:
            self._refresh()
            return
        delta = pos - old_pos
        n = "" if abs(delta) == 1 else str(abs(delta))
        self._emit(f"\x1b[{n}C" if delta > 0 else f"\x1b[{n}D")
