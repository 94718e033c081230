"""LanguageModel as a host-provided kernel cap: the model runs in the host.

The host attaches it with a backend that runs the generations (llama.cpp or
an HTTP endpoint on a thread, the server's model across a guest's control
channel or a tab's page); this object only keeps the streams, so the kernel
core still does no I/O. `generate` asks the backend to start a generation;
the host feeds the events back with `feed`, in order, and `next` hands them
out. Streams belong
to the process that started them (in the default system, only the model
service holds this cap) and end with it. Everything is bounded: streams at
once, events kept per stream, events per answer.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard, overload

from kernel.capobject import PENDING, CallContext, Deferred, KernelService, Pending
from kernel.errors import CapError

if TYPE_CHECKING:
    from kernel.host import ModelBackend
    from kernel.kernel import Kernel
    from kernel.process import Process

MAX_STREAMS = 8  # generations started and not yet read to their end, system-wide
MAX_KEPT_EVENTS = 512  # past this a reader has fallen behind: the stream fails
MAX_ANSWER_BYTES = 6 * 1024  # of event text per `next` answer (a result buffer is 8 KiB)
MAX_MERGED_TEXT = 2048  # waiting text deltas are merged up to this, so a fast model is cheap
MAX_MESSAGES = 64
MAX_TOKENS = 2048  # per generation: one caller cannot keep the model busy for long
MAX_TOOLS = 64


@dataclass
class _Stream:
    owner: Process
    events: deque[dict] = field(default_factory=deque)
    ended: bool = False  # the host sent done or error: nothing more will come
    reader: Deferred | None = None


class HostModel(KernelService):
    interface_name = "LanguageModel"

    def __init__(self, kernel: Kernel, info: dict, backend: ModelBackend) -> None:
        super().__init__()
        self.kernel = kernel
        self.model_info = info
        self.backend = backend
        self._streams: dict[int, _Stream] = {}
        self._ids = itertools.count(1)
        self._watched: set[int] = set()  # pids whose end cancels their streams

    # --- the interface ---------------------------------------------------------------

    def info(self, ctx: CallContext, params: dict) -> dict:
        return {"info": self.model_info}

    def generate(self, ctx: CallContext, params: dict) -> dict:
        if len(self._streams) >= MAX_STREAMS:
            raise CapError.overloaded(
                f"{MAX_STREAMS} generations are already open; read or cancel one first"
            )
        if len(params["messages"]) > MAX_MESSAGES or len(params["tools"]) > MAX_TOOLS:
            raise CapError.invalid_argument(
                f"at most {MAX_MESSAGES} messages and {MAX_TOOLS} tools a generation"
            )
        if not params["messages"]:
            raise CapError.invalid_argument("generate needs at least one message")
        limits = params["params"]
        if not 1 <= limits["maxTokens"] <= MAX_TOKENS or not 0 <= limits["temperature"] <= 2:
            raise CapError.invalid_argument(
                f"maxTokens must be 1..{MAX_TOKENS} and temperature 0..2"
            )
        stream_id = next(self._ids)
        owner = ctx.caller
        self._streams[stream_id] = _Stream(owner)
        if owner.pid not in self._watched:
            self._watched.add(owner.pid)
            owner.on_end.append(self._owner_ended)
        self.backend.start(stream_id, params)
        return {"stream": stream_id}

    def next(self, ctx: CallContext, params: dict) -> dict | Pending:
        stream = self._owned(ctx, params["stream"])
        if stream.reader is not None and stream.reader.live:
            raise CapError.invalid_argument("this stream already has a reader waiting")
        if stream.events:
            return self._take(params["stream"], stream)
        stream.reader = self.defer(ctx)
        return PENDING

    def cancel(self, ctx: CallContext, params: dict) -> dict:
        stream_id = params["stream"]
        stream = self._owned(ctx, stream_id)
        if not stream.ended:
            self.backend.cancel(stream_id)
            self.feed(stream_id, {"done": "cancelled"})
        return {}

    # --- the host's side --------------------------------------------------------------

    def feed(self, stream_id: int, event: object) -> None:
        """An event from the host's generation (ignored once the stream has ended).

        A browser tab's events crossed the network and the page, so each is checked:
        one the LanguageModel cap could not hand out ends the stream with an error."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.ended:
            return
        if not is_completion_event(event):
            self.backend.cancel(stream_id)
            event = {"error": "the host's model sent an event that is not a CompletionEvent"}
        event = _valid_text(event)
        if len(stream.events) >= MAX_KEPT_EVENTS:
            self.backend.cancel(stream_id)
            event = {"error": "the reader fell behind the model; the generation was stopped"}
        elif _size(event) > MAX_ANSWER_BYTES:
            self.backend.cancel(stream_id)
            event = {"error": f"the model sent an event over {MAX_ANSWER_BYTES} bytes; stopped"}
        stream.ended = "done" in event or "error" in event
        last = stream.events[-1] if stream.events else None
        if (
            last is not None
            and "textDelta" in last
            and "textDelta" in event
            and len(last["textDelta"]) + len(event["textDelta"]) <= MAX_MERGED_TEXT
        ):
            last["textDelta"] += event["textDelta"]
        else:
            stream.events.append(event)
        if stream.reader is not None and stream.reader.live:
            reader, stream.reader = stream.reader, None
            reader.resolve(self._take(stream_id, stream))

    # --- inside ------------------------------------------------------------------------

    def _owned(self, ctx: CallContext, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.owner is not ctx.caller:
            raise CapError.invalid_argument(
                f"no open stream {stream_id} (it ended, or is not yours)"
            )
        return stream

    def _take(self, stream_id: int, stream: _Stream) -> dict:
        """Events up to the answer's byte budget (at least one); a finished stream is dropped."""
        out: list[dict] = []
        size = 0
        while stream.events:
            cost = _size(stream.events[0])
            if out and size + cost > MAX_ANSWER_BYTES:
                break
            out.append(stream.events.popleft())
            size += cost
        if stream.ended and not stream.events:
            del self._streams[stream_id]
        return {"events": out}

    def _owner_ended(self, proc: Process) -> None:
        self._watched.discard(proc.pid)
        for stream_id, stream in list(self._streams.items()):
            if stream.owner is proc:
                if not stream.ended:
                    self.backend.cancel(stream_id)
                del self._streams[stream_id]


# CompletionEvent's union: each member's type, or its struct's fields and their types
EVENT_SHAPES: dict[str, type | dict[str, type]] = {
    "textDelta": str,
    "done": str,
    "error": str,
    "toolCall": {"id": str, "name": str, "argumentsJson": str},
    "usage": {"promptTokens": int, "completionTokens": int},
}


def is_completion_event(event: object) -> TypeGuard[dict]:
    """Whether `event` is a CompletionEvent dict the codec can encode."""
    if not isinstance(event, dict) or len(event) != 1:
        return False
    kind, value = next(iter(event.items()))
    shape = EVENT_SHAPES.get(kind)
    if isinstance(shape, dict):
        return (
            isinstance(value, dict)
            and set(value) == set(shape)
            and all(type(value[k]) is t for k, t in shape.items())
            and all(0 <= v < 2**32 for v in value.values() if type(v) is int)
        )
    return shape is not None and type(value) is shape


@overload
def _valid_text(value: dict) -> dict: ...
@overload
def _valid_text(value: object) -> object: ...
def _valid_text(value: object) -> object:
    """The event with text that UTF-8 can carry: a provider decoding JSON may hand over
    lone surrogates ("\\ud800"), which no Text field can encode."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {k: _valid_text(v) for k, v in value.items()}
    return value


def _size(event: dict) -> int:
    """Roughly what an event costs in an encoded answer."""
    value = next(iter(event.values()))
    if isinstance(value, dict):
        return 64 + sum(len(str(v)) for v in value.values())
    return 32 + len(str(value))
