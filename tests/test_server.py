"""The web server: pages, assets, the kernel archive, and the headers on all of them."""

from __future__ import annotations

import base64
import io
import os
import random
import struct
import zipfile

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.assets import MissingVendor, vendor_versions
from server.package import Archive, build_archive
from server.settings import Settings
from server.snapshot import PAGE, SnapshotFailed, load_snapshot, snapshot_key, sparse


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(), base_url="http://localhost")


def isolated(response) -> bool:
    headers = response.headers
    return (
        headers["cross-origin-opener-policy"] == "same-origin"
        and headers["cross-origin-embedder-policy"] == "require-corp"
        and headers["cross-origin-resource-policy"] == "same-origin"
        and "default-src 'self'" in headers["content-security-policy"]
        and headers["x-content-type-options"] == "nosniff"
    )


def test_healthz_says_starting_while_the_app_is_not_running(client):
    response = client.get("/healthz")  # no lifespan has run: nothing serves yet
    assert response.status_code == 503 and response.json()["status"] == "starting"
    assert response.headers["cache-control"] == "no-store"


def test_landing_page_explains_and_links_into_the_playground(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert 'href="/play"' in response.text and "capability" in response.text
    assert isolated(response)


def test_play_page_is_isolated_and_loads_only_local_scripts(client):
    response = client.get("/play")
    assert response.status_code == 200 and isolated(response)
    assert 'src="/static/play-page.js"' in response.text
    assert "http" not in response.text.replace("http-equiv", "")  # nothing from elsewhere


def test_an_old_owner_link_gets_the_page_plain_play_gets(client):
    """The server cannot see an owner link's fragment, so it serves /play alike to all."""
    assert client.get("/play?session=abc").text == client.get("/play").text


def test_every_response_carries_the_security_headers_even_errors(client):
    for path in ("/static/play.js", "/vendor/versions.json", "/nope", "/static/nope.js"):
        assert isolated(client.get(path)), path


def test_csp_allows_wasm_but_no_eval_and_no_other_origin(client):
    csp = client.get("/play").headers["content-security-policy"]
    assert "'wasm-unsafe-eval'" in csp and "'unsafe-eval'" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "http" not in csp


def test_vendor_packages_are_versioned_and_cached_forever(client):
    versions = client.get("/vendor/versions.json").json()
    assert set(versions) == {
        "pyodide",
        "xterm",
        "xterm-addon-fit",
        "asciinema-player",
        "uplot",
        "swagger-ui",
        "snapshot",
        "snapshotBytes",
        "snapshotMemory",
        "snapshotHeader",
    }
    # what a worker starts its runtime from before the snapshot arrives: the snapshot's own
    snapshot = client.get(versions["snapshot"]).content
    assert len(snapshot) == versions["snapshotBytes"]
    header_length, memory, _ = struct.unpack_from("<III", snapshot)
    assert memory == versions["snapshotMemory"]
    assert snapshot[12 : 12 + header_length] == base64.b64decode(versions["snapshotHeader"])
    wasm = client.get(f"/vendor/pyodide-{versions['pyodide']}/pyodide.asm.wasm")
    assert wasm.status_code == 200
    assert wasm.headers["content-type"] == "application/wasm"  # streaming compile needs it
    assert wasm.headers["cache-control"] == "public, max-age=31536000, immutable"
    xterm = client.get(f"/vendor/xterm-{versions['xterm']}/lib/xterm.mjs")
    assert xterm.status_code == 200 and "javascript" in xterm.headers["content-type"]
    uplot = client.get(f"/vendor/uplot-{versions['uplot']}/dist/uPlot.esm.js")
    assert uplot.status_code == 200 and "javascript" in uplot.headers["content-type"]


def test_kernel_archive_holds_the_kernel_and_revalidates_with_its_etag(client):
    response = client.get("/pkg/capos-playground.zip")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-cache"
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "kernel/kernel.py" in names and "schema/bundle.json" in names
    assert "demos/chat/server.py" in names
    assert not any("__pycache__" in n or n.startswith(("server/", "tests/")) for n in names)
    again = client.get(
        "/pkg/capos-playground.zip", headers={"if-none-match": response.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""


def test_the_pyodide_snapshot_is_named_by_its_content_and_cached_forever(client):
    url = client.get("/vendor/versions.json").json()["snapshot"]
    assert url.startswith("/pkg/snapshot-") and url.endswith(".bin")
    response = client.get(url, headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-encoding"] == "gzip"
    image = response.content  # the client undid the gzip
    header_length = struct.unpack_from("<I", image)[0]  # sparse, around Pyodide's own header
    assert image[12 : 12 + 4] == b"\x00snp" and 12 + header_length < 10 * 1024 * 1024 < len(image)
    plain = client.get(url, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == image


def test_a_sparse_snapshot_holds_every_nonzero_page_and_nothing_else():
    header = struct.pack("<IIII", 0x12345678, 16, 0, 0)  # Pyodide's: the heap starts at 16
    heap = bytearray(10 * PAGE + 100)  # a last page cut short, as a heap may end
    for page in (0, 1, 4, 9, 10):
        heap[page * PAGE + random.randrange(min(PAGE, len(heap) - page * PAGE))] = 7
    raw = header + bytes(heap)
    body = sparse(raw)
    header_length, memory, count = struct.unpack_from("<III", body)
    assert (body[12 : 12 + header_length], memory) == (header, len(raw))
    runs = struct.unpack_from(f"<{2 * count}I", body, 12 + header_length)
    assert list(zip(runs[::2], runs[1::2], strict=True)) == [
        (0, 2 * PAGE),
        (4 * PAGE, 5 * PAGE),
        (9 * PAGE, len(heap)),
    ]
    # what a worker writes (pyodide-boot.js writeHeap) is the heap, zero pages included
    restored, taken = bytearray(len(heap)), 12 + header_length + 8 * count
    for start, end in zip(runs[::2], runs[1::2], strict=True):
        restored[start:end] = body[taken : taken + end - start]
        taken += end - start
    assert taken == len(body) and restored == heap


def test_the_snapshot_is_made_once_per_code_change(tmp_path, monkeypatch):
    settings = Settings(cache_dir=tmp_path)
    version = vendor_versions(settings)["pyodide"]
    first = load_snapshot(settings, build_archive(), version)
    made = list(tmp_path.iterdir())
    monkeypatch.setattr("server.snapshot._build", lambda *args: pytest.fail("made again"))
    assert load_snapshot(settings, build_archive(), version) == first
    assert list(tmp_path.iterdir()) == made
    changed = Archive(build_archive().data + b" ", "other")
    assert snapshot_key(settings, changed, version) not in first.name


def test_a_missing_node_says_how_to_get_the_snapshot_made(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SnapshotFailed, match="Install Node"):
        load_snapshot(Settings(cache_dir=tmp_path), build_archive(), "0")


def test_paths_outside_the_asset_folders_are_not_served(client):
    for path in (
        "/static/../server/app.py",
        "/static/%2e%2e/server/app.py",
        "/vendor/pyodide-0/pyodide.mjs",
        "/web/play.html",
        "/static/",
    ):
        assert client.get(path).status_code == 404, path


def test_wrong_methods_are_refused(client):
    assert client.post("/healthz").status_code == 405
    assert client.delete("/play").status_code == 405
    assert client.head("/play").status_code == 200


def test_missing_browser_packages_say_how_to_install_them(tmp_path):
    (tmp_path / "static").mkdir()
    with pytest.raises(MissingVendor, match="run `npm ci`"):
        create_app(Settings(web_dir=tmp_path))


def test_old_snapshots_are_pruned_to_the_newest_few(tmp_path):
    from server.snapshot import KEEP, _prune

    for age in range(KEEP + 3):
        old = tmp_path / f"snapshot-{age}.bin"
        old.write_bytes(b"x")
        os.utime(old, (1000 + age, 1000 + age))
    _prune(tmp_path)
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == sorted(f"snapshot-{age}.bin" for age in range(3, KEEP + 3))
