"""The server's language model, opened once and shared by every tab that asks it.

The operator chooses it when starting the server (`--llm-url`, `--no-llm`,
or the built-in local model); it is opened when the app starts and closed
when it stops, and its key never leaves this process. Generations run one at
a time on the ModelRunner's worker thread. Each tab's socket is a `Line`:
its own stream numbers, its own outbox. The hub numbers every generation
afresh, so one tab can neither see nor cancel another's, and routes the
runner's events (posted on the worker thread) to the line that asked, on
the event loop. A line that closes cancels what it started, so a tab that
goes away mid-generation frees the model at its next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator

from kernel.hosts.models.runner import ModelRunner, Provider
from kernel.hosts.models.settings import ModelSettings, open_provider
from server.ratelimit import RateLimiter

MAX_ACTIVE = 4  # generations one line may have running or queued at once
MAX_WAITING = 256  # frames waiting for a slow client: past this, what adds to them stops
MAX_LINES = 64  # tabs connected to the model at once


class ModelHub:
    def __init__(
        self, provider: Provider, loop: asyncio.AbstractEventLoop, tokens_per_hour: int
    ) -> None:
        """`tokens_per_hour`: what one client may have the model generate (about 4
        characters a token), refilled evenly; past it, its generation stops."""
        self.info = served_info(provider.info())
        self._loop = loop
        self.tokens_per_hour = tokens_per_hour
        self._budget = RateLimiter(tokens_per_hour / 3600, tokens_per_hour)
        self._ids = itertools.count(1)
        self._routes: dict[int, tuple[Line, int]] = {}  # hub stream -> (line, its stream)
        self.lines = 0  # open lines (the event loop's thread only, like _routes)
        self._runner = ModelRunner(provider, self._posted)

    @contextlib.contextmanager
    def line(self, client: str) -> Iterator[Line]:
        """A connection to the model for `client` (a tab's address, a VM), for as long as
        the block runs; clients take turns at the model and each has its budget."""
        line = Line(self, client)
        self.lines += 1
        try:
            yield line
        finally:
            self.lines -= 1
            for stream in line.active.values():  # no one is left to tell
                self.stop(stream)
            line.active.clear()

    def close(self) -> None:
        """Stop the generation under way and the worker thread (blocks up to seconds)."""
        self._runner.close()

    # --- for lines --------------------------------------------------------------------------

    def start(self, line: Line, client_stream: int, request: dict) -> int:
        """Queue a generation for `line`; returns the hub's number for it."""
        stream = next(self._ids)
        self._routes[stream] = (line, client_stream)
        wait = self._budget.wait_s(line.client)  # a generation costs a token at least
        if wait:
            self._posted(stream, {"error": self._over_budget(wait)})
        else:
            self._runner.start(stream, request, line.client)
        return stream

    def _over_budget(self, wait: float) -> str:
        return (
            f"limit reached: your address used its {self.tokens_per_hour:,} tokens of the model "
            f"an hour; try again in {max(1, round(wait / 60))} min"
        )

    def stop(self, stream: int) -> None:
        """Cancel a generation; whatever it still sends goes nowhere."""
        self._routes.pop(stream, None)
        self._runner.cancel(stream)

    # --- from the runner ------------------------------------------------------------------

    def _posted(self, stream: int, event: dict) -> None:
        """The runner's worker thread (or the loop, when the runner is full) posts here."""
        with contextlib.suppress(RuntimeError):  # the loop has closed: no one is listening
            self._loop.call_soon_threadsafe(self._deliver, stream, event)

    def _deliver(self, stream: int, event: dict) -> None:
        route = self._routes.get(stream)
        if route is None:
            return  # cancelled, or its line closed
        line, client_stream = route
        text = event.get("textDelta")
        if isinstance(text, str) and (wait := self._budget.wait_s(line.client, len(text) / 4)):
            self.stop(stream)
            self._budget.drain(line.client)  # what it had left went to this answer
            event = {"error": self._over_budget(wait)}
        if "done" in event or "error" in event:
            self._routes.pop(stream, None)
            line.active.pop(client_stream, None)
        line.send_event(client_stream, event)


class Overrun(Exception):
    """The client keeps sending but does not read: its connection is closed."""


class Line:
    """One tab's socket, as the hub sees it."""

    def __init__(self, hub: ModelHub, client: str) -> None:
        self.hub, self.client = hub, client
        self.outbox: asyncio.Queue[dict] = asyncio.Queue()  # frames for the socket's writer
        self.active: dict[int, int] = {}  # the tab's stream -> the hub's

    def generate(self, client_stream: int, request: dict) -> None:
        if client_stream in self.active:
            self.reply_error(f"stream {client_stream} is already under way on this connection")
        elif len(self.active) >= MAX_ACTIVE:
            error = f"this tab has {MAX_ACTIVE} generations under way; wait for one to end"
            self.reply(client_stream, {"error": error})
        else:
            self.active[client_stream] = self.hub.start(self, client_stream, request)

    def cancel(self, client_stream: int) -> None:
        """Stop a generation; it ends with done("cancelled"), unless it had ended already."""
        stream = self.active.pop(client_stream, None)
        if stream is not None:
            self.hub.stop(stream)
            self.reply(client_stream, {"done": "cancelled"})

    def send_event(self, client_stream: int, event: dict) -> None:
        """An event from the model (bounded: a stream whose client lags is stopped)."""
        if self.outbox.qsize() >= MAX_WAITING and client_stream in self.active:
            self.hub.stop(self.active.pop(client_stream))
            event = {"error": "the tab fell behind the model's events; the generation stopped"}
        self.outbox.put_nowait({"type": "event", "stream": client_stream, "event": event})

    def reply(self, client_stream: int, event: dict) -> None:
        """An answer to the client's own frame: a client that sends and never reads overruns."""
        self._reply({"type": "event", "stream": client_stream, "event": event})

    def reply_error(self, message: str) -> None:
        """A frame that could not be taken, and why."""
        self._reply({"type": "error", "message": message})

    def _reply(self, frame: dict) -> None:
        if self.outbox.qsize() >= MAX_WAITING:
            raise Overrun(f"over {MAX_WAITING} answers wait for this client to read them")
        self.outbox.put_nowait(frame)


def served_info(info: dict) -> dict:
    """ModelInfo as a tab sees it: the model runs on the server, across the network."""
    return {**info, "local": False, "provider": f"{info['provider']}, on the playground's server"}


def no_model_reason(settings: ModelSettings) -> str:
    if settings.disabled:
        return "the server was started with --no-llm, so agent mode has no model here"
    return (
        "the server has no model: its built-in local model is not installed "
        "(the operator runs `make llm`, or starts it with --llm-url)"
    )


@contextlib.asynccontextmanager
async def model_hub(
    settings: ModelSettings, tokens_per_hour: int
) -> AsyncIterator[ModelHub | None]:
    """The operator's model for the app's lifespan (None: the server has none)."""
    provider = await asyncio.to_thread(open_provider, settings)
    if provider is None:
        yield None
        return
    hub = ModelHub(provider, asyncio.get_running_loop(), tokens_per_hour)
    try:
        yield hub
    finally:
        await asyncio.to_thread(hub.close)
