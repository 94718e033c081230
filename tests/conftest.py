"""Shared fixtures: schema bundles and their pycapnp modules, the server and Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE_CAPNP = REPO / "tests" / "schema" / "conformance.capnp"


@pytest.fixture(scope="session")
def codec_schemas() -> SimpleNamespace:
    """Bundles (JSON and loaded) for schema/*.capnp and the test-only conformance schema,
    with the pycapnp modules that serve as the conformance oracle."""
    import capnp

    from kernel.codec import Bundle
    from server.schemabuild import compile_bundle, source_paths

    sources = source_paths()
    paths = [*sources, CONFORMANCE_CAPNP]
    raw = compile_bundle(paths)
    parser = capnp.SchemaParser()
    modules = {p.name: parser.load(str(p), imports=[str(p.parent)]) for p in paths}
    return SimpleNamespace(
        raw=raw,
        bundle=Bundle.from_dict(raw),
        modules=modules,
        sources=sources,
    )


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The real server on a free loopback port (bench/tab.py), for a module's browser tests."""
    from bench.liveserver import ONE_ADDRESS_RIG
    from bench.tab import serving
    from server.settings import Settings

    with serving(Settings(admission=ONE_ADDRESS_RIG)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright: one per test module."""
    from playwright.sync_api import sync_playwright

    from bench.tab import CHROMIUM, CHROMIUM_FLAGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()
