"""Exercises ProcessSpawner and ProcessHandle from inside a process; prints one line per case."""

from __future__ import annotations

from kernel.runtime import RemoteError, Runtime


def main(rt: Runtime) -> int:
    console = rt.cap("console", "Console")
    spawner = rt.cap("processSpawner", "ProcessSpawner")
    timer = rt.cap("timer", "Timer")

    def case(label: str, **params: object) -> dict | None:
        try:
            result = spawner.spawn(**params)
        except RemoteError as exc:
            console.writeLine(text=f"{label}: {exc.type}: {exc.message}")
            return None
        console.writeLine(text=f"{label}: ok")
        return result

    case("bad-binary", name="x", binaryName="no-such", grants=[])
    case("bad-name", name="has space", binaryName="sleeper", grants=[])
    case(
        "duplicate",
        name="x",
        binaryName="sleeper",
        grants=[{"name": "t", "source": {"cap": timer}}, {"name": "t", "source": {"cap": timer}}],
    )
    case(
        "client-of-non-endpoint",
        name="x",
        binaryName="sleeper",
        grants=[{"name": "t", "source": {"clientOf": timer}}],
    )
    sleeper = case(
        "sleeper",
        name="sleeper",
        binaryName="sleeper",
        grants=[
            {"name": "timer", "source": {"cap": timer}},
            {"name": "svc", "source": {"newEndpoint": 0}},
        ],
    )
    handle = sleeper["handle"]
    case(
        "handle-not-transferable",
        name="x",
        binaryName="sleeper",
        grants=[{"name": "h", "source": {"cap": handle}}],
    )
    status = handle.status()["status"]
    console.writeLine(text=f"status: {status['name']} {sorted(status['state'])}")
    handle.kill()
    console.writeLine(text=f"wait after kill: {handle.wait()['exitCode']}")
    state = handle.status()["status"]["state"]
    console.writeLine(text=f"status after kill: {state}")
    [client] = sleeper["clients"]
    try:
        rt.call_raw(client, 0, b"")
    except RemoteError as exc:
        console.writeLine(text=f"call to dead child: {exc.type}")
    quick = case("quick", name="quick", binaryName="quick", grants=[])
    console.writeLine(text=f"quick exit code: {quick['handle'].wait()['exitCode']}")
    # The child quota (16 by default) ends spawning with `overloaded`, not a crash.
    kept = []
    while True:
        try:
            kept.append(
                spawner.spawn(
                    name="s",
                    binaryName="sleeper",
                    grants=[{"name": "timer", "source": {"cap": timer}}],
                )
            )
        except RemoteError as exc:
            console.writeLine(text=f"quota after {len(kept)}: {exc.type}: {exc.message}")
            break
    for child in kept:
        child["handle"].kill()
    return 0
