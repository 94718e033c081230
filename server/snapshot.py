"""The Pyodide memory snapshot every worker of a tab starts from.

A bare Pyodide load spends most of its seconds initialising CPython and
importing modules; restoring a snapshot of an interpreter that already did
both (with the kernel package imported and warmed up) takes a fraction of
that. The snapshot is made with Node.js by web/tools/make-snapshot.mjs,
once per (Pyodide, kernel archive) pair, and cached on disk under a name
derived from both, so it is served as immutable and stored gzipped.

It is kept and served sparse: half of the heap's pages are all zero, and a
worker need not write those (web/static/pyodide-boot.js), so the page need
not fetch, unpack or scan them either. The layout, all little-endian u32:
header length, memory size (the whole snapshot's: Pyodide's INITIAL_MEMORY),
run count; Pyodide's header; each run's [start, end) in the heap; then the
bytes of every run, one after the other.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from server.package import Archive
from server.settings import Settings

SCRIPT = "tools/make-snapshot.mjs"
BUILD_TIMEOUT_S = 300
KEEP = 4  # snapshots kept for older code a server still running may serve
LAYOUT = b"sparse 1"  # part of the cache key: a new layout makes new files
PAGE = 4096  # the unit of a run: the system's memory page


class SnapshotFailed(Exception):
    """The snapshot could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class Snapshot:
    name: str  # content-derived: changes whenever Pyodide or the kernel package does
    gzipped: bytes  # the sparse layout above
    size: int  # unpacked
    memory: int  # Pyodide's whole snapshot, header and heap
    header: bytes  # Pyodide's header: a worker starts from it before the heap arrives


def sparse(raw: bytes) -> bytes:
    """Pyodide's snapshot (its header, then the heap) in the sparse layout."""
    heap_offset = int.from_bytes(raw[4:8], "little")  # the header's second u32
    header, heap = raw[:heap_offset], memoryview(raw)[heap_offset:]
    zero = bytes(PAGE)
    runs: list[list[int]] = []
    for start in range(0, len(heap), PAGE):
        end = min(start + PAGE, len(heap))
        if heap[start:end] == zero[: end - start]:
            continue
        if runs and runs[-1][1] == start:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    table = b"".join(struct.pack("<II", start, end) for start, end in runs)
    return b"".join(
        [
            struct.pack("<III", len(header), len(raw), len(runs)),
            header,
            table,
            *(heap[start:end] for start, end in runs),
        ]
    )


def snapshot_key(settings: Settings, archive: Archive, pyodide_version: str) -> str:
    script = (settings.web_dir / SCRIPT).read_bytes()
    digest = hashlib.sha256()
    for part in (LAYOUT, pyodide_version.encode(), script, archive.data):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:24]


def load_snapshot(settings: Settings, archive: Archive, pyodide_version: str) -> Snapshot:
    """The cached snapshot for this code, made first if there is none."""
    name = f"snapshot-{snapshot_key(settings, archive, pyodide_version)}.bin"
    cached = settings.cache_dir / name
    if not cached.exists():
        _build(settings, archive, cached)
    gzipped = cached.read_bytes()
    body = gzip.decompress(gzipped)
    header_length, memory, _ = struct.unpack_from("<III", body)
    return Snapshot(name, gzipped, len(body), memory, body[12 : 12 + header_length])


def _build(settings: Settings, archive: Archive, target: Path) -> None:
    node = shutil.which("node")
    if node is None:
        raise SnapshotFailed(
            "node is not on PATH; it makes the Pyodide snapshot. "
            "Install Node.js 20 (apt-get install nodejs npm) and run `make run`."
        )
    print("capos-playground: making the Pyodide memory snapshot…", file=sys.stderr, flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        zip_path, raw_path = Path(scratch, "kernel.zip"), Path(scratch, "snapshot.bin")
        zip_path.write_bytes(archive.data)
        pyodide_dir = settings.vendor_dir / "pyodide"
        command = [node, str(settings.web_dir / SCRIPT), str(pyodide_dir), str(zip_path)]
        try:
            result = subprocess.run(
                [*command, str(raw_path)],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise SnapshotFailed(f"making the snapshot took over {BUILD_TIMEOUT_S} s") from exc
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise SnapshotFailed("making the snapshot failed:\n  " + "\n  ".join(tail))
        packed = Path(scratch, "snapshot.gz")
        packed.write_bytes(gzip.compress(sparse(raw_path.read_bytes()), compresslevel=6, mtime=0))
        os.replace(packed, target)  # atomic: a concurrent server sees all of it or none
    _prune(target.parent)


def _prune(cache: Path) -> None:
    """One snapshot is made per code change: keep only the newest few."""
    made = sorted(cache.glob("snapshot-*.bin"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in made[KEEP:]:
        old.unlink(missing_ok=True)
