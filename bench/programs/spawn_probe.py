"""Spawn latency: spawn a child, time until its first call has completed."""

from __future__ import annotations

import statistics
import time

from bench.programs.report import bench_params, report
from kernel.codec import encode
from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    count = bench_params(rt)["count"]
    spawner = rt.cap("processSpawner", "ProcessSpawner")
    inbox = rt.cap("inbox", "Endpoint")
    reply = encode(rt.bundle.interface("Echo").method("echo").results, {"data": b""})
    samples = []
    for index in range(count + 3):
        start = time.perf_counter_ns()
        child = spawner.spawn(
            name=f"probe-{index}",
            binaryName="spawn-child",
            grants=[{"name": "parent", "source": {"clientOf": inbox}}],
        )
        incoming = rt.recv(inbox)
        rt.return_(inbox, incoming.call_id, reply)
        elapsed = time.perf_counter_ns() - start
        child["handle"].wait()
        if index >= 3:  # the first spawns warm the zygote's page cache
            samples.append(elapsed)
    report(rt, {"spawn_ms": statistics.median(samples) / 1e6})
    return 0
