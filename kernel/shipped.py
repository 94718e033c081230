"""Files shipped with the kernel package, found the same way from a checkout or a zip.

Natively the package is a directory of the repository. In the tab it is
imported from one zip on sys.path (web/static/pyodide-boot.js writes it as
a single file, instead of unpacking a hundred-odd files in every worker),
so data files are read through the zip, not through `Path(__file__)`. Call
`shipped` when about to read, never at import: a zip's open handle does not
survive the memory snapshot the tab's workers restore.
"""

from __future__ import annotations

import zipimport
from pathlib import Path
from typing import TYPE_CHECKING

import kernel

if TYPE_CHECKING:  # zipfile itself only in the tab: a guest's boot need not import it
    import zipfile

    File = Path | zipfile.Path  # what `shipped` gives: both read, glob and name alike

REPO_ROOT = Path(__file__).resolve().parents[1]


def shipped(relative: str) -> File:
    """`relative` from the repository root, as server/package.py archives it; a directory
    ends with "/", which is how a zip tells one."""
    loader = kernel.__spec__.loader if kernel.__spec__ else None
    if isinstance(loader, zipimport.zipimporter):
        import zipfile

        return zipfile.Path(loader.archive, relative)
    return REPO_ROOT / relative
