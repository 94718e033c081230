"""ping: round trips to an Echo service, timed; how fast is IPC here?

    run "ping" with { stdio: client @stdio, echo: client @echo }

It reports on `stdio`, or on `console` when it has no stdio (as the kernel
benchmark runs it). Each round trip is a CALL through the ring, the kernel queueing it on the
service's endpoint, the service's RECV and RETURN, and the answer's CQE.
Like ping(8) it says what it is about to do first; the kernel benchmark
takes that line and the result as the bounds of the timed calls.
"""

from __future__ import annotations

import statistics
import time

from kernel.runtime import Cap, Runtime

WARMUP = 50
COUNT = 500
PAYLOAD = b"x" * 64
HEADER = f"ping: timing {COUNT} round trips of {len(PAYLOAD)} bytes"


def round_trips(echo: Cap, count: int, pause_s: float = 0.0) -> list[int]:
    """Nanoseconds for each of `count` Echo round trips, idle `pause_s` before each."""
    samples = []
    for _ in range(count):
        if pause_s:
            time.sleep(pause_s)
        start = time.perf_counter_ns()
        echo.echo(data=PAYLOAD)
        samples.append(time.perf_counter_ns() - start)
    return samples


def summary(samples: list[int]) -> str:
    median_us = statistics.median(samples) / 1000
    best_us = min(samples) / 1000
    return f"ping: {len(samples)} round trips, median {median_us:.1f} us, best {best_us:.1f} us"


def main(rt: Runtime) -> int:
    echo = rt.cap("echo", "Echo")
    if "stdio" in rt.caps:
        stdio = rt.cap("stdio", "StdIO")

        def say(text: str) -> None:
            stdio.write(data=(text + "\n").encode())
    else:
        console = rt.cap("console", "Console")

        def say(text: str) -> None:
            console.writeLine(text=text)

    round_trips(echo, WARMUP)
    say(HEADER)
    say(summary(round_trips(echo, COUNT)))
    return 0
