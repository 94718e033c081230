"""The supervision idioms, written once: every long-lived task in the server is run by these.

- `race`: run coroutines together; the first to end (return or raise) cancels the rest,
  as a reader and a writer on one socket, or a VM's pumps, want.
- `any_set`: wait for the first of some events, or a timeout; no stray waiter tasks.
- `Backoff`: how a loop that lost its dependency (Redis, the disk) waits before trying
  again: doubling delays with full jitter, so replicas that lost Redis together do not
  come back in lock step.
- `supervised`: keep a shared part (the pool, the replica loops) running, restarting it
  after a failure with backoff, and telling `Health` what state it is in.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from server.health import Health

log = logging.getLogger("capos.server")


async def race(*coros: Coroutine[Any, Any, Any]) -> None:
    """Run `coros` together until the first ends; the rest are cancelled and awaited.

    An exception raised by any of them propagates (in an ExceptionGroup), after the
    others have ended.
    """
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(coro) for coro in coros]

        def end_the_others(done: asyncio.Task) -> None:
            for task in tasks:
                if task is not done:
                    task.cancel()

        for task in tasks:
            task.add_done_callback(end_the_others)


async def any_set(*events: asyncio.Event, timeout: float | None = None) -> bool:
    """Wait until one of `events` is set, at most `timeout` seconds; whether one was."""
    if any(event.is_set() for event in events):
        return True
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return any(event.is_set() for event in events)


class Backoff:
    """Delays between tries: `first`, doubling up to `most`, each drawn with full jitter."""

    def __init__(self, first: float = 0.25, most: float = 10.0) -> None:
        self.first, self.most = first, most
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.most, self.first * 2**self.failures)
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self.failures = 0


async def supervised(
    name: str,
    health: Health,
    run: Callable[[], Awaitable[None]],
    backoff: Backoff | None = None,
) -> None:
    """Run a shared part until cancelled; when it fails, mark it down, wait, and start it
    again. `run` marks the part "ok" itself once it is serving."""
    backoff = backoff or Backoff(first=1.0, most=60.0)
    while True:
        try:
            await run()
            health.down(name, "it stopped by itself; starting it again")
        except Exception as exc:
            log.exception("capOS: %s failed; starting it again", name)
            health.down(name, f"it failed ({type(exc).__name__}: {exc}); starting it again")
        await backoff.wait()
