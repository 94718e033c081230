"""Static assets: the site's own files and the pinned browser packages.

Vendor paths carry the package version, so their responses can be cached
as immutable; the site's own files and the kernel archive revalidate.
"""

from __future__ import annotations

import base64
import gzip
import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from server.package import Archive
from server.settings import Settings
from server.snapshot import Snapshot

VENDOR = {
    "pyodide": "pyodide",
    "xterm": "@xterm/xterm",
    "xterm-addon-fit": "@xterm/addon-fit",
    "asciinema-player": "asciinema-player",
    "uplot": "uplot",
    "swagger-ui": "swagger-ui-dist",  # the API reference at /docs
}


class MissingVendor(Exception):
    """The browser packages are not installed; the message says how to fix it."""


class CachedStatic(StaticFiles):
    def __init__(self, *, directory, cache_control: str) -> None:
        super().__init__(directory=directory, follow_symlink=False)
        self.cache_control = cache_control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message):
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"cache-control", self.cache_control.encode()),
                    ],
                }
            await send(message)

        await super().__call__(scope, receive, send_cached)


def vendor_versions(settings: Settings) -> dict[str, str]:
    versions = {}
    for name, package in VENDOR.items():
        manifest = settings.vendor_dir / package / "package.json"
        if not manifest.exists():
            raise MissingVendor(
                f"{manifest.parent} is missing: run `npm ci` in {settings.web_dir} (make does it)"
            )
        versions[name] = json.loads(manifest.read_text())["version"]
    return versions


IMMUTABLE = "public, max-age=31536000, immutable"


def routes(settings: Settings, archive: Archive, snapshot: Snapshot) -> list[Route | Mount]:
    versions = {
        **vendor_versions(settings),
        "snapshot": f"/pkg/{snapshot.name}",
        "snapshotBytes": snapshot.size,  # it travels gzipped: the page needs the real size
        "snapshotMemory": snapshot.memory,
        # so that workers start the runtime while the page still fetches the heap
        "snapshotHeader": base64.b64encode(snapshot.header).decode(),
    }

    async def kernel_archive(request: Request) -> Response:
        headers = {"etag": archive.etag, "cache-control": "no-cache"}
        if request.headers.get("if-none-match") == archive.etag:
            return Response(status_code=304, headers=headers)
        return Response(archive.data, media_type="application/zip", headers=headers)

    async def snapshot_image(request: Request) -> Response:
        headers = {"cache-control": IMMUTABLE, "vary": "accept-encoding"}
        body = snapshot.gzipped
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["content-encoding"] = "gzip"
        else:  # every browser takes gzip; this is for the odd script
            body = gzip.decompress(body)
        return Response(body, media_type="application/octet-stream", headers=headers)

    async def versions_json(request: Request) -> Response:
        return Response(
            json.dumps(versions),
            media_type="application/json",
            headers={"cache-control": "no-cache"},
        )

    mounts: list[Route | Mount] = [
        Route("/pkg/capos-playground.zip", kernel_archive, methods=["GET", "HEAD"]),
        Route(f"/pkg/{snapshot.name}", snapshot_image, methods=["GET", "HEAD"]),
        Route("/vendor/versions.json", versions_json, methods=["GET"]),
        Mount(
            "/static", CachedStatic(directory=settings.web_dir / "static", cache_control="no-cache")
        ),
    ]
    for name, package in VENDOR.items():
        mounts.append(
            Mount(
                f"/vendor/{name}-{versions[name]}",
                CachedStatic(
                    directory=settings.vendor_dir / package,
                    cache_control=IMMUTABLE,
                ),
            )
        )
    return mounts
