"""Saved VMs on disk: suspended sessions' state files, and the templates they are made against.

QEMU saves a stopped VM as its migration stream (`Vm.suspend`): about 150 MiB for a 256 MiB
guest, measured, nearly all of it pages that the pool's template (the booted VM every
session is cloned from) holds as well. So a state file is that stream compressed by zstd
with the template as its reference (`--patch-from`): what is left is about what the
session changed, 70-75 KiB after a few commands. A restore decompresses it against the same
template into a pipe that the new QEMU reads (`-incoming fd:`), so the whole stream never
rests on disk again.

zstd takes a reference only when it knows its input's size, so QEMU first writes the
stream to a scratch file beside the state file. Each zstd holds a template's worth of
memory (about 470 MiB compressing, 300 MiB decompressing), so ZSTD_AT_ONCE run at a time.
A save that has not ended SAVE_TIMEOUT_S after it began (a VM that no longer answers) is
abandoned and its VM killed.

Everything lives in one private directory (0700, its files 0600), `vms/` under the data
directory:

  template-NAME.vmstate  a pool's template, QEMU's stream as it is; each server makes one
                         as it starts, and older ones stay while a state file needs them
  NAME.zst               a suspended session's saved VM
  *.partial              a save under way (what a crash leaves is removed at start)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kernel.hosts.zygote import die_with_parent
from server.qmp import QmpError
from server.store import private_dir
from server.supervise import any_set
from server.vm import Vm

ZSTD = "zstd"
ZSTD_AT_ONCE = 2  # saves and restores under way at once
SAVE_TIMEOUT_S = 30.0  # QEMU's migration and zstd, for one VM
DECODER_EXIT_S = 10.0  # a restore's zstd ends this soon after its VM came up (or did not)
PIPE_BYTES = 1 << 20  # the pipe a restore's zstd fills; the default 64 KiB slows QEMU down
TEMPLATE_PREFIX = "template-"
_STDIN_NAME = re.compile(r"^(zstd: )?/\*stdin\*\\\s*: ")


class SaveFailed(Exception):
    """A VM could not be saved; the message says why. Its VM may still run (a migration
    QEMU refused) or be gone (it did not answer in time, or zstd failed after it quit)."""


class RestoreFailed(Exception):
    """A saved VM could not be restored; the message says why. Its VM has been killed."""


@dataclass(frozen=True)
class Saved:
    name: str  # the state file's name in the directory
    template: str | None  # the name of the template it was compressed against
    size: int  # bytes on disk


def zstd_missing() -> str | None:
    """Why suspended sessions cannot be saved here, or None when they can."""
    if shutil.which(ZSTD) is None:
        return (
            f"{ZSTD} is not installed: suspended sessions are saved with it "
            "(apt-get install zstd; `make run` does it)"
        )
    return None


class StateFiles:
    def __init__(self, root: Path) -> None:
        private_dir(root)
        self.root = root
        self._at_once = asyncio.Semaphore(ZSTD_AT_ONCE)

    def new_template(self) -> Path:
        """Where a pool saves the template it makes as it starts."""
        return self.root / f"{TEMPLATE_PREFIX}{secrets.token_hex(8)}.vmstate"

    def size(self, name: str) -> int:
        return (self.root / name).stat().st_size

    async def save(self, vm: Vm, template: Path | None) -> Saved:
        """Save `vm` into a new state file, compressed against `template` when there is one;
        the VM ends once it is saved. SaveFailed when it cannot be."""
        name = f"{secrets.token_hex(8)}.zst"
        raw, packed = self.root / f"{name}.raw.partial", self.root / f"{name}.partial"
        async with self._at_once:
            try:
                async with asyncio.timeout(SAVE_TIMEOUT_S):
                    await vm.suspend(raw)
                    await self._compress(raw, packed, template)
                await asyncio.to_thread(self._keep, packed, name)
            except TimeoutError:
                vm.kill(f"it was not saved within {SAVE_TIMEOUT_S:.0f} s")
                raise SaveFailed(f"its VM was not saved within {SAVE_TIMEOUT_S:.0f} s") from None
            except (QmpError, OSError) as exc:
                raise SaveFailed(f"its VM could not be saved ({exc})") from None
            finally:  # a save cut short (by the server's stop, too) leaves no scratch behind
                raw.unlink(missing_ok=True)
                packed.unlink(missing_ok=True)
        return Saved(name, template.name if template else None, self.size(name))

    def _keep(self, packed: Path, name: str) -> None:
        """Make a finished save the state file `name`, on disk before its row is written:
        a machine that goes down then loses only sessions that were running."""
        _fsync(packed, os.O_RDONLY)
        os.replace(packed, self.root / name)
        _fsync(self.root, os.O_RDONLY | os.O_DIRECTORY)  # the rename

    async def _compress(self, raw: Path, packed: Path, template: Path | None) -> None:
        options = ["-q", "-c"]
        if template is not None:
            options += [f"--patch-from={template}", f"--stream-size={raw.stat().st_size}"]
        source = os.open(raw, os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(packed, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError:
            os.close(source)
            raise
        try:
            process = await _zstd(options, stdin=source, stdout=target)
        finally:
            os.close(source)
            os.close(target)
        failure = await _ended(process, timeout=None)
        if failure is not None:
            raise SaveFailed(f"its VM could not be compressed (zstd: {failure})")

    async def restore(
        self, name: str, template: str | None, start: Callable[[int], Vm], timeout: float
    ) -> Vm:
        """The VM saved in state file `name`, running again: `start(fd)` starts a QEMU that
        reads the saved VM from the pipe `fd`. RestoreFailed, with the VM killed, when it
        does not come up within `timeout` seconds."""
        path = self.root / name
        options = ["-q", "-d", "-c", "--long=31"]  # --long: the template is a 150 MiB window
        if template is not None:
            reference = self.root / template
            if not reference.is_file():
                raise RestoreFailed(f"the template its VM was saved against ({template}) is gone")
            options.append(f"--patch-from={reference}")
        async with self._at_once:
            try:
                source = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise RestoreFailed(f"its saved VM cannot be read ({exc.strerror})") from None
            read, write = os.pipe2(os.O_CLOEXEC)
            with contextlib.suppress(OSError):  # a smaller pipe only makes the restore slower
                fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            try:
                decoder = await _zstd(options, stdin=source, stdout=write)
            except OSError:
                os.close(read)
                raise
            finally:
                os.close(source)
                os.close(write)
            try:
                vm = start(read)
                await _came_up(vm, decoder, timeout)
                if not vm.ready.is_set() or vm.exited.is_set():
                    vm.kill("it could not be restored")
            finally:
                os.close(read)  # QEMU holds its own: once QEMU is gone, the decoder stops
                failure = await _ended(decoder, timeout=DECODER_EXIT_S)
        if failure is not None and decoder.returncode != -signal.SIGPIPE:  # not QEMU's doing
            vm.kill("its saved VM is damaged")
            await vm.exited.wait()
            raise RestoreFailed(f"its saved VM is damaged or cut short (zstd: {failure})")
        if not vm.ready.is_set() or vm.exited.is_set():
            await vm.exited.wait()
            raise RestoreFailed(vm.exit_reason or f"it did not come up within {timeout:.0f} s")
        return vm

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def prune(self, keep: set[str], *, templates_only: bool = False) -> None:
        """Remove what no one needs: templates not in `keep` and, unless `templates_only`
        (a server that runs: its saves are under way), state files not in `keep` and
        scratch left by a save."""
        for path in self.root.iterdir():
            template = path.name.startswith(TEMPLATE_PREFIX)
            if path.name not in keep and (template or not templates_only):
                path.unlink(missing_ok=True)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _zstd(options: list[str], stdin: int, stdout: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        ZSTD,
        *options,
        stdin=stdin,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,
    )


async def _came_up(vm: Vm, decoder: asyncio.subprocess.Process, timeout: float) -> None:
    """Wait until `vm` is up or gone, its decoder has failed, or `timeout` has passed. The
    decoder is watched too: QEMU 7.2 waits forever on a stream that ends before its first
    byte, as one does when zstd refuses a file at once."""
    deadline = time.monotonic() + timeout
    while not await any_set(vm.ready, vm.exited, timeout=0.05):
        if decoder.returncode not in (None, 0) or time.monotonic() > deadline:
            return


async def _ended(process: asyncio.subprocess.Process, timeout: float | None) -> str | None:
    """Wait for zstd to end (killed past `timeout`); what went wrong, or None."""
    try:
        async with asyncio.timeout(timeout):
            _, stderr = await process.communicate()
    except TimeoutError:
        return f"it did not end within {timeout} s"
    finally:
        if process.returncode is None:
            process.kill()
            await asyncio.shield(process.wait())
    if process.returncode == 0:
        return None
    lines = stderr.decode(errors="replace").strip().splitlines()
    if not lines:
        return f"exit status {process.returncode}"
    return _STDIN_NAME.sub("", lines[-1])[:300]  # zstd names its input "/*stdin*\"
