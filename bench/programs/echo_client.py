"""Endpoint round trip: typed Echo calls to a server in another process."""

from __future__ import annotations

import statistics
import time

from bench.programs.report import bench_params, report
from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    count = bench_params(rt)["count"]
    echo = rt.cap("echo", "Echo")
    payload = b"x" * 64
    for _ in range(200):
        echo.echo(data=payload)
    samples = []
    for _ in range(count):
        start = time.perf_counter_ns()
        echo.echo(data=payload)
        samples.append(time.perf_counter_ns() - start)
    report(rt, {"endpoint_rtt_us": statistics.median(samples) / 1000})
    return 0
