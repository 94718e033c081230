"""The server's configuration: one typed object, read once, passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_cache_dir() -> Path:
    """Built artefacts the server makes once and reuses (the Pyodide snapshot)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "capos-playground"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    web_dir: Path = field(default=REPO_ROOT / "web")
    cache_dir: Path = field(default_factory=default_cache_dir)

    @property
    def vendor_dir(self) -> Path:
        return self.web_dir / "node_modules"
