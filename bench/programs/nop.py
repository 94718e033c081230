"""NOP throughput: fill the SQ with NOPs, cap_enter until all complete, repeat."""

from __future__ import annotations

import time

from bench.programs.report import bench_params, report
from kernel import abi
from kernel.abi import Op
from kernel.ring import sqe
from kernel.runtime import Runtime

BATCH = abi.SQ_ENTRIES


def run_nops(rt: Runtime, total: int) -> float:
    ring, syscalls = rt.ring, rt.syscalls
    entries = [sqe(Op.NOP, user_data=i + 1) for i in range(BATCH)]
    done = 0
    start = time.perf_counter()
    while done < total:
        ring.submit_many(entries)
        reaped = 0
        while reaped < BATCH:
            syscalls.cap_enter(BATCH - reaped, None)
            for cqe in ring.reap():
                if cqe.result != 0:
                    raise RuntimeError(f"NOP failed with {cqe.result}")
                reaped += 1
        done += BATCH
    return done / (time.perf_counter() - start)


def main(rt: Runtime) -> int:
    total = bench_params(rt)["count"]
    run_nops(rt, min(total, 20_000))  # warm up
    report(rt, {"nop_per_s": run_nops(rt, total)})
    return 0
