"""paced_ping: ping's round trips with a pause before each, as calls come in a live
system. What a spin window costs shows here: after each answer every waiter
spins through its window with nothing to find."""

from __future__ import annotations

from bench.programs.report import bench_params
from kernel.programs.ping import COUNT, HEADER, WARMUP, round_trips, summary
from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    pause_s = bench_params(rt)["pause_us"] / 1e6
    echo, console = rt.cap("echo", "Echo"), rt.cap("console", "Console")
    round_trips(echo, WARMUP)
    console.writeLine(text=HEADER)
    console.writeLine(text=summary(round_trips(echo, COUNT, pause_s)))
    return 0
