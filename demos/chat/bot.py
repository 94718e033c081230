"""chat-bot: a small resident actor that answers every plain message in #lobby.

Caps: `chat` (Chat); optionally `timer` (Timer) and `console` (Console).
It joins #lobby and answers each new message from another member with
`[chat-bot] echo-bot heard you.` It never answers replayed history or a
reply of a bot (no two bots echoing each other forever).

Lifetime: with a `timer` it is the bounded proof actor of capOS's First
Chat: after IDLE_LIMIT_NS without a message it leaves and exits 0. Without
a timer it serves for as long as the system runs.
"""

from __future__ import annotations

from kernel.runtime import Pending, RemoteError, Runtime, TransportFailure

LOBBY = "#lobby"
REPLY = "[chat-bot] echo-bot heard you."
IDLE_LIMIT_NS = 600 * 1_000_000_000


def wants_reply(message: dict, me: str) -> bool:
    return (
        message["channel"] == LOBBY
        and message["sender"] != me
        and not message["replayed"]
        and not message["text"].startswith("[chat-bot]")
    )


def main(rt: Runtime) -> int:
    chat = rt.cap("chat", "Chat")
    timer = rt.cap("timer", "Timer") if "timer" in rt.caps else None
    console = rt.cap("console", "Console") if "console" in rt.caps else None
    me = chat.join(channel=LOBBY)["you"]
    last_heard = timer.now()["ns"] if timer else 0
    poll: Pending | None = None
    sleep: Pending | None = None
    try:
        while True:
            if poll is None:
                poll = rt.begin(chat, "next")
            if timer is not None and sleep is None:
                left = last_heard + IDLE_LIMIT_NS - timer.now()["ns"]
                sleep = rt.begin(timer, "sleep", {"ns": max(1, left)})
            done = rt.first([p for p in (poll, sleep) if p is not None])
            if timer is not None and done is sleep:
                rt.result(sleep)
                sleep = None
                if timer.now()["ns"] - last_heard >= IDLE_LIMIT_NS:
                    break
                continue
            poll = None
            messages = rt.result(done)["messages"]
            if messages and timer is not None:
                last_heard = timer.now()["ns"]
            for message in messages:
                if wants_reply(message, me):
                    try:
                        chat.send(channel=LOBBY, text=REPLY)
                    except RemoteError as exc:  # refused: the next message gets an answer
                        if exc.type == "disconnected":
                            raise
    except (RemoteError, TransportFailure):
        return 1  # the chat server is gone
    for pending in (poll, sleep):
        if pending is not None:
            rt.abandon(pending)
    chat.leave(channel="")
    if console is not None:
        console.writeLine(text=f"chat-bot: no message for {IDLE_LIMIT_NS // 10**9} s; leaving")
    return 0
