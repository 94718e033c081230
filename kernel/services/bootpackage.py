"""BootPackage: init's read-only view of the encoded boot manifest, in chunks."""

from __future__ import annotations

from kernel.capobject import CallContext, KernelService
from kernel.errors import CapError

MAX_CHUNK = 16 * 1024


class BootPackage(KernelService):
    interface_name = "BootPackage"

    def __init__(self, manifest: bytes) -> None:
        super().__init__()
        self._manifest = manifest

    def manifestSize(self, ctx: CallContext, params: dict) -> dict:
        return {"size": len(self._manifest)}

    def readManifest(self, ctx: CallContext, params: dict) -> dict:
        offset, size = params["offset"], params["maxBytes"]
        if size > MAX_CHUNK:
            raise CapError.invalid_argument(f"at most {MAX_CHUNK} bytes a read, not {size}")
        if offset > len(self._manifest):
            raise CapError.invalid_argument(
                f"offset {offset} is past the manifest's {len(self._manifest)} bytes"
            )
        return {"data": self._manifest[offset : offset + size]}
