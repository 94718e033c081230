"""The stress test's spawner: children one after another, each heard from and reaped.

Each child calls this process's inbox once with a token of its own and
exits 0 only if the answer echoes it; a child counts as run when its call
arrived and it exited 0.
"""

from __future__ import annotations

from bench.programs.report import bench_params, report
from kernel.codec import decode, encode
from kernel.runtime import Runtime


def main(rt: Runtime) -> int:
    count = bench_params(rt)["spawns"]
    spawner = rt.cap("processSpawner", "ProcessSpawner")
    inbox = rt.cap("inbox", "Endpoint")
    echo = rt.bundle.interface("Echo").method("echo")
    ran = 0
    codes: list[int] = []
    for index in range(count):
        child = spawner.spawn(
            name=f"stress-{index}",
            binaryName="stress-child",
            grants=[{"name": "parent", "source": {"clientOf": inbox}}],
        )
        incoming = rt.recv(inbox)
        data = decode(echo.params, incoming.params)["data"]
        rt.return_(inbox, incoming.call_id, encode(echo.results, {"data": data}))
        code = child["handle"].wait()["exitCode"]
        if code == 0:
            ran += 1
        else:
            codes.append(code)
    report(rt, {"spawns": ran, "failed_spawns": count - ran, "exit_codes": codes[:10]})
    return 0
