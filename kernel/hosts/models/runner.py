"""ModelRunner: one worker thread that runs a provider's generations in order.

The host owns it (and closes it at shutdown). Generations run one at a time,
as the local model runs on one thread anyway; `cancel` is seen by the
provider between tokens or chunks. Every stream gets exactly one final event
(done or error), even when a provider ends early or raises.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

MAX_QUEUED = 16


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
        self._queue: queue.Queue[tuple[int, dict] | None] = queue.Queue()
        self._known: set[int] = set()  # queued or running: only these can be cancelled
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="model", daemon=True)
        self._thread.start()

    def start(self, stream: int, request: dict) -> None:
        if self._queue.qsize() >= MAX_QUEUED:
            self._post(stream, {"error": "the model is busy; try again when it is done"})
            return
        with self._lock:
            self._known.add(stream)
        self._queue.put((stream, request))

    def cancel(self, stream: int) -> None:
        with self._lock:
            if stream in self._known:
                self._cancelled.add(stream)

    def close(self) -> None:
        """Stop after the current generation's next token; wait for the worker."""
        with self._lock:
            self._closing = True
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _is_cancelled(self, stream: int) -> bool:
        with self._lock:
            return self._closing or stream in self._cancelled

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
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
