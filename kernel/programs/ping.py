"""ping: round trips to an Echo service, timed; how fast is IPC here?

    run "ping" with { stdio: client @stdio, echo: client @echo }

It reports on `stdio`, or on `console` when it has no stdio (as the kernel
benchmark runs it). Each round trip is a CALL through the ring, the kernel queueing it on the
service's endpoint, the service's RECV and RETURN, and the answer's CQE.
"""

from __future__ import annotations

import statistics
import time

from kernel.runtime import Runtime

WARMUP = 50
COUNT = 500


def main(rt: Runtime) -> int:
    echo = rt.cap("echo", "Echo")
    payload = b"x" * 64
    for _ in range(WARMUP):
        echo.echo(data=payload)
    samples = []
    for _ in range(COUNT):
        start = time.perf_counter_ns()
        echo.echo(data=payload)
        samples.append(time.perf_counter_ns() - start)
    median_us = statistics.median(samples) / 1000
    best_us = min(samples) / 1000
    report = f"ping: {COUNT} round trips, median {median_us:.1f} us, best {best_us:.1f} us"
    if "stdio" in rt.caps:
        rt.cap("stdio", "StdIO").write(data=(report + "\n").encode())
    else:
        rt.cap("console", "Console").writeLine(text=report)
    return 0
