"""The committed schema bundle and the `schema build` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernel.codec import Bundle
from server import schemabuild


def test_committed_bundle_matches_the_capnp_sources() -> None:
    """Fails when someone edits schema/*.capnp without `capos-playground schema build`."""
    compiled = schemabuild.dump_bundle(schemabuild.compile_bundle(schemabuild.source_paths()))
    committed = schemabuild.BUNDLE_PATH.read_text(encoding="utf-8")
    assert committed == compiled, "schema/bundle.json is stale: run `capos-playground schema build`"


def test_compile_is_deterministic() -> None:
    paths = schemabuild.source_paths()
    assert schemabuild.dump_bundle(schemabuild.compile_bundle(paths)) == schemabuild.dump_bundle(
        schemabuild.compile_bundle(list(reversed(paths)))
    )


def test_build_check_passes_on_a_fresh_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "bundle.json"
    monkeypatch.setattr(schemabuild, "BUNDLE_PATH", target)
    monkeypatch.setattr(schemabuild, "REPO_ROOT", tmp_path)
    assert schemabuild.build_command(check=False) == 0
    assert "bundle.json" in capsys.readouterr().out
    assert schemabuild.build_command(check=True) == 0
    Bundle.load(target)  # loads


def test_build_check_fails_on_a_stale_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "bundle.json"
    stale = json.loads(schemabuild.BUNDLE_PATH.read_text(encoding="utf-8"))
    stale["nodes"].popitem()
    target.write_text(schemabuild.dump_bundle(stale), encoding="utf-8")
    monkeypatch.setattr(schemabuild, "BUNDLE_PATH", target)
    assert schemabuild.build_command(check=True) == 1
    assert (
        "schema/bundle.json is stale: run `capos-playground schema build`"
        in capsys.readouterr().err
    )


def test_bundle_is_strict_json_with_hex_ids() -> None:
    raw = json.loads(schemabuild.BUNDLE_PATH.read_text(encoding="utf-8"))
    assert raw["version"] == 1
    assert all(k.startswith("0x") and len(k) == 18 for k in raw["nodes"])
    json.dumps(raw, allow_nan=False)


def test_every_struct_type_and_default_is_loaded(codec_schemas: Any) -> None:
    bundle: Bundle = codec_schemas.bundle
    defaults = bundle.struct("Defaults")
    assert defaults.field("d").default == b"bar"
    assert defaults.field("s").default == {"a": 7, "b": "seven", "c": -5}
    assert defaults.field("e").default == 2  # the ordinal, XORed on the wire
    assert bundle.enum("Color").enumerants == ["red", "green", "blue"]
    outer = bundle.struct("Outer")
    assert outer.field("defaulted").default == {"n": 3, "e": "green", "d": {"z": 1.5}}
    assert bundle.struct("Outer.Nested.Deepest").fields[0].type == "float32"


def test_unsupported_bundle_version_is_rejected() -> None:
    with pytest.raises(ValueError, match="version"):
        Bundle.from_dict({"version": 99, "nodes": {}})
