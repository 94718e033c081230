"""The server's configuration: one typed object, read once, passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_cache_dir() -> Path:
    """Built artefacts the server makes once and reuses (the Pyodide snapshot, the guest image)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "capos-playground"


@dataclass(frozen=True)
class QemuSettings:
    """The QEMU pool behind server-hosted sessions."""

    warm: int = 2  # VMs kept booted at the prompt
    max_vms: int = 8  # all QEMU processes at once (warm, in use, restoring)
    memory_mib: int = 256  # each VM's memory cap
    accel: str = "auto"  # "auto" (KVM if a real boot works), "kvm" or "tcg"
    idle_timeout_s: float = 300.0  # no client for this long: the VM is saved and stopped
    lifetime_s: float = 3600.0  # wall clock, suspended time included
    cpu_seconds: float = 900.0  # CPU time a session's VMs may use in all
    max_sessions: int = 64
    scrollback: int = 256 * 1024  # output bytes kept per session for reconnecting clients
    snapshot: bool = True  # refill the pool by restoring a booted template, not by booting


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    web_dir: Path = field(default=REPO_ROOT / "web")
    cache_dir: Path = field(default_factory=default_cache_dir)
    qemu: QemuSettings | None = None  # None: no server-hosted sessions

    @property
    def vendor_dir(self) -> Path:
        return self.web_dir / "node_modules"
