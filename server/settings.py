"""The server's configuration: one typed object, read once, passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    web_dir: Path = field(default=REPO_ROOT / "web")

    @property
    def vendor_dir(self) -> Path:
        return self.web_dir / "node_modules"
