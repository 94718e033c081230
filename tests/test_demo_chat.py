"""Chat rules and the chat service's long-poll, without processes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from demos.chat.bot import REPLY, wants_reply
from demos.chat.rooms import (
    BATCH_BYTES,
    HISTORY,
    INBOX_LIMIT,
    MAX_TEXT_BYTES,
    ChatError,
    ChatRooms,
)
from demos.chat.server import ChatService
from demos.terminal_client import WRITE_CHUNK, Terminal
from kernel.runtime import RemoteError
from kernel.runtime.service import LATER, OnRefused


def test_members_are_numbered_by_first_join_and_keep_their_number():
    rooms = ChatRooms()
    assert rooms.join("bot", "#lobby")[0] == "member-1"
    assert rooms.join("shell", "#lobby")[0] == "member-2"
    rooms.leave("shell", "")
    assert rooms.join("shell", "#other")[0] == "member-2"
    assert rooms.join("shell", "#other")[0] == "member-2"  # joining twice is harmless
    assert rooms.who("#lobby") == ["member-1"]
    assert rooms.who("#other") == ["member-2"]
    assert rooms.who("#empty") == []


def test_a_message_reaches_every_member_of_its_channel_and_no_one_else():
    rooms = ChatRooms()
    rooms.join("a", "#lobby")
    rooms.join("b", "#lobby")
    rooms.join("c", "#other")
    message, recipients = rooms.send("b", "#lobby", "hello from shell")
    assert (message.seq, message.sender, message.channel) == (1, "member-2", "#lobby")
    assert recipients == ["a", "b"]  # the sender too: the client shows its own line
    assert [m.text for m in rooms.take("a")[0]] == ["hello from shell"]
    assert rooms.take("c") == ([], 0)
    assert rooms.take("a") == ([], 0)  # taken once


def test_sending_needs_membership_and_valid_text():
    rooms = ChatRooms()
    rooms.join("a", "#lobby")
    with pytest.raises(ChatError, match="join #other"):
        rooms.send("a", "#other", "hi")
    with pytest.raises(ChatError, match="join #lobby"):
        rooms.send("stranger", "#lobby", "hi")
    with pytest.raises(ChatError, match="over 1024 bytes"):
        rooms.send("a", "#lobby", "x" * (MAX_TEXT_BYTES + 1))
    with pytest.raises(ChatError, match="control characters"):
        rooms.send("a", "#lobby", "\x1b[2Jgotcha")
    with pytest.raises(ChatError, match="empty"):
        rooms.send("a", "#lobby", "   ")
    assert rooms.send("a", "#lobby", "é" * (MAX_TEXT_BYTES // 2))[0].seq == 1


@pytest.mark.parametrize("name", ["lobby", "#", "#Lobby", "#a b", "#" + "a" * 33, "#-x", ""])
def test_bad_channel_names_are_refused(name):
    rooms = ChatRooms()
    with pytest.raises(ChatError, match="bad channel name"):
        rooms.join("a", name)


def test_leaving_an_empty_channel_forgets_it_and_history_is_bounded_and_replayed():
    rooms = ChatRooms()
    rooms.join("a", "#lobby")
    for i in range(HISTORY + 3):
        rooms.send("a", "#lobby", f"m{i}")
    _, history = rooms.join("b", "#lobby")
    assert [m.text for m in history] == [f"m{i}" for i in range(3, HISTORY + 3)]
    assert history[0].as_dict(replayed=True)["replayed"] is True
    rooms.leave("a", "#lobby")
    rooms.leave("b", "#lobby")
    assert "#lobby" not in rooms.channels and "#lobby" not in rooms.history
    with pytest.raises(ChatError, match="not in #lobby"):
        rooms.leave("a", "#lobby")


def test_a_full_inbox_drops_the_oldest_and_counts_them():
    rooms = ChatRooms()
    rooms.join("a", "#lobby")
    for i in range(INBOX_LIMIT + 2):
        rooms.send("a", "#lobby", f"m{i}")
    messages, dropped = rooms.take("a")
    assert (dropped, messages[0].text) == (2, "m2")
    while batch := rooms.take("a")[0]:
        messages += batch
    assert len(messages) == INBOX_LIMIT


def test_one_answer_carries_at_most_a_batch_but_always_one_message():
    rooms = ChatRooms()
    rooms.join("a", "#lobby")
    for _ in range(10):
        rooms.send("a", "#lobby", "x" * MAX_TEXT_BYTES)
    sizes = []
    while batch := rooms.take("a")[0]:
        sizes.append(len(batch))
        assert sum(m.size() for m in batch) <= BATCH_BYTES
    assert sizes == [3, 3, 3, 1]
    _, history = rooms.join("b", "#lobby")
    assert len(history) == 3 and history[-1].seq == 10  # the newest that fit


class FakeLoop:
    """ServiceLoop's answering side: it keeps each answer and its `on_refused`, which
    `refuse` runs as the loop does when the kernel says that caller had gone."""

    def __init__(self) -> None:
        self.answers: list[tuple[object, dict]] = []
        self.refusals: list[OnRefused | None] = []

    def answer(self, call: object, results: dict, on_refused: OnRefused | None = None) -> None:
        self.answers.append((call, results))
        self.refusals.append(on_refused)

    def refuse(self, index: int) -> None:
        on_refused = self.refusals[index]
        assert on_refused is not None, "that answer would be lost"
        on_refused()


def call(ref: int) -> SimpleNamespace:
    return SimpleNamespace(scoped_ref=ref)


def test_next_parks_until_a_message_arrives_for_that_session():
    service = ChatService()
    service.loop = FakeLoop()
    a, b = call(1), call(2)
    service.join(a, channel="#lobby")
    service.join(b, channel="#lobby")
    assert service.next(a) is LATER
    service.send(b, channel="#lobby", text="hi")
    [(answered, results)] = service.loop.answers
    assert answered is a
    assert [(m["sender"], m["text"]) for m in results["messages"]] == [("member-2", "hi")]
    assert service.next(b)["messages"][0]["text"] == "hi"  # b had mail waiting
    assert service.next(call(1)) is LATER  # what a's parked call carried is not sent again


def test_messages_answered_to_an_ended_client_are_kept_for_its_session_s_next_poll():
    service = ChatService()
    service.loop = FakeLoop()
    gone, b = call(1), call(2)
    service.join(gone, channel="#lobby")
    service.join(b, channel="#lobby")
    assert service.next(gone) is LATER
    service.send(b, channel="#lobby", text="first")
    service.send(b, channel="#lobby", text="second")  # queued behind the answer in flight
    service.loop.refuse(0)  # the client ended before the kernel took the answer
    later = service.next(call(1))  # the same session's next client
    assert [m["text"] for m in later["messages"]] == ["first", "second"]
    assert service.next(call(1)) is LATER


def test_a_newer_next_or_leaving_everything_answers_the_parked_one():
    service = ChatService()
    service.loop = FakeLoop()
    first, second = call(1), call(1)
    service.join(first, channel="#lobby")
    assert service.next(first) is LATER
    assert service.next(second) is LATER
    assert service.loop.answers == [(first, {"messages": [], "dropped": 0})]
    service.leave(second, channel="")
    assert service.loop.answers[-1] == (second, {"messages": [], "dropped": 0})
    assert service.next(call(1)) == {"messages": [], "dropped": 0}  # not a member: no wait


def test_service_refuses_hostile_params_with_invalid_argument():
    service = ChatService()
    with pytest.raises(RemoteError) as info:
        service.join(call(1), channel="#" + "x" * 5000)
    assert info.value.type == "invalidArgument"
    assert len(info.value.message) < 200  # the message does not echo the whole name back
    with pytest.raises(RemoteError):
        service.send(call(1), channel="#lobby", text="not a member")


def test_the_bot_answers_new_plain_messages_from_others_only():
    plain = {"channel": "#lobby", "sender": "member-2", "text": "hello", "replayed": False}
    assert wants_reply(plain, "member-1")
    assert not wants_reply({**plain, "sender": "member-1"}, "member-1")
    assert not wants_reply({**plain, "replayed": True}, "member-1")
    assert not wants_reply({**plain, "text": REPLY}, "member-1")
    assert not wants_reply({**plain, "channel": "#other"}, "member-1")


class FakeStdio:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> dict:
        self.writes.append(data)
        return {}


def test_terminal_writes_in_small_chunks_cut_at_newlines_and_never_inside_a_character():
    stdio = FakeStdio()
    term = Terminal(None, stdio)
    text = "\n".join(["é" * 700] * 4) + "\n" + "ü" * 3000
    term.write(text)
    assert all(len(w) <= WRITE_CHUNK for w in stdio.writes)
    assert b"".join(stdio.writes).decode() == text
    for chunk in stdio.writes:
        chunk.decode()  # each chunk is whole characters
    assert stdio.writes[0].endswith(b"\n")
    assert len(stdio.writes) == 4 + 3  # a line a write, then 6000 bytes in three
    term.say()
    assert len(stdio.writes) == 7  # saying nothing writes nothing
