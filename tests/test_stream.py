"""The session output stream: offsets, bounded scrollback, resets, UTF-8 boundaries, the end."""

from __future__ import annotations

import asyncio
import time

import pytest

from kernel.codec.errors import DecodeError
from kernel.codec.framing import frame_size
from server.stream import APPEND_TIMES_KEPT, Chunk, Ended, OutputStream, Reset


def test_a_reader_gets_exactly_the_bytes_after_its_offset():
    stream = OutputStream()
    stream.append(b"hello ")
    stream.append(b"world")
    assert stream.read(0, 100) == Chunk(0, "hello world")
    assert stream.read(6, 100) == Chunk(6, "world")
    assert stream.read(11, 100) is None  # nothing yet: wait


def test_scrollback_is_bounded_and_a_reader_behind_it_is_reset():
    stream = OutputStream(scrollback=10)
    stream.append(b"0123456789abcdef")
    assert (stream.start, stream.end) == (6, 16)
    assert stream.read(2, 100) == Reset(6)
    assert stream.read(6, 100) == Chunk(6, "6789abcdef")
    assert stream.read(17, 100) == Reset(6)  # from the future: not a position it ever gave


def test_chunks_and_the_scrollback_cut_at_character_boundaries():
    stream = OutputStream(scrollback=7)
    stream.append("aé€".encode())  # 1 + 2 + 3 bytes
    assert stream.read(0, 4) == Chunk(0, "aé")  # € would be cut in half
    stream.append("ü".encode())  # 8 bytes: the oldest whole character goes
    assert stream.start == 1 and stream.read(1, 100) == Chunk(1, "é€ü")
    assert stream.read(2, 100) == Reset(1)  # inside é: no reader was ever given it


def test_invalid_utf8_becomes_replacement_characters_and_split_characters_join():
    stream = OutputStream()
    euro = "€".encode()
    stream.append(euro[:1])
    stream.append(euro[1:] + b"\xff!")
    assert stream.read(0, 100) == Chunk(0, "€\ufffd!")


def test_readers_wait_for_output_and_see_the_end_after_the_last_byte():
    async def scenario() -> list:
        stream = OutputStream()
        waiting = asyncio.create_task(stream.next(0, 100))
        await asyncio.sleep(0)
        stream.append(b"hi")
        first = await waiting
        stream.close("the shell exited")
        stream.append(b"ignored")
        return [first, await stream.next(2, 100), stream.read(0, 100)]

    assert asyncio.run(scenario()) == [
        Chunk(0, "hi"),
        Ended("the shell exited"),
        Chunk(0, "hi"),
    ]


def test_frame_size_reads_a_stream_frame_by_frame_and_refuses_giants():
    frame = bytes.fromhex("00000000010000000000000001000000")
    assert frame_size(frame[:3], 100) is None
    assert frame_size(frame[:12], 100) is None
    assert frame_size(frame + frame, 100) == 16
    with pytest.raises(DecodeError, match="exceeds the limit"):
        frame_size(bytes.fromhex("00000000ffffff00"), 1 << 16)
    with pytest.raises(DecodeError, match="segment count"):
        frame_size(bytes.fromhex("ffff0000"), 1 << 16)


def test_a_reader_that_never_reads_costs_the_writer_nothing():
    stream = OutputStream(scrollback=64 * 1024)
    stalled = 0  # a client that stopped reading at the start
    for _ in range(1000):
        stream.append(b"x" * 10_000)  # never waits, whoever is behind
    assert stream.end == 10_000_000 and stream.end - stream.start <= 64 * 1024
    assert stream.read(stalled, 100) == Reset(stream.start)


def test_the_owner_is_woken_before_viewers_that_waited_longer():
    async def scenario() -> list[str]:
        stream = OutputStream()
        order: list[str] = []

        async def reader(name: str, first: bool) -> None:
            await stream.next(0, 100, first=first)
            order.append(name)

        async with asyncio.TaskGroup() as tasks:
            for n in range(5):
                tasks.create_task(reader(f"viewer{n}", first=False))
            tasks.create_task(reader("owner", first=True))  # the last to wait
            await asyncio.sleep(0)
            stream.append(b"echo")
        return order

    assert asyncio.run(scenario())[0] == "owner"


def test_the_stream_knows_when_each_recent_byte_was_appended():
    stream = OutputStream(scrollback=8)
    before = time.monotonic()
    stream.append(b"abc")
    between = time.monotonic()
    stream.append(b"defgh")
    after = time.monotonic()
    first, second = stream.appended_at(1), stream.appended_at(3)
    assert first is not None and second is not None
    assert before <= first <= between <= second <= after
    assert stream.appended_at(7) == second
    assert stream.appended_at(8) is None  # not appended yet
    stream.append(b"ij")  # a, b fall out of the scrollback
    assert stream.appended_at(1) is None and stream.appended_at(2) == first


def test_only_the_most_recent_append_times_are_kept():
    stream = OutputStream()
    for _ in range(APPEND_TIMES_KEPT + 10):
        stream.append(b"x")
    assert stream.appended_at(0) is None  # still in the scrollback, its time forgotten
    assert stream.appended_at(stream.end - 1) is not None
