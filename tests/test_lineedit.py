"""The shell's line editor: what a user sees on a VT100 screen, and the events the shell gets.

Display tests drive the editor through a tiny terminal model (`Screen`) and assert what is on
the screen row and where the cursor is, not only the bytes written.
"""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.programs.shell.history import DEFAULT_LIMIT, History
from kernel.programs.shell.lineedit import EndOfInput, Interrupt, Line, LineEditor, visible_width

PROMPT = "capos> "


class Screen:
    """Just enough of a VT100: printable text with auto-wrap, CR, LF, BS, BEL and the CSI
    sequences the editor may use.  Anything else is a bug in the editor, so it raises."""

    def __init__(self, width: int = 40, height: int = 12) -> None:
        self.width, self.height = width, height
        self.rows = [[" "] * width for _ in range(height)]
        self.row = self.col = 0
        self.pending_wrap = False
        self.wraps = 0
        self.bells = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._esc = ""

    def feed(self, data: bytes) -> None:
        for ch in self._decoder.decode(data):
            self._char(ch)

    def resize(self, width: int) -> None:
        self.rows = [(r + [" "] * width)[:width] for r in self.rows]
        self.width = width
        self.col = min(self.col, width - 1)
        self.pending_wrap = False

    def text(self, row: int) -> str:
        return "".join(self.rows[row]).rstrip()

    @property
    def line(self) -> str:
        """The cursor's row, as the user sees it."""
        return self.text(self.row)

    def lines(self) -> list[str]:
        texts = [self.text(r) for r in range(self.height)]
        while texts and not texts[-1]:
            texts.pop()
        return texts

    def _char(self, ch: str) -> None:
        if self._esc:
            self._esc += ch
            if len(self._esc) == 2 and ch != "[":
                raise AssertionError(f"unexpected escape {self._esc!r}")
            if len(self._esc) > 2 and "@" <= ch <= "~":
                self._csi(self._esc[2:-1], ch)
                self._esc = ""
            return
        if ch == "\x1b":
            self._esc = ch
        elif ch == "\r":
            self.col = 0
            self.pending_wrap = False
        elif ch == "\n":
            self.pending_wrap = False
            self._linefeed()
        elif ch == "\x07":
            self.bells += 1
        elif ch == "\x08":
            self.col = max(0, self.col - 1)
            self.pending_wrap = False
        elif ch < " " or ch == "\x7f" or "\x80" <= ch < "\xa0":
            raise AssertionError(f"control character {ch!r} reached the terminal")
        else:
            self._put(ch)

    def _put(self, ch: str) -> None:
        if self.pending_wrap:
            self.pending_wrap = False
            self.col = 0
            self.wraps += 1
            self._linefeed()
        self.rows[self.row][self.col] = ch
        if self.col == self.width - 1:
            self.pending_wrap = True
        else:
            self.col += 1

    def _linefeed(self) -> None:
        self.row += 1
        if self.row == self.height:
            self.rows.pop(0)
            self.rows.append([" "] * self.width)
            self.row = self.height - 1

    def _csi(self, params: str, final: str) -> None:
        self.pending_wrap = False
        n = int(params) if params.isdigit() else 1
        if final == "C":
            self.col = min(self.width - 1, self.col + n)
        elif final == "D":
            self.col = max(0, self.col - n)
        elif final == "K" and params in ("", "0"):
            self.rows[self.row][self.col :] = [" "] * (self.width - self.col)
        elif final == "H" and params == "":
            self.row = self.col = 0
        elif final == "J" and params == "2":
            self.rows = [[" "] * self.width for _ in range(self.height)]
        elif final == "m":
            pass  # colours
        else:
            raise AssertionError(f"unexpected CSI {params!r}{final}")


class Term:
    """An editor wired to a screen, as the shell would wire it to a TerminalSession."""

    def __init__(self, width: int = 40, height: int = 12, **kwargs) -> None:
        self.screen = Screen(width, height)
        self.output = bytearray()
        self.editor = LineEditor(self._write, width=width, **kwargs)

    def _write(self, data: bytes) -> None:
        assert isinstance(data, bytes) and data
        self.output += data
        self.screen.feed(data)

    def prompt(self, text: str = PROMPT, **kwargs):
        return self.editor.prompt(text, **kwargs)

    def feed(self, data: bytes):
        return self.editor.feed(data)

    def resize(self, width: int) -> None:
        self.screen.resize(width)
        self.editor.resize(width)

    @property
    def line(self) -> str:
        return self.screen.line

    @property
    def col(self) -> int:
        return self.screen.col

    def written_by(self, data: bytes) -> bytes:
        before = len(self.output)
        self.feed(data)
        return bytes(self.output[before:])


def assert_display(term: Term, prompt: str = PROMPT) -> None:
    """The cursor's row shows the prompt and a window of the line around the cursor, and
    nothing ever wrapped or reached the last column."""
    scr, ed = term.screen, term.editor
    p = visible_width(prompt)
    avail = max(1, scr.width - p - 1)
    row = "".join(scr.rows[scr.row])
    assert row.startswith(prompt), row
    assert scr.wraps == 0
    assert p <= scr.col <= scr.width - 1
    start = ed.cursor - (scr.col - p)
    assert start >= 0
    assert row[p : p + avail] == ed.buffer[start : start + avail].ljust(avail)
    assert row[p + avail :].strip() == ""


WORDS = ["alpha", "alphabet", "alpine", "altitude", "also", "alter", "beta(", "cap.", "dir/"]


def complete_words(before: str) -> list[str]:
    word = before.split()[-1] if before and not before[-1].isspace() else ""
    return [w for w in WORDS if w.startswith(word)]


# -- typing and echo ----------------------------------------------------------------------


def test_typed_characters_are_echoed_and_enter_emits_line() -> None:
    t = Term()
    assert t.prompt() == []
    assert t.editor.reading
    assert t.line == PROMPT.rstrip()
    assert t.feed(b"ls -l") == []
    assert (t.line, t.col) == ("capos> ls -l", 12)
    assert t.feed(b"\r") == [Line("ls -l")]
    assert not t.editor.reading
    assert t.screen.lines() == ["capos> ls -l"]
    assert (t.screen.row, t.col) == (1, 0)


def test_typing_at_end_writes_only_the_character() -> None:
    t = Term()
    t.prompt()
    assert bytes(t.output) == b"capos> "
    assert t.written_by(b"a") == b"a"
    assert t.written_by(b"\xc3\xa9") == "é".encode()
    assert t.written_by(b"\r") == b"\r\n"


def test_cursor_keys_move_by_one_with_short_sequences() -> None:
    t = Term()
    t.prompt()
    t.feed(b"abc")
    assert t.written_by(b"\x1b[D") == b"\x1b[D"
    assert t.written_by(b"\x1b[H") == b"\x1b[2D"
    assert t.col == 7


@pytest.mark.parametrize(
    ("keys", "cursor"),
    [
        (b"\x1b[D", 3),
        (b"\x1bOD", 3),
        (b"\x02", 3),
        (b"\x1b[D\x1b[D\x1b[C", 3),
        (b"\x1b[D\x1b[D\x1bOC", 3),
        (b"\x1b[D\x06", 4),
        (b"\x1b[H", 0),
        (b"\x1b[1~", 0),
        (b"\x1b[7~", 0),
        (b"\x1bOH", 0),
        (b"\x01", 0),
        (b"\x01\x1b[F", 4),
        (b"\x01\x1b[4~", 4),
        (b"\x01\x1bOF", 4),
        (b"\x01\x05", 4),
        (b"\x1b[C", 4),  # past the end: stays
        (b"\x01\x1b[D", 0),  # before the start: stays
    ],
)
def test_cursor_movement_keys(keys: bytes, cursor: int) -> None:
    t = Term()
    t.prompt()
    t.feed(b"abcd" + keys)
    assert t.editor.cursor == cursor
    assert t.col == len(PROMPT) + cursor
    assert t.line == "capos> abcd"


def test_word_movement_with_alt_b_and_alt_f() -> None:
    t = Term()
    t.prompt()
    t.feed(b"cap.call(arg1, x)")
    t.feed(b"\x1bb")
    assert t.editor.cursor == len("cap.call(arg1, ")
    t.feed(b"\x1bb\x1bb")
    assert t.editor.cursor == len("cap.")
    t.feed(b"\x1bf")
    assert t.editor.cursor == len("cap.call")
    t.feed(b"\x1b[1;5D")  # Ctrl-Left
    assert t.editor.cursor == len("cap.")
    t.feed(b"\x1b[1;3C")  # Alt-Right
    assert t.editor.cursor == len("cap.call")
    assert_display(t)


def test_insert_in_the_middle_redraws_the_line() -> None:
    t = Term()
    t.prompt()
    t.feed(b"helo\x1b[Dl")
    assert (t.line, t.col) == ("capos> hello", len(PROMPT) + 4)
    assert t.feed(b"\r") == [Line("hello")]


def test_retitle_shows_a_new_prompt_and_keeps_the_line_and_cursor() -> None:
    t = Term()
    t.prompt("anonymous@capos> ")
    t.feed(b"caps\x1b[D")
    t.editor.retitle("guest@capos> ")
    assert (t.line, t.col) == ("guest@capos> caps", len("guest@capos> cap"))
    assert_display(t, "guest@capos> ")
    assert t.feed(b"\r") == [Line("caps")]
    t.editor.retitle("ignored> ")  # not reading: nothing to redraw
    assert t.screen.lines() == ["guest@capos> caps"]


def test_backspace_and_delete_update_the_screen() -> None:
    t = Term()
    t.prompt()
    t.feed(b"abcdef\x7f")
    assert (t.line, t.col) == ("capos> abcde", 12)
    t.feed(b"\x1b[D\x1b[D\x08")
    assert (t.line, t.col) == ("capos> abde", 9)
    t.feed(b"\x1b[3~")
    assert (t.line, t.col) == ("capos> abe", 9)
    t.feed(b"\x01\x7f")  # backspace at the start does nothing
    assert t.editor.buffer == "abe"
    assert t.feed(b"\r") == [Line("abe")]


def test_ctrl_d_deletes_under_cursor_on_non_empty_line() -> None:
    t = Term()
    t.prompt()
    assert t.feed(b"abc\x01\x04") == []
    assert (t.line, t.col) == ("capos> bc", 7)
    assert t.feed(b"\x05\x04") == []  # at the end of a non-empty line: nothing
    assert t.editor.buffer == "bc"


def test_ctrl_d_on_empty_line_is_end_of_input() -> None:
    t = Term()
    t.prompt()
    assert t.feed(b"\x04") == [EndOfInput()]
    assert not t.editor.reading
    assert (t.screen.row, t.col) == (1, 0)
    assert t.prompt() == []  # not sticky: the shell decides whether to exit
    assert t.feed(b"x\r") == [Line("x")]


def test_kill_keys_and_yank() -> None:
    t = Term()
    t.prompt()
    t.feed(b"one two three\x1bb\x0b")
    assert (t.line, t.editor.buffer) == ("capos> one two", "one two ")
    t.feed(b"\x17")
    assert t.editor.buffer == "one "
    t.feed(b"\x19")  # Ctrl-Y yanks the last kill
    assert t.editor.buffer == "one two "
    t.feed(b"\x1b[D\x15")
    assert (t.editor.buffer, t.editor.cursor) == (" ", 0)
    assert (t.line, t.col) == ("capos>", 7)
    t.feed(b"\x05\x17")  # Ctrl-W over trailing blanks removes the blanks
    assert t.editor.buffer == ""
    t.feed(b"a b\x01\x1bd")  # Alt-d kills the next word
    assert t.editor.buffer == " b"
    assert_display(t)


def test_ctrl_l_clears_screen_and_redraws() -> None:
    t = Term()
    t.prompt()
    t.feed(b"first\r")
    t.prompt()
    t.feed(b"second\x1b[D\x0c")
    assert t.screen.lines() == ["capos> second"]
    assert (t.screen.row, t.col) == (0, len("capos> secon"))


def test_other_control_bytes_are_ignored() -> None:
    t = Term()
    t.prompt()
    bound = b"\x01\x02\x03\x04\x05\x06\x08\t\n\x0b\x0c\r\x0e\x10\x15\x17\x19\x1b"
    unbound = bytes(b for b in range(0x20) if b not in bound)
    t.feed(b"o" + unbound + b"k")
    assert t.editor.buffer == "ok"
    assert t.written_by(unbound) == b""
    t.feed(b"\xc2\x9b\xc2\x85!")  # C1 controls (CSI, NEL) in UTF-8 are not text either
    assert t.editor.buffer == "ok!"


def test_recalled_or_completed_text_never_carries_control_characters() -> None:
    t = Term(history=History(entries=["a\tb\x1b[2Jc"]), complete=lambda before: ["x\ry("])
    t.prompt()
    t.feed(b"\x1b[A")
    assert t.editor.buffer == "a b [2Jc"
    t.feed(b" \t")
    assert t.editor.buffer == "a b [2Jc x y("
    assert_display(t)
    assert_display(t)


# -- Ctrl-C and type-ahead ----------------------------------------------------------------


def test_ctrl_c_discards_line_and_interrupts() -> None:
    t = Term()
    t.prompt()
    t.feed(b"rm -rf\x1b[D\x1b[D")
    assert t.feed(b"\x03") == [Interrupt()]
    assert not t.editor.reading
    assert t.screen.lines() == ["capos> rm -rf^C"]
    assert (t.screen.row, t.col) == (1, 0)
    assert len(t.editor.history) == 0
    t.prompt()
    assert t.editor.buffer == ""


def test_ctrl_c_while_idle_interrupts_and_keeps_type_ahead() -> None:
    t = Term()
    t.prompt()
    assert t.feed(b"sleep 10\r") == [Line("sleep 10")]
    assert t.feed(b"ls") == []  # the shell is running a call: type-ahead
    assert t.feed(b"\x03") == [Interrupt()]
    assert t.feed(b" -l\x03\x03\r") == [Interrupt(), Interrupt()]
    assert not t.editor.reading
    assert t.prompt() == [Line("ls -l")]
    assert t.screen.lines() == ["capos> sleep 10", "capos> ls -l"]


def test_ctrl_c_while_idle_inside_a_split_escape_sequence() -> None:
    t = Term()
    t.prompt()
    t.feed(b"a\r")
    assert t.feed(b"\x1b[") == []
    assert t.feed(b"\x03") == [Interrupt()]
    t.feed(b"A")
    t.prompt()
    assert t.editor.buffer == "a"  # the completed sequence was Up, not text


def test_prompt_while_reading_abandons_the_line_on_a_fresh_row() -> None:
    t = Term()
    t.prompt()
    t.feed(b"abc")
    assert t.prompt("again> ") == []
    assert t.screen.lines() == ["capos> abc", "again>"]
    assert t.feed(b"x\r") == [Line("x")]


def test_type_ahead_is_processed_at_next_prompt() -> None:
    t = Term()
    t.prompt()
    assert t.feed(b"one\rtwo\rthr") == [Line("one")]
    assert t.prompt() == [Line("two")]
    assert t.prompt() == []
    assert t.editor.buffer == "thr"
    assert t.feed(b"ee\r") == [Line("three")]
    assert t.screen.lines() == ["capos> one", "capos> two", "capos> three"]


def test_enter_as_cr_lf_or_crlf_ends_one_line_each() -> None:
    t = Term()
    t.prompt()
    assert t.feed(b"a\r\n") == [Line("a")]
    assert t.prompt() == []
    assert t.feed(b"b\n") == [Line("b")]
    assert t.prompt() == []
    assert t.feed(b"c\r") == [Line("c")]
    assert t.prompt() == []
    assert t.feed(b"\n") == []  # the LF of a CRLF split across feeds
    assert t.feed(b"\r\r") == [Line("")]
    assert t.prompt() == [Line("")]


# -- decoding -----------------------------------------------------------------------------


def test_escape_sequence_split_across_feeds() -> None:
    t = Term()
    t.prompt()
    t.feed(b"abc")
    for byte in b"\x1b[D":
        assert t.feed(bytes([byte])) == []
    assert t.editor.cursor == 2
    t.feed(b"\x1b")
    t.feed(b"[3")
    t.feed(b"~")
    assert t.editor.buffer == "ab"
    t.feed(b"\x1bO")
    t.feed(b"H")
    assert t.editor.cursor == 0
    assert t.line == "capos> ab"


def test_utf8_split_across_feeds() -> None:
    t = Term()
    t.prompt()
    for byte in "héllo €𝄞".encode():
        t.feed(bytes([byte]))
    assert t.line == "capos> héllo €𝄞"
    assert t.feed(b"\r") == [Line("héllo €𝄞")]


def test_invalid_utf8_becomes_replacement_character() -> None:
    t = Term()
    t.prompt()
    t.feed(b"a\xffb\xc3c\xe2\x82")
    t.feed(b"\r")
    assert t.editor.history.entries == ["a\ufffdb\ufffdc\ufffd"]


@pytest.mark.parametrize(
    "sequence",
    [
        b"\x1b[15~",  # F5
        b"\x1b[1;5P",  # Ctrl-F1
        b"\x1b[2;5~",
        b"\x1bOP",  # F1 (SS3)
        b"\x1bOx",
        b"\x1b[?1;2c",
        b"\x1b[<0;12;7M",  # SGR mouse report
        b"\x1b[I",  # focus in
        b"\x1bx",  # Alt-x
        b"\x1b\x1b[Z",
        b"\x1b[" + b"9" * 100 + b"~",
    ],
)
def test_unknown_escape_sequences_are_consumed(sequence: bytes) -> None:
    t = Term()
    t.prompt()
    t.feed(b"ab" + sequence + b"cd")
    assert t.editor.buffer == "abcd"
    assert (t.line, t.col) == ("capos> abcd", 11)


def test_bracketed_paste_inserts_text_and_newlines_end_lines() -> None:
    t = Term(complete=complete_words)
    t.prompt()
    events = t.feed(b"\x1b[200~echo \x1b[Aal\tx\x04\r\nsecond\x1b[201~")
    assert events == [Line("echo al x")]
    assert t.prompt() == []
    assert t.editor.buffer == "second"
    assert t.feed(b"\t") == []  # after the paste Tab completes again
    assert t.screen.bells == 1


# -- history ------------------------------------------------------------------------------


def test_history_records_lines_and_up_down_browse() -> None:
    history = History()
    t = Term(history=history)
    for line in (b"first", b"second", b"", b"second", b"third"):
        t.prompt()
        t.feed(line + b"\r")
    assert history.entries == ["first", "second", "third"]
    t.prompt()
    t.feed(b"\x1b[A")
    assert (t.line, t.editor.cursor) == ("capos> third", 5)
    t.feed(b"\x1bOA\x10")
    assert t.line == "capos> first"
    t.feed(b"\x1b[A")  # at the oldest: stays
    assert t.line == "capos> first"
    t.feed(b"\x1b[B\x0e")
    assert t.line == "capos> third"
    t.feed(b"\x1bOB")
    assert t.line == "capos>"
    assert t.feed(b"\x1b[A\r") == [Line("third")]
    assert history.entries == ["first", "second", "third"]


def test_history_up_restores_the_line_being_edited() -> None:
    t = Term(history=History(entries=["old one", "old two"]))
    t.prompt()
    t.feed(b"half-typed\x1b[D\x1b[D")
    t.feed(b"\x1b[A\x1b[A")
    assert t.editor.buffer == "old one"
    t.feed(b"\x1b[B\x1b[B")
    assert t.editor.buffer == "half-typed"
    assert t.line == "capos> half-typed"
    assert_display(t)


def test_history_edits_to_recalled_entries_are_kept_while_browsing() -> None:
    history = History(entries=["alpha", "beta"])
    t = Term(history=history)
    t.prompt()
    t.feed(b"\x1b[A!\x1b[A\x1b[B")
    assert t.editor.buffer == "beta!"
    assert t.feed(b"\x1b[A\x1b[A\r") == [Line("alpha")]
    assert history.entries == ["alpha", "beta", "alpha"]
    t.prompt()  # edits do not outlive the line: the entry itself is unchanged
    t.feed(b"\x1b[A\x1b[A")
    assert t.editor.buffer == "beta"


def test_history_skips_blank_lines_and_consecutive_duplicates() -> None:
    history = History()
    for line in ["ls", "ls", "  ", "", "pwd", "ls", "ls"]:
        history.add(line)
    assert history.entries == ["ls", "pwd", "ls"]
    assert len(history) == 3
    assert list(history) == ["ls", "pwd", "ls"]
    assert history[-1] == "ls"


def test_history_is_bounded() -> None:
    assert DEFAULT_LIMIT == 500
    history = History()
    for i in range(DEFAULT_LIMIT + 20):
        history.add(f"cmd {i}")
    assert len(history) == 500
    assert history.entries[0] == "cmd 20"
    small = History(limit=2, entries=["a", "b", "c"])
    assert small.entries == ["b", "c"]
    assert History(limit=0, entries=["a"]).entries == []
    with pytest.raises(ValueError):
        History(limit=-1)


def test_history_cursor_browses_a_snapshot() -> None:
    history = History(entries=["a", "b"])
    cursor = history.cursor()
    assert cursor.at_edit_line
    assert cursor.next("typed") is None
    assert cursor.previous("typed") == "b"
    history.add("c")  # another line recorded meanwhile does not shift the cursor
    assert cursor.previous("b") == "a"
    assert cursor.previous("a") is None
    assert cursor.next("a") == "b"
    assert cursor.next("b") == "typed"


# -- hidden input -------------------------------------------------------------------------


def test_hidden_input_is_never_echoed_or_recorded() -> None:
    history = History()
    t = Term(history=history)
    t.prompt("password> ", hidden=True)
    assert bytes(t.output) == b"password> "
    written = t.written_by(b"s3cr\xc3\xa9t\x1b[D\x7f\x01X\x1b[A\x1b[B\t\x0c")
    assert b"s3cr" not in written and b"X" not in written
    assert t.line == "password>"
    assert t.written_by(b"\r") == b"\r\n"
    assert t.editor.history.entries == []
    assert b"s3" not in t.output
    # ... and the next ordinary line is recorded as usual.
    t.prompt()
    t.feed(b"ls\r")
    assert history.entries == ["ls"]


def test_hidden_input_editing_keys_still_work() -> None:
    t = Term(history=History(entries=["not a password"]), complete=complete_words)
    t.prompt("password> ", hidden=True)
    events = t.feed(b"hunter22\x7f\x01X\x7f\x1b[3~h\x05!\x1b[A\tal\t\r")
    assert events == [Line("hunter2!al")]


def test_hidden_input_ctrl_c_and_print_above() -> None:
    t = Term()
    t.prompt("password> ", hidden=True)
    t.feed(b"abc")
    t.editor.print_above(b"note\r\n")
    assert t.screen.lines() == ["note", "password>"]
    assert t.feed(b"\x03") == [Interrupt()]
    assert t.screen.lines() == ["note", "password> ^C"]


# -- completion ---------------------------------------------------------------------------


def test_tab_with_one_candidate_replaces_the_word_and_adds_a_space() -> None:
    t = Term(complete=complete_words)
    t.prompt()
    t.feed(b"run alph")
    t.feed(b"a")
    t.feed(b"b\t")
    assert (t.editor.buffer, t.line) == ("run alphabet ", "capos> run alphabet")
    assert t.col == len("capos> run alphabet ")


@pytest.mark.parametrize(("typed", "completed"), [("be", "beta("), ("ca", "cap."), ("d", "dir/")])
def test_tab_adds_no_space_after_call_member_or_path(typed: str, completed: str) -> None:
    t = Term(complete=complete_words)
    t.prompt()
    t.feed(typed.encode() + b"\t")
    assert t.editor.buffer == completed


def test_tab_in_the_middle_completes_the_word_before_the_cursor() -> None:
    t = Term(complete=complete_words)
    t.prompt()
    t.feed(b"alti x\x1b[D\x1b[D\t")
    assert t.editor.buffer == "altitude  x"
    assert t.editor.cursor == len("altitude ")
    assert_display(t)


def test_tab_extends_to_longest_common_prefix() -> None:
    t = Term(complete=lambda before: ["alphabet", "alphanumeric"])
    t.prompt()
    t.feed(b"a\t")
    assert t.editor.buffer == "alpha"
    assert t.screen.bells == 0
    t.feed(b"\t")  # nothing more to extend: bell, no list yet
    assert t.screen.bells == 1
    assert t.screen.lines() == ["capos> alpha"]


def test_tab_twice_lists_candidates_in_columns() -> None:
    t = Term(width=40, complete=complete_words)
    t.prompt()
    t.feed(b"al\x1b[D")
    t.feed(b"\x1b[C\t")
    assert t.screen.bells == 1
    assert t.screen.lines() == ["capos> al"]
    t.feed(b"\t")
    assert t.screen.lines() == [
        "capos> al",
        "alpha     alpine    also",
        "alphabet  altitude  alter",
        "capos> al",
    ]
    assert (t.screen.row, t.col) == (3, 9)
    assert t.screen.wraps == 0
    assert t.feed(b"so\t\r") == [Line("also ")]


def test_tab_list_fits_a_narrow_terminal() -> None:
    t = Term(width=12, height=20, complete=complete_words)
    t.prompt("> ")
    t.feed(b"al\t\t")
    rows = t.screen.lines()
    assert rows[0] == "> al" and rows[-1] == "> al"
    assert sorted(rows[1:-1]) == sorted(w for w in WORDS if w.startswith("al"))
    assert t.screen.wraps == 0


def test_tab_without_candidates_or_completer_changes_nothing() -> None:
    t = Term(complete=lambda before: [])
    t.prompt()
    t.feed(b"zz\t\t")
    assert t.editor.buffer == "zz"
    assert t.screen.bells == 2
    t2 = Term()
    t2.prompt()
    t2.feed(b"zz\t")
    assert t2.editor.buffer == "zz"


def test_a_failing_completer_does_not_break_the_line() -> None:
    def broken(before: str) -> list[str]:
        raise RuntimeError("bug in completer")

    t = Term(complete=broken)
    t.prompt()
    assert t.feed(b"x\t\t\r") == [Line("x")]


def test_completer_receives_the_text_before_the_cursor() -> None:
    seen: list[str] = []
    t = Term(complete=lambda before: seen.append(before) or [])
    t.prompt()
    t.feed(b"fs.open(x\x1b[D\t")
    assert seen == ["fs.open("]


# -- long lines, resize, async output -----------------------------------------------------


def test_long_line_scrolls_without_exceeding_width() -> None:
    t = Term(width=20)
    t.prompt("> ")
    text = "".join(chr(ord("a") + i % 26) for i in range(60))
    for ch in text:
        t.feed(ch.encode())
        assert_display(t, "> ")
        assert t.line.endswith(t.editor.buffer[-1])
    assert len(t.line) <= 19
    t.feed(b"\x1b[H")
    assert_display(t, "> ")
    assert (t.line, t.col) == ("> " + text[:17], 2)
    for _ in range(30):
        t.feed(b"\x1b[C")
        assert_display(t, "> ")
    t.feed(b"X\x1b[F")
    assert_display(t, "> ")
    assert t.feed(b"\r") == [Line(text[:30] + "X" + text[30:])]
    assert t.screen.wraps == 0


def test_deleting_on_a_scrolled_line_keeps_text_visible() -> None:
    t = Term(width=20)
    t.prompt("> ")
    t.feed(b"x" * 50)
    for _ in range(45):
        t.feed(b"\x7f")
        assert_display(t, "> ")
    assert t.line == "> xxxxx"


def test_resize_redraws_to_fit() -> None:
    t = Term(width=40)
    t.prompt()
    t.feed(b"0123456789" * 3)
    assert_display(t)
    t.resize(20)
    assert_display(t)
    t.feed(b"\x01")
    assert_display(t)
    assert t.line == "capos> 012345678901"
    t.resize(60)
    assert_display(t)
    t.feed(b"\x05")
    assert t.line == "capos> " + "0123456789" * 3


def test_widening_shows_again_what_had_scrolled_off() -> None:
    t = Term(width=40)
    t.prompt()
    t.feed(b"0123456789" * 5)
    assert not t.line.startswith("capos> 0123")
    t.resize(80)
    assert_display(t)
    assert t.line == "capos> " + "0123456789" * 5
    t.resize(40)
    assert_display(t)
    assert t.line.endswith("789")


def test_print_above_keeps_line_and_cursor() -> None:
    t = Term()
    t.prompt()
    t.feed(b"hello wor\x1b[D\x1b[D\x1b[D")
    t.editor.print_above(b"alice: hi\r\n")
    assert t.screen.lines() == ["alice: hi", "capos> hello wor"]
    assert t.col == len("capos> hello ")
    t.editor.print_above(b"bob: no newline")
    assert t.screen.lines() == ["alice: hi", "bob: no newline", "capos> hello wor"]
    assert t.feed(b"\x05ld\r") == [Line("hello world")]


def test_print_above_while_idle_writes_directly() -> None:
    t = Term()
    t.prompt()
    t.feed(b"x\r")
    before = len(t.output)
    t.editor.print_above(b"output\r\n")
    assert bytes(t.output[before:]) == b"output\r\n"


def test_prompt_with_colour_codes_uses_visible_width() -> None:
    prompt = "\x1b[1;32mcapos>\x1b[0m "
    assert visible_width(prompt) == 7
    t = Term(width=20)
    t.prompt(prompt)
    t.feed(b"y" * 40)
    assert t.screen.wraps == 0
    assert t.col <= 19
    assert t.line == "capos> " + "y" * (t.col - 7)


def test_multiline_prompt_redraws_only_its_last_row() -> None:
    t = Term()
    t.prompt("user@capos ~\n$ ")
    t.feed(b"ab\x1b[Dx")
    assert t.screen.lines() == ["user@capos ~", "$ axb"]
    t.editor.print_above(b"msg\r\n")
    assert t.screen.lines() == ["user@capos ~", "msg", "$ axb"]
    assert t.col == 4


# -- end of input -------------------------------------------------------------------------


def test_feed_eof_flushes_partial_line_then_end_of_input() -> None:
    t = Term()
    t.prompt()
    t.feed(b"partial\x1b[")
    assert t.editor.feed_eof() == [Line("partial"), EndOfInput()]
    assert not t.editor.reading
    assert t.editor.history.entries == ["partial"]
    assert t.prompt() == [EndOfInput()]  # the input stays ended
    assert t.feed(b"more\r") == []


def test_feed_eof_on_an_empty_line_is_just_end_of_input() -> None:
    t = Term()
    t.prompt()
    assert t.editor.feed_eof() == [EndOfInput()]


def test_feed_eof_while_idle_is_reported_at_next_prompt() -> None:
    t = Term()
    t.prompt()
    assert t.feed(b"a\rb\rpart") == [Line("a")]
    assert t.editor.feed_eof() == []
    assert t.prompt() == [Line("b")]
    assert t.prompt() == [Line("part"), EndOfInput()]
    assert t.prompt() == [EndOfInput()]


# -- pipes and scripts --------------------------------------------------------------------


def test_script_mode_has_no_echo_and_no_prompt() -> None:
    out: list[bytes] = []
    history = History()
    ed = LineEditor(out.append, interactive=False, history=history)
    assert ed.prompt(PROMPT) == []
    assert ed.feed(b"echo hi\r\nsec") == [Line("echo hi")]
    assert ed.prompt(PROMPT) == []
    assert ed.feed(b"ond\n") == [Line("second")]
    assert ed.prompt(PROMPT) == []
    assert ed.feed(b"a\x1b[A\tb\x7f\n") == [Line("a\x1b[A\tb\x7f")]  # no escape processing
    assert out == []
    assert history.entries == []


def test_script_mode_ctrl_c_and_eof() -> None:
    out: list[bytes] = []
    ed = LineEditor(out.append, interactive=False)
    ed.prompt()
    assert ed.feed(b"half\x03") == [Interrupt()]
    assert ed.feed(b"ahead\x03") == [Interrupt()]  # while idle: the type-ahead is kept
    assert ed.prompt() == []
    assert ed.feed(" é".encode()[:-1]) == []  # a truncated character at the end is dropped
    assert ed.feed_eof() == [Line("ahead "), EndOfInput()]
    assert out == []


def test_script_mode_utf8_and_lone_cr() -> None:
    ed = LineEditor(lambda data: None, interactive=False)
    ed.prompt()
    events = []
    for byte in "naïve\r\n".encode():
        events += ed.feed(bytes([byte]))
    assert events == [Line("naïve")]


# -- properties ---------------------------------------------------------------------------

PIECES = [
    b"a",
    b"Z",
    b" ",
    b"\xc3\xa9",
    b"\xe2\x82",
    b"\xac",
    b"\xc2\x9b",
    b"\x1b",
    b"\x1b[",
    b"\x1bO",
    b"[",
    b"A",
    b"D",
    b"C",
    b"H",
    b"~",
    b"3",
    b"1;5",
    b"200~",
    b"201~",
    b"\x03",
    b"\x04",
    b"\r",
    b"\n",
    b"\t",
    b"\x7f",
    b"\x08",
    b"\x0b",
    b"\x15",
    b"\x17",
    b"\x19",
    b"\x0c",
    b"\x01",
    b"\x05",
    b"\x10",
    b"\x0e",
]
streams = st.lists(st.sampled_from(PIECES) | st.binary(max_size=3), max_size=60).map(b"".join)


def run_shell(segments: list[list[bytes]], interactive: bool, width: int) -> tuple[list, bytes]:
    """Drive the editor as the shell would: between segments it prompts again if the line
    has ended; within a segment the chunks are fed with no prompt in between."""
    screen = Screen(width, 8)
    out = bytearray()

    def write(data: bytes) -> None:
        out.extend(data)
        screen.feed(data)

    ed = LineEditor(write, interactive=interactive, complete=complete_words, width=width)
    events: list = []

    def reprompt() -> None:
        while not ed.reading:
            events.extend(ed.prompt("> ", hidden=len(events) % 5 == 4))

    reprompt()
    for chunks in segments:
        for chunk in chunks:
            events.extend(ed.feed(chunk))
        reprompt()
    events.extend(ed.feed_eof())
    for _ in range(1000):
        if events and events[-1] == EndOfInput() and not ed.reading:
            break
        events.extend(ed.prompt("> "))
    return events, bytes(out)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted(cuts)
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(stream=streams, data=st.data(), interactive=st.booleans(), width=st.integers(5, 30))
def test_random_streams_never_raise_and_chunking_does_not_matter(
    stream: bytes, data: st.DataObject, interactive: bool, width: int
) -> None:
    """Where the feeds split the stream does not matter, only where the shell prompts."""
    indexes = st.lists(st.integers(0, len(stream)), max_size=8)
    segments = split(stream, data.draw(indexes))
    whole = run_shell([[seg] for seg in segments], interactive, width)
    rechunked = [split(seg, data.draw(st.lists(st.integers(0, len(seg))))) for seg in segments]
    assert run_shell(rechunked, interactive, width) == whole
    bytewise = [[bytes([b]) for b in seg] for seg in segments]
    assert run_shell(bytewise, interactive, width) == whole
    for event in whole[0]:
        assert isinstance(event, Line | Interrupt | EndOfInput)
        if isinstance(event, Line) and interactive:
            assert not any(ch < " " or ch == "\x7f" for ch in event.text)


@settings(max_examples=100, deadline=None)
@given(stream=streams, data=st.data(), interactive=st.booleans(), width=st.integers(5, 30))
def test_without_ctrl_c_prompt_timing_does_not_matter_either(
    stream: bytes, data: st.DataObject, interactive: bool, width: int
) -> None:
    """Type-ahead behaves as if typed at the prompt.  (Ctrl-C is the exception by design:
    while idle it interrupts the running call and keeps the type-ahead.)"""
    stream = stream.replace(b"\x03", b"")
    whole = run_shell([[stream]], interactive, width)
    chunks = split(stream, data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    assert run_shell([[c] for c in chunks], interactive, width) == whole
    assert run_shell([[bytes([b])] for b in stream], interactive, width) == whole


KEYS = [
    b"a",
    b"b",
    b" ",
    b"\xc3\xa9",
    b"\x1b[D",
    b"\x1b[C",
    b"\x1b[H",
    b"\x1b[F",
    b"\x1bb",
    b"\x1bf",
    b"\x7f",
    b"\x1b[3~",
    b"\x0b",
    b"\x15",
    b"\x17",
    b"\x19",
    b"\x1b[A",
    b"\x1b[B",
    b"\x0c",
    b"\t",
    b"al",
]


@settings(max_examples=100, deadline=None)
@given(
    actions=st.lists(st.sampled_from(KEYS) | st.integers(9, 40), max_size=80),
    width=st.integers(9, 40),
)
def test_display_always_matches_the_line(actions: list, width: int) -> None:
    history = History(entries=["short", "x" * 70, "alpha beta gamma delta epsilon zeta eta"])
    t = Term(width=width, height=30, history=history, complete=complete_words)
    t.prompt("> ")
    assert_display(t, "> ")
    for action in actions:
        if isinstance(action, int):
            t.resize(action)
        else:
            assert t.feed(action) == []
        assert_display(t, "> ")


def test_cancel_stops_reading_without_an_event_and_moves_below_the_line():
    out = bytearray()
    editor = LineEditor(write=out.extend, interactive=True)
    editor.prompt("> ")
    assert editor.feed(b"half") == []
    editor.cancel()
    assert not editor.reading
    assert out.endswith(b"half\r\n")
    assert editor.prompt("$ ") == [] and editor.feed(b"x\r") == [Line("x")]
