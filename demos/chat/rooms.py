"""Chat state without processes: members, channels, inboxes, history.

A member is a caller session, known only by an opaque key (the endpoint's
scoped reference). It is shown as `member-N`, N counted from 1 in the order
sessions first join, and kept for the session's lifetime. Every limit is a
constant here, so a hostile client meets a clear `ChatError`, never
unbounded growth.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from dataclasses import dataclass, field

CHANNEL_RE = re.compile(r"^#[a-z0-9][a-z0-9._-]{0,31}$")
MAX_TEXT_BYTES = 1024
MAX_MEMBERS = 1024  # sessions ever seen
MAX_CHANNELS = 64  # channels with someone in them
MAX_JOINED = 16  # channels one member is in at once
INBOX_LIMIT = 128  # undelivered messages per member; the oldest go first
HISTORY = 10  # messages a channel replays to a member who joins
BATCH_BYTES = 4096  # about what one answer carries (the default result buffer is 8 KiB)


class ChatError(ValueError):
    """A request the rules refuse; the message is safe to show the caller."""

    def __init__(self, message: str, kind: str = "invalidArgument") -> None:
        super().__init__(message)
        self.kind = kind  # the CapException type a server should answer with


@dataclass(frozen=True, slots=True)
class Message:
    seq: int
    channel: str
    sender: str
    text: str

    def size(self) -> int:
        """About what the message takes in an answer."""
        return len(self.text.encode()) + len(self.channel) + len(self.sender) + 48

    def as_dict(self, *, replayed: bool = False) -> dict:
        return {
            "seq": self.seq,
            "channel": self.channel,
            "sender": self.sender,
            "text": self.text,
            "replayed": replayed,
        }


@dataclass(slots=True)
class Member:
    alias: str
    channels: list[str] = field(default_factory=list)  # join order
    inbox: deque[Message] = field(default_factory=deque)
    dropped: int = 0


def check_channel(name: str) -> str:
    if not CHANNEL_RE.match(name):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise ChatError(
            f"bad channel name {shown!r}: use '#' and 1-32 of a-z 0-9 . _ - (like #lobby)"
        )
    return name


def check_text(text: str) -> str:
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise ChatError(f"message is over {MAX_TEXT_BYTES} bytes")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise ChatError("message has control characters")
    if not text.strip():
        raise ChatError("message is empty")
    return text


class ChatRooms:
    def __init__(self) -> None:
        self.members: dict[object, Member] = {}
        self.channels: dict[str, list[object]] = {}  # channel -> member keys, join order
        self.history: dict[str, deque[Message]] = {}
        self.seq = 0

    def alias(self, key: object) -> str | None:
        member = self.members.get(key)
        return member.alias if member else None

    def join(self, key: object, channel: str) -> tuple[str, list[Message]]:
        """Join (idempotent): the member's alias and the channel's recent history."""
        check_channel(channel)
        member = self.members.get(key)
        if member is None:
            if len(self.members) >= MAX_MEMBERS:
                raise ChatError("chat is full: no more members", "overloaded")
            member = self.members[key] = Member(f"member-{len(self.members) + 1}")
        if channel not in member.channels:
            if len(member.channels) >= MAX_JOINED:
                raise ChatError(f"you are in {MAX_JOINED} channels already; /leave one first")
            if channel not in self.channels and len(self.channels) >= MAX_CHANNELS:
                raise ChatError("too many channels are open", "overloaded")
            member.channels.append(channel)
            self.channels.setdefault(channel, []).append(key)
        history = list(self.history.get(channel, ()))
        while sum(m.size() for m in history) > BATCH_BYTES:
            history.pop(0)  # the newest that fit in one answer
        return member.alias, history

    def leave(self, key: object, channel: str) -> list[str]:
        """Leave one channel, or every channel if `channel` is empty: those left."""
        member = self.members.get(key)
        if channel:
            check_channel(channel)
            if member is None or channel not in member.channels:
                raise ChatError(f"you are not in {channel}")
            names = [channel]
        elif member is None:
            return []  # never joined: nothing to leave
        else:
            names = list(member.channels)
        for name in names:
            member.channels.remove(name)
            keys = self.channels[name]
            keys.remove(key)
            if not keys:  # an empty channel is forgotten, history and all
                del self.channels[name]
                self.history.pop(name, None)
        return names

    def who(self, channel: str) -> list[str]:
        check_channel(channel)
        return [self.members[k].alias for k in self.channels.get(channel, ())]

    def send(self, key: object, channel: str, text: str) -> tuple[Message, list[object]]:
        """Post to a channel: the message, and the members it was delivered to."""
        check_channel(channel)
        member = self.members.get(key)
        if member is None or channel not in member.channels:
            raise ChatError(f"join {channel} before sending to it")
        check_text(text)
        self.seq += 1
        message = Message(self.seq, channel, member.alias, text)
        history = self.history.setdefault(channel, deque(maxlen=HISTORY))
        history.append(message)
        recipients = list(self.channels[channel])
        for other in recipients:
            recipient = self.members[other]
            if len(recipient.inbox) >= INBOX_LIMIT:
                recipient.inbox.popleft()
                recipient.dropped += 1
            recipient.inbox.append(message)
        return message, recipients

    def take(self, key: object) -> tuple[list[Message], int]:
        """What waits for a member, oldest first, as much as fits in one answer
        (BATCH_BYTES, at least one message), and how many were dropped."""
        member = self.members.get(key)
        if member is None:
            return [], 0
        messages: list[Message] = []
        room = BATCH_BYTES
        while member.inbox and (not messages or member.inbox[0].size() <= room):
            messages.append(member.inbox.popleft())
            room -= messages[-1].size()
        dropped, member.dropped = member.dropped, 0
        return messages, dropped

    def give_back(self, key: object, messages: list[Message], dropped: int) -> None:
        """Undo a `take` whose answer could not be delivered."""
        member = self.members[key]
        member.inbox.extendleft(reversed(messages))
        member.dropped += dropped
        while len(member.inbox) > INBOX_LIMIT:
            member.inbox.popleft()
            member.dropped += 1

    def has_mail(self, key: object) -> bool:
        member = self.members.get(key)
        return bool(member and (member.inbox or member.dropped))

    def is_member(self, key: object) -> bool:
        """True while the session is in at least one channel."""
        member = self.members.get(key)
        return bool(member and member.channels)
