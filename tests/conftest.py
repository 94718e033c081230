"""Shared fixtures: schema bundles and their pycapnp modules (compiled once per session)."""

from __future__ import annotations

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
