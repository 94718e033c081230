"""The kernel package, as one archive the browser's Pyodide unpacks without a network.

Built once when the server starts (deterministic: sorted entries, fixed
timestamps), so its ETag only changes when the code does; a returning
visitor revalidates and gets 304 Not Modified instead of the download.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from server.settings import REPO_ROOT

PACKAGES = ("kernel", "demos")
EXTRA_FILES = ("schema/bundle.json",)
SKIP_PARTS = {"__pycache__"}
FIXED_TIME = (2026, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Archive:
    data: bytes
    etag: str


def build_archive(root: Path = REPO_ROOT) -> Archive:
    files: list[Path] = []
    for package in PACKAGES:
        files += [
            p
            for p in (root / package).rglob("*")
            if p.is_file()
            and not SKIP_PARTS & set(p.parts)
            and p.suffix in (".py", ".md", ".toml", ".json")
        ]
    files += [root / name for name in EXTRA_FILES]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    data = buffer.getvalue()
    return Archive(data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"')
