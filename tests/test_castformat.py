"""asciicast v3 to v2 and back (server/castformat.py), checked by the strict readers in
tests/asciicast.py, which are checked first against the published formats' examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.castformat import convert
from tests.asciicast import CastError, read_v2, read_v3

# The examples in docs.asciinema.org/manual/asciicast/v3 and /v2.
SPEC_V3 = """\
{"version": 3, "term": {"cols": 80, "rows": 24, "type": "xterm-256color"}, \
"timestamp": 1504467315, "title": "Demo", "env": {"TERM": "xterm-256color", "SHELL": "/bin/zsh"}}
# event stream follows the header
[0.248848, "o", "\\u001b[1;31mHello \\u001b[32mWorld!\\u001b[0m\\n"]
[1.001376, "o", "That was ok\\rThis is better."]
[3.500000, "m", ""]
[0.143733, "o", "Now... "]
# terminal window resized to 90 cols and 30 rows
[2.050000, "r", "90x30"]
[1.541828, "o", "Bye!"]
[0.8870, "x", "0"]
"""
SPEC_V2 = """\
{"version": 2, "width": 80, "height": 24, "timestamp": 1504467315, "title": "Demo", \
"env": {"TERM": "xterm-256color", "SHELL": "/bin/zsh"}}
[0.248848, "o", "\\u001b[1;31mHello \\u001b[32mWorld!\\u001b[0m\\n"]
[1.001376, "o", "That was ok\\rThis is better."]
[1.500000, "m", ""]
[2.143733, "o", "Now... "]
[4.050000, "r", "80x24"]
[6.541828, "o", "Bye!"]
"""


def test_the_readers_take_the_published_examples_and_refuse_what_the_formats_do_not_allow():
    header, events = read_v3(SPEC_V3)
    assert header["term"]["cols"] == 80 and len(events) == 7
    assert events[-1] == (9_372_785, "x", "0")  # the intervals' running sum, in µs
    header, events = read_v2(SPEC_V2)
    assert header["width"] == 80 and events[-1] == (6_541_828, "o", "Bye!")
    v3_header = SPEC_V3.split("\n", 1)[0]
    bad_v3 = [
        SPEC_V2,  # a v2 file
        SPEC_V3.rstrip("\n"),  # a torn last line
        v3_header.replace('"term"', '"width": 80, "term"') + "\n",  # v2's attribute
        '{"version": 3, "term": {"rows": 24}}\n',  # no cols
        v3_header + '\n[-0.5, "o", "x"]\n',  # a negative interval
        v3_header + '\n[0.5, "r", "80 by 24"]\n',
        v3_header + '\n[0.5, "x", "0"]\n[0.5, "o", "after the exit"]\n',
        v3_header + '\n[0.5, "x", "ok"]\n',
        v3_header + '\n[0.5, "o"]\n',
        v3_header + '\n\n[0.5, "o", "a"]\n',  # a blank line
        "# a comment first\n" + SPEC_V3,
    ]
    for text in bad_v3:
        with pytest.raises((CastError, ValueError)):
            read_v3(text)
    v2_header = SPEC_V2.split("\n", 1)[0]
    bad_v2 = [
        SPEC_V3,
        v2_header + '\n[1.0, "o", "a"]\n[0.5, "o", "b"]\n',  # time goes back
        v2_header + '\n[1.0, "x", "0"]\n',  # v2 has no exit event
        v2_header + "\n# a comment\n",
        '{"version": 2, "width": 80}\n',
    ]
    for text in bad_v2:
        with pytest.raises((CastError, ValueError)):
            read_v2(text)


def converted(tmp_path: Path, text: str, version: int) -> str:
    path = tmp_path / f"in-{len(list(tmp_path.iterdir()))}.cast"
    path.write_text(text)
    return "".join(convert(path, version))


def test_v3_becomes_v2_with_absolute_times_and_without_the_exit_and_comes_back(tmp_path):
    v3_header, v3_events = read_v3(SPEC_V3)
    v2 = converted(tmp_path, SPEC_V3, 2)
    header, events = read_v2(v2)
    assert (header["width"], header["height"], header["title"]) == (80, 24, "Demo")
    assert header["env"] == {"TERM": "xterm-256color", "SHELL": "/bin/zsh"}
    assert events == [e for e in v3_events if e[1] != "x"]  # the same times, to the µs
    again_header, again = read_v3(converted(tmp_path, v2, 3))
    assert again_header == {**v3_header, "env": {"SHELL": "/bin/zsh"}}  # TERM: in term.type
    assert again == events


def test_an_old_v2_cast_becomes_v3_with_intervals_and_comes_back_the_same(tmp_path):
    header, events = read_v3(converted(tmp_path, SPEC_V2, 3))
    assert header["term"] == {"cols": 80, "rows": 24, "type": "xterm-256color"}
    assert header["env"] == {"SHELL": "/bin/zsh"}
    assert events == read_v2(SPEC_V2)[1]
    assert read_v2(converted(tmp_path, converted(tmp_path, SPEC_V2, 3), 2)) == read_v2(SPEC_V2)


def test_a_line_still_being_written_is_left_out(tmp_path):
    torn = SPEC_V3.rsplit("\n", 2)[0] + '\n[0.5, "o", "hal'  # the exit line, half written
    _, events = read_v2(converted(tmp_path, torn, 2))
    assert events[-1][2] == "Bye!"
