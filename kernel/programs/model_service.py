"""model-service: serves LanguageModel to shells, holding the host's model and nothing else.

It has no session authority: its CapSet is the host's model (`device`) and
the endpoint it serves (`model`). A model cannot act; only the runner that
asked it (the shell in agent mode) can, with its own caps. The service keeps
each session's streams apart (a stream number works only from the session
that started it), bounds how many a session keeps open, and relays `next`
as a long-poll so one slow generation never blocks another caller.
"""

from __future__ import annotations

from kernel.runtime import Cap, Pending, RemoteError, Runtime
from kernel.runtime.service import LATER, Call, ServiceLoop

MAX_STREAMS_PER_SESSION = 2  # a new one past this cancels the session's oldest
MAX_PARAMS = 32 * 1024  # a generate request: the conversation and the tool descriptors
NEXT_RESULT_SIZE = 16 * 1024


class ModelService:
    def __init__(self, rt: Runtime, device: Cap) -> None:
        self.rt = rt
        self.device = device
        self.loop: ServiceLoop | None = None
        self.owners: dict[int, int] = {}  # stream -> the scoped_ref of the session that owns it
        self.relaying: set[int] = set()  # streams with a `next` in flight to the device

    def info(self, call: Call) -> dict:
        return self.rt.call(self.device, "info")

    def generate(self, call: Call, messages: list, tools: list, params: dict) -> dict:
        mine = [s for s, owner in self.owners.items() if owner == call.scoped_ref]
        for stream in mine[: max(0, len(mine) - MAX_STREAMS_PER_SESSION + 1)]:
            self._end(stream)
        stream = self.rt.call(
            self.device, "generate", {"messages": messages, "tools": tools, "params": params}
        )["stream"]
        self.owners[stream] = call.scoped_ref
        return {"stream": stream}

    def next(self, call: Call, stream: int) -> object:
        self._check(call, stream)
        if stream in self.relaying:
            raise RemoteError("invalidArgument", "this stream already has a reader waiting")
        pending = self.rt.begin(
            self.device, "next", {"stream": stream}, result_size=NEXT_RESULT_SIZE
        )
        self.relaying.add(stream)
        assert self.loop is not None
        self.loop.watch(pending, lambda done: self._relay(call, stream, done))
        return LATER

    def cancel(self, call: Call, stream: int) -> dict:
        self._check(call, stream)
        self.rt.call(self.device, "cancel", {"stream": stream})
        return {}

    # --- inside ------------------------------------------------------------------------

    def _check(self, call: Call, stream: int) -> None:
        if self.owners.get(stream) != call.scoped_ref:
            raise RemoteError("invalidArgument", f"no open stream {stream} in this session")

    def _relay(self, call: Call, stream: int, pending: Pending) -> None:
        assert self.loop is not None
        self.relaying.discard(stream)
        try:
            results = self.rt.result(pending)
        except RemoteError as exc:
            self.owners.pop(stream, None)
            self.loop.fail(call, exc)
            return
        if any("done" in e or "error" in e for e in results["events"]):
            self.owners.pop(stream, None)  # the device has dropped it too
        self.loop.answer(call, results)

    def _end(self, stream: int) -> None:
        """Cancel a stream its session left behind, and read it to its end."""
        self.owners.pop(stream, None)
        try:
            self.rt.call(self.device, "cancel", {"stream": stream})
            if stream in self.relaying:
                return  # the relayed `next` gets the end and drops it
            while True:
                events = self.rt.call(
                    self.device, "next", {"stream": stream}, result_size=NEXT_RESULT_SIZE
                )["events"]
                if any("done" in e or "error" in e for e in events):
                    return
        except RemoteError:
            return  # already gone


def main(rt: Runtime) -> int:
    service = ModelService(rt, rt.cap("device", "LanguageModel"))
    service.loop = ServiceLoop(
        rt, rt.cap("model", "Endpoint"), "LanguageModel", service, max_params=MAX_PARAMS
    )
    service.loop.run()
    return 0
