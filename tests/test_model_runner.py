"""The model's one worker thread serves clients in turns: a client that queues many
generations waits behind its own, never in front of everyone else's."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from kernel.hosts.models.runner import MAX_QUEUED_PER_CLIENT, ModelRunner


class Recording:
    """A provider that answers at once and notes whose request it answered; the first
    generation waits for `go`, so the others queue up behind it."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.started, self.go = threading.Event(), threading.Event()

    def info(self) -> dict:
        return {"name": "recording", "provider": "test"}

    def generate(self, request: dict, cancelled: Callable[[], bool]) -> Iterator[dict]:
        if not self.order:
            self.started.set()
            self.go.wait(10)
        self.order.append(request["who"])
        yield {"done": "stop"}


def test_clients_take_turns_at_the_model_and_a_flood_waits_behind_itself():
    provider = Recording()
    events: dict[int, list[dict]] = {}
    finished = threading.Semaphore(0)

    def post(stream: int, event: dict) -> None:
        events.setdefault(stream, []).append(event)
        finished.release()

    runner = ModelRunner(provider, post)
    try:
        runner.start(0, {"who": "flood"}, client="flood")  # runs first, holds the model
        assert provider.started.wait(10)
        for n in range(1, 1 + MAX_QUEUED_PER_CLIENT):
            runner.start(n, {"who": "flood"}, client="flood")
        refused = 1 + MAX_QUEUED_PER_CLIENT
        runner.start(refused, {"who": "flood"}, client="flood")  # one too many waiting
        runner.start(100, {"who": "honest"}, client="honest")
        provider.go.set()
        for _ in range(MAX_QUEUED_PER_CLIENT + 3):
            assert finished.acquire(timeout=10)
    finally:
        runner.close()
    assert "already wait for the model" in events[refused][0]["error"]
    assert provider.order[:2] == ["flood", "honest"]  # the honest one is next, not last
    assert provider.order.count("flood") == 1 + MAX_QUEUED_PER_CLIENT
