"""Boot manifests: authoring, validation messages, overlays, encoding."""

from __future__ import annotations

import json

import pytest

from kernel.codec import Bundle, decode
from kernel.manifest import ManifestError, build, encode_document, load_document, merge

BASE = {
    "schemaVersion": 1,
    "kernelParams": {"motd": "hi"},
    "binaries": [
        {"name": "init", "module": "kernel.programs.init"},
        {"name": "echo-server", "module": "kernel.programs.echo_server"},
    ],
    "initConfig": {
        "init": "init",
        "services": [
            {
                "name": "echo",
                "binary": "echo-server",
                "exports": [{"name": "echo", "interface": "Echo"}],
                "caps": [],
            },
        ],
    },
}


def with_services(*services: dict) -> dict:
    document = json.loads(json.dumps(BASE))
    document["initConfig"]["services"] += list(services)
    return document


def error_of(document: dict) -> str:
    with pytest.raises(ManifestError) as caught:
        encode_document(document)
    return str(caught.value)


def test_default_manifest_starts_a_shell_in_its_own_session_with_bundles():
    manifest = decode(Bundle.default().struct("SystemManifest"), build())
    assert manifest["initConfig"]["init"] == "init"
    shell = [s for s in manifest["initConfig"]["services"] if s["binary"] == "shell"]
    assert len(shell) == 1 and shell[0]["freshSession"]
    assert {c["name"] for c in shell[0]["caps"]} == {
        "terminal",
        "sessionManager",
        "authorityBroker",
        "agents",  # outside agents reach the session through its shell
    }
    offers = {o["cap"]["name"]: o["profiles"] for o in manifest["initConfig"]["bundles"]}
    # as in capOS: an anonymous shell holds minimal authority, guest the demo bundle
    anonymous = {name for name, profiles in offers.items() if "anonymous" in profiles}
    assert anonymous == {"systemInfo", "manual"}
    assert offers["launcher"] == ["guest", "operator"]
    assert offers["chat"] == ["operator"]


def test_unknown_top_level_field_names_the_field_and_the_accepted_ones():
    assert error_of({**BASE, "kernelparams": {}}) == (
        "unknown field `kernelparams` at `$`, expected one of: "
        "schemaVersion, binaries, initConfig, kernelParams"
    )


def test_unknown_nested_field_names_its_path():
    doc = with_services({"name": "x", "binary": "echo-server", "cap": []})
    assert "unknown field `cap` at `$.initConfig.services[1]`" in error_of(doc)


def test_wrong_types_and_bad_enums_are_named():
    assert "$.schemaVersion: expected an integer" in error_of({**BASE, "schemaVersion": "1"})
    doc = with_services(
        {
            "name": "x",
            "binary": "echo-server",
            "caps": [{"name": "c", "source": {"kernel": "keyboard"}}],
        }
    )
    assert "'keyboard' is not one of: console, timer" in error_of(doc)


def test_import_of_a_later_or_missing_export_is_refused_with_the_fix():
    doc = with_services(
        {
            "name": "x",
            "binary": "echo-server",
            "caps": [{"name": "e", "source": {"import": {"service": "echo", "export": "nope"}}}],
        }
    )
    message = error_of(doc)
    assert "imports echo.nope, which no earlier service exports" in message
    assert "list exporters first" in message


def test_semantic_errors_name_what_is_missing():
    assert "'ghost' is not a binary" in error_of(
        {**BASE, "initConfig": {"init": "ghost", "services": []}}
    )
    assert "service 'echo' appears twice" in error_of(
        with_services(BASE["initConfig"]["services"][0])
    )
    doc = with_services(
        {"name": "x", "binary": "echo-server", "exports": [{"name": "e", "interface": "Nonesuch"}]}
    )
    assert "no interface 'Nonesuch' in the schema" in error_of(doc)
    assert "expected 1, got 2" in error_of({**BASE, "schemaVersion": 2})


def test_overlay_merges_tables_and_replaces_arrays(tmp_path):
    base = tmp_path / "system.toml"
    base.write_text(
        'schemaVersion = 1\n[kernelParams]\nmotd = "base"\nhostname = "a"\n'
        '[[binaries]]\nname = "init"\nmodule = "kernel.programs.init"\n'
        '[initConfig]\ninit = "init"\n'
    )
    overlay = tmp_path / "local.toml"
    overlay.write_text('[kernelParams]\nmotd = "local"\n')
    manifest = decode(Bundle.default().struct("SystemManifest"), build(base, overlay))
    assert manifest["kernelParams"] == {"motd": "local", "hostname": "a"}
    assert merge({"a": [1, 2], "t": {"x": 1}}, {"a": [3], "t": {"y": 2}}) == {
        "a": [3],
        "t": {"x": 1, "y": 2},
    }


def test_json_manifests_work_too_and_syntax_errors_name_the_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(BASE))
    assert build(path, None)
    broken = tmp_path / "broken.toml"
    broken.write_text("schemaVersion = = 1")
    with pytest.raises(ManifestError, match=r"broken\.toml"):
        load_document(broken)
    with pytest.raises(ManifestError, match="cannot read"):
        load_document(tmp_path / "missing.toml")
