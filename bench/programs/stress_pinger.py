"""One stress client: Echo round trips, each answer checked against what it sent."""

from __future__ import annotations

from bench.programs.report import bench_params, report
from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    count = bench_params(rt)["round_trips_each"]
    echo = rt.cap("echo", "Echo")
    done = wrong = 0
    for index in range(count):
        payload = f"{rt.pid}:{index}".encode()
        if echo.echo(data=payload)["data"] != payload:
            wrong += 1
        done += 1
    report(rt, {"round_trips": done, "wrong": wrong})
    return 0
