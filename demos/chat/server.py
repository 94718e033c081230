"""chat-server: serves Chat on its exported endpoint `chat`, forever.

Each caller session is one member, keyed by the endpoint's scoped
reference. `next` is a long-poll: with nothing waiting it stays parked
(one per session) until a message arrives for that session, a newer `next`
from the same session replaces it, or the session leaves every channel.
"""

from __future__ import annotations

from demos.chat.rooms import ChatError, ChatRooms
from kernel.runtime import RemoteError, Runtime
from kernel.runtime.service import LATER, Call, ServiceLoop


def _refused(exc: ChatError) -> RemoteError:
    return RemoteError(exc.kind, str(exc))


class ChatService:
    def __init__(self) -> None:
        self.rooms = ChatRooms()
        self.loop: ServiceLoop | None = None
        self.waiting: dict[object, Call] = {}  # session -> its parked `next`

    def join(self, call: Call, channel: str) -> dict:
        try:
            you, history = self.rooms.join(call.scoped_ref, channel)
        except ChatError as exc:
            raise _refused(exc) from None
        return {"you": you, "history": [m.as_dict(replayed=True) for m in history]}

    def leave(self, call: Call, channel: str) -> dict:
        try:
            self.rooms.leave(call.scoped_ref, channel)
        except ChatError as exc:
            raise _refused(exc) from None
        if not self.rooms.is_member(call.scoped_ref):
            self._wake(call.scoped_ref)  # nothing more will come: let its long-poll go
        return {}

    def who(self, call: Call, channel: str) -> dict:
        try:
            return {"members": self.rooms.who(channel)}
        except ChatError as exc:
            raise _refused(exc) from None

    def send(self, call: Call, channel: str, text: str) -> dict:
        try:
            message, recipients = self.rooms.send(call.scoped_ref, channel, text)
        except ChatError as exc:
            raise _refused(exc) from None
        for key in recipients:
            if key != call.scoped_ref:
                self._wake(key)
        self._wake(call.scoped_ref)
        return {"seq": message.seq}

    def next(self, call: Call) -> object:
        key = call.scoped_ref
        self._wake(key)  # an older parked call from this session gets what there is
        if self.rooms.has_mail(key) or not self.rooms.is_member(key):
            return self._mail(key)
        self.waiting[key] = call
        return LATER

    def _mail(self, key: int) -> dict:
        messages, dropped = self.rooms.take(key)
        return {"messages": [m.as_dict() for m in messages], "dropped": dropped}

    def _wake(self, key: object) -> None:
        """Answer the session's parked `next` with whatever waits for it; if that
        client has gone, the session keeps them for its next `next`."""
        parked = self.waiting.pop(key, None)
        if parked is None or self.loop is None:
            return
        messages, dropped = self.rooms.take(key)
        results = {"messages": [m.as_dict() for m in messages], "dropped": dropped}
        self.loop.answer(
            parked, results, on_refused=lambda: self.rooms.give_back(key, messages, dropped)
        )


def main(rt: Runtime) -> int:
    service = ChatService()
    service.loop = ServiceLoop(rt, rt.cap("chat", "Endpoint"), "Chat", service)
    service.loop.run()
    return 0
