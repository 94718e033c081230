"""Small boot manifests the system tests share: one per scenario, named for it."""

from __future__ import annotations


def system(services: list[dict], binaries: dict[str, str]) -> dict:
    """A manifest document: init plus these services and binaries."""
    return {
        "schemaVersion": 1,
        "kernelParams": {"motd": "test system"},
        "binaries": [{"name": "init", "module": "kernel.programs.init"}]
        + [{"name": n, "module": m} for n, m in binaries.items()],
        "initConfig": {"init": "init", "services": services},
    }


def kernel_caps(*names: str) -> list[dict]:
    return [{"name": n, "source": {"kernel": n}} for n in names]


def imported(name: str, service: str, export: str) -> dict:
    return {"name": name, "source": {"import": {"service": service, "export": export}}}


def exporter(name: str, binary: str, export: str, interface: str = "Echo") -> dict:
    return {
        "name": name,
        "binary": binary,
        "exports": [{"name": export, "interface": interface}],
        "caps": [],
    }


# echo serves; hello prints the MOTD and the echo of a call to it.
HELLO = system(
    [
        exporter("echo", "echo-server", "echo"),
        {
            "name": "hello",
            "binary": "hello",
            "caps": [
                *kernel_caps("console"),
                {"name": "info", "source": {"kernel": "systemInfo"}},
                imported("echo", "echo", "echo"),
            ],
        },
    ],
    {"echo-server": "kernel.programs.echo_server", "hello": "kernel.programs.hello"},
)

# crasher takes one call and crashes; caller prints what its call got.
CRASH = system(
    [
        exporter("crasher", "crasher", "svc"),
        {
            "name": "caller",
            "binary": "caller",
            "caps": [*kernel_caps("console"), imported("echo", "crasher", "svc")],
        },
    ],
    {"crasher": "tests.programs.crasher", "caller": "tests.programs.echo_once"},
)

# checks drives ProcessSpawner and ProcessHandle through their hostile paths.
SPAWN_CHECKS = system(
    [
        {
            "name": "checks",
            "binary": "checks",
            "caps": kernel_caps("console", "processSpawner", "timer"),
        }
    ],
    {
        "checks": "tests.programs.spawn_checks",
        "sleeper": "tests.programs.sleeper",
        "quick": "tests.programs.quick",
    },
)
