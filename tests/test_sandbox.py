"""QEMU runs confined (server/sandbox.py), and saving and restoring VMs still work.

Real QEMU (TCG). A VM boots; its QEMU is read from /proc: seccomp mode 2, no new
privileges, not root, the rlimits; it is saved to a file (a migration through a
descriptor: with spawn=deny, a QEMU that tried `exec:` would die of SIGSYS) and
restored twice at once from that file, as the pool restores its template; and a
QEMU whose server is killed dies with it (the parent-death signal survives the
change of user).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.image import Image, ensure_image
from server.sandbox import MEMORY_OVERHEAD_MIB, SECCOMP, rlimits, sandbox
from server.stream import OutputStream
from server.vm import Vm, VmConfig

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]

CONFIG = VmConfig(accel="tcg")
LIMIT_NAMES = {
    resource.RLIMIT_CORE: "Max core file size",
    resource.RLIMIT_NOFILE: "Max open files",
    resource.RLIMIT_FSIZE: "Max file size",
    resource.RLIMIT_AS: "Max address space",
}


@pytest.fixture(scope="module")
def image() -> Image:
    return ensure_image()


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _limits(pid: int) -> dict[str, tuple[str, str]]:
    """/proc/<pid>/limits: name -> (soft, hard)."""
    found = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        found[name] = (soft, hard)
    return found


def _confinement(vm: Vm) -> dict:
    """What /proc says about `vm`'s QEMU, and its children (there must be none)."""
    pid = vm.pid
    children = [
        child
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    return {
        "status": _status(pid),
        "limits": _limits(pid),
        "cgroup": Path(f"/proc/{pid}/cgroup").read_text(),
        "children": children,
        "cmdline": Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"),
    }


def test_qemu_runs_sandboxed_and_saves_and_restores_through_descriptors(image, tmp_path):
    state = tmp_path / "vm.state"

    async def scenario() -> dict:
        found: dict = {}
        booted = Vm(image, CONFIG, OutputStream(), name="capos-test-sandbox")
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(booted.run())
            async with asyncio.timeout(120):
                await booted.ready.wait()
            found["booted"] = _confinement(booted)
            await booted.suspend(state)
        found["suspended"] = booted.exit_reason
        found["state_bytes"] = state.stat().st_size
        clones = [
            Vm(image, CONFIG, OutputStream(), name=f"capos-test-clone{n}", incoming=state)
            for n in range(2)
        ]
        async with asyncio.TaskGroup() as tasks:
            for clone in clones:
                tasks.create_task(clone.run())
            async with asyncio.timeout(120):
                for clone in clones:
                    await clone.ready.wait()
            found["clone"] = _confinement(clones[0])
            found["pongs"] = [await clone.control.call(ping=None) for clone in clones]
            for clone in clones:
                clone.write(b"guest\rcounter.increment(by=7)\r")  # the guest bundle's
            found["answers"] = [await _until(clone.stream, "value = 7") for clone in clones]
            for clone in clones:
                await clone.shutdown("test over")
        found["clone_exits"] = [clone.exit_reason for clone in clones]
        return found

    found = asyncio.run(scenario())
    assert found["suspended"] == "suspended", found["suspended"]
    assert found["state_bytes"] > 1 << 20  # a whole VM, written by QEMU through the fd
    assert all("pong" in pong for pong in found["pongs"])
    assert found["clone_exits"] == ["test over", "test over"]
    for which in ("booted", "clone"):
        seen = found[which]
        assert seen["status"]["Seccomp"] == "2", f"{which}: QEMU runs without seccomp"
        assert seen["status"]["NoNewPrivs"] == "1"
        uids = seen["status"]["Uid"].split()
        if os.geteuid() == 0:
            assert "0" not in uids, f"{which}: QEMU runs as root ({uids})"
        assert SECCOMP in [arg.decode() for arg in seen["cmdline"]]
        assert not any(arg.startswith(b"exec:") for arg in seen["cmdline"])
        assert seen["children"] == [], f"{which}: QEMU started processes"
        for which_limit, value in rlimits(CONFIG.memory_mib).items():
            name = LIMIT_NAMES[which_limit]
            assert seen["limits"][name] == (str(value), str(value)), name
        _assert_cgroup(seen["cgroup"])


def _assert_cgroup(proc_cgroup: str) -> None:
    """In its own cgroup, with its memory cap, where this machine has cgroup v2 to give."""
    box = sandbox()
    if box.cgroups is None:
        assert box.no_cgroup, "no cgroup, and no reason given"
        assert box.stats(CONFIG.memory_mib)["cgroup"] == {"none": box.no_cgroup}
        return
    relative = next(line[3:] for line in proc_cgroup.splitlines() if line.startswith("0::"))
    base = box.cgroups.base
    assert relative.startswith(f"/{base.name}/capos-test-"), proc_cgroup
    cgroup = base.parent / relative.lstrip("/")
    want = (CONFIG.memory_mib + MEMORY_OVERHEAD_MIB) << 20
    assert (cgroup / "memory.max").read_text().strip() == str(want)


async def _until(stream: OutputStream, text: str, timeout: float = 30) -> str:
    async with asyncio.timeout(timeout):
        while text not in (seen := stream.snapshot().data):
            await stream.next(stream.end, 1)
    return seen


ORPHAN = """
import asyncio, sys
from server.image import ensure_image
from server.stream import OutputStream
from server.vm import Vm, VmConfig

async def main():
    vm = Vm(ensure_image(), VmConfig(accel="tcg"), OutputStream(), name="capos-test-orphan")
    task = asyncio.create_task(vm.run())
    while not vm.pid:
        await asyncio.sleep(0.01)
    print(vm.pid, flush=True)
    await task

asyncio.run(main())
"""


def test_qemu_dies_with_a_killed_server_though_it_changed_user(image):
    server = subprocess.Popen(
        [sys.executable, "-c", ORPHAN],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    try:
        assert server.stdout is not None
        pid = int(server.stdout.readline())
        time.sleep(0.5)  # QEMU is past its start (and its change of user)
        assert _status(pid)["Name"].startswith("qemu")
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "QEMU outlived its killed server"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return _status(pid)["State"][0] != "Z"
    except FileNotFoundError:
        return False
