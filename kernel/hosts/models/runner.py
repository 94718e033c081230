"""ModelRunner: one worker thread that runs a provider's generations, fairly.

The host owns it (and closes it at shutdown). Generations run one at a time,
as the local model runs on one thread anyway; `cancel` is seen by the
provider between tokens or chunks. Every stream gets exactly one final event
(done or error), even when a provider ends early or raises.

Each generation belongs to a client (the server's: a visitor's address or a VM;
a native host has one). Clients take turns: the next generation is the oldest of
the client after the last one served, so a client that queues many waits behind
its own, never in front of everyone else's.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

MAX_QUEUED = 64  # generations waiting, of all clients
MAX_QUEUED_PER_CLIENT = 4


class Provider(Protocol):
    def info(self) -> dict:
        """A ModelInfo dict: which model answers, where it runs."""

    def generate(self, request: dict, cancelled: Callable[[], bool]) -> Iterator[dict]:
        """CompletionEvent dicts for one LanguageModel.generate request."""


class ModelRunner:
    def __init__(self, provider: Provider, post: Callable[[int, dict], None]) -> None:
        """`post(stream, event)` is called on the worker thread; the host makes it safe."""
        self.provider = provider
        self._post = post
        self._queued: dict[str, deque[tuple[int, dict]]] = {}  # by client, oldest first
        self._turns: deque[str] = deque()  # clients with generations waiting, in turn order
        self._last: str | None = None  # whose generation ran last
        self._known: set[int] = set()  # queued or running: only these can be cancelled
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="model", daemon=True)
        self._thread.start()

    def start(self, stream: int, request: dict, client: str = "") -> None:
        with self._lock:
            mine = self._queued.get(client, deque())
            if len(mine) >= MAX_QUEUED_PER_CLIENT:
                busy = f"{MAX_QUEUED_PER_CLIENT} of your generations already wait for the model"
            elif sum(len(q) for q in self._queued.values()) >= MAX_QUEUED:
                busy = "the model is busy"
            else:
                self._queued[client] = mine
                mine.append((stream, request))
                if client not in self._turns:
                    self._turns.append(client)
                self._known.add(stream)
                self._changed.notify()
                return
        self._post(stream, {"error": f"{busy}; try again when one is done"})

    def cancel(self, stream: int) -> None:
        with self._lock:
            if stream in self._known:
                self._cancelled.add(stream)

    def close(self) -> None:
        """Stop after the current generation's next token; wait for the worker."""
        with self._lock:
            self._closing = True
            self._changed.notify()
        self._thread.join(timeout=10)

    def _is_cancelled(self, stream: int) -> bool:
        with self._lock:
            return self._closing or stream in self._cancelled

    def _next(self) -> tuple[int, dict] | None:
        """The next client's oldest generation, waiting for one; None once closing."""
        with self._changed:
            while not self._turns and not self._closing:
                self._changed.wait()
            if self._closing:
                return None
            if self._turns[0] == self._last and len(self._turns) > 1:
                self._turns.rotate(-1)  # it just had its turn: another client's first
            client = self._last = self._turns.popleft()
            mine = self._queued[client]
            item = mine.popleft()
            if mine:
                self._turns.append(client)  # its next one waits for every other client's
            else:
                del self._queued[client]
            return item

    def _work(self) -> None:
        while (item := self._next()) is not None:
            stream, request = item
            if not self._is_cancelled(stream):  # a cancelled one never starts
                self._run(stream, request)
            with self._lock:
                self._known.discard(stream)
                self._cancelled.discard(stream)

    def _run(self, stream: int, request: dict) -> None:
        ended = False
        try:
            for event in self.provider.generate(request, lambda: self._is_cancelled(stream)):
                if self._is_cancelled(stream):
                    break
                self._post(stream, event)
                if "done" in event or "error" in event:
                    ended = True
                    break
        except Exception as exc:  # a provider bug or an I/O failure ends this stream only
            self._post(stream, {"error": f"the model provider failed: {type(exc).__name__}: {exc}"})
            ended = True
        if not ended:
            self._post(stream, {"done": "cancelled" if self._is_cancelled(stream) else "stop"})
