"""Boot manifests: authored as TOML or JSON, validated, encoded as SystemManifest.

The authored form mirrors the Cap'n Proto struct field for field, so the
schema itself is the validator: an unknown field is refused with its path
and the names that would have been accepted, a wrong type names what was
expected. On top of that come the checks the struct cannot express (every
binary named exists, imports name exports of services spawned earlier).

An overlay (by default `system.local.toml` in the working directory, as
capOS's `system.local.cue` in its repository root) merges on top: tables
merge key by key, arrays and scalars replace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel.codec import Bundle, encode
from kernel.codec.bundle import INT_RANGES, EnumType, InterfaceType, ListType, StructType
from kernel.shipped import shipped

if TYPE_CHECKING:
    from kernel.shipped import File


def default_manifest() -> File:
    """The system a kernel boots when given none (a call: see kernel/shipped.py)."""
    return shipped("kernel/manifests/default.toml")


OVERLAY_NAME = "system.local.toml"
# The default manifest, validated and encoded when a guest image is built (server/image.py):
# the guest boots from it without parsing TOML, which is slow to import and run under TCG.
BUILT_MANIFEST = "kernel/manifests/default.bin"
SCHEMA_VERSION = 1
MAX_MANIFEST_BYTES = 1024 * 1024
PROFILES = ("anonymous", "guest", "operator")


class ManifestError(Exception):
    """The manifest is wrong; the message names where and how to fix it."""


def load_document(path: File) -> dict[str, Any]:
    """Parse a TOML or JSON file (by extension) into a plain table."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path} is over {MAX_MANIFEST_BYTES} bytes")
    import tomllib  # here: a guest boots from BUILT_MANIFEST, and never needs it

    try:
        document = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: {exc}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"{path}: the top level must be a table")
    return document


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def check_against(struct: StructType, value: Any, path: str = "$") -> None:
    """Check `value` has exactly the shape of `struct`, naming the first mismatch."""
    if not isinstance(value, dict):
        raise ManifestError(f"{path}: expected a table for {struct.name}")
    names = [f.name for f in struct.fields]
    for key in value:
        if key not in struct.fields_by_name:
            raise ManifestError(
                f"unknown field `{key}` at `{path}`, expected one of: {', '.join(names)}"
            )
    union_members = [
        f.name for f in struct.fields if f.discriminant is not None and f.name in value
    ]
    if len(union_members) > 1:
        raise ManifestError(f"{path}: only one of {', '.join(union_members)} may be given")
    for key, item in value.items():
        field = struct.fields_by_name[key]
        _check_type(field.group if field.group is not None else field.type, item, f"{path}.{key}")


def _check_type(kind: Any, value: Any, path: str) -> None:
    if isinstance(kind, StructType):
        check_against(kind, value, path)
    elif isinstance(kind, ListType):
        if not isinstance(value, list):
            raise ManifestError(f"{path}: expected an array")
        for index, item in enumerate(value):
            _check_type(kind.element, item, f"{path}[{index}]")
    elif isinstance(kind, EnumType):
        if value not in kind.ordinals:
            raise ManifestError(f"{path}: {value!r} is not one of: {', '.join(kind.enumerants)}")
    elif isinstance(kind, InterfaceType) or kind in ("capability", "anyPointer"):
        raise ManifestError(f"{path}: capabilities cannot be written in a manifest")
    elif kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ManifestError(f"{path}: expected an integer in {low}..{high}")
    elif kind == "text":
        if not isinstance(value, str):
            raise ManifestError(f"{path}: expected a string")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ManifestError(f"{path}: expected true or false")
    elif kind == "void":
        if value not in (None, True, {}):
            raise ManifestError(f"{path}: a Void member takes no value (write `true`)")
    elif kind in ("float32", "float64"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ManifestError(f"{path}: expected a number")
    elif kind == "data" and not isinstance(value, str):
        raise ManifestError(f"{path}: expected data as a string")


def validate(document: dict[str, Any], bundle: Bundle | None = None) -> dict[str, Any]:
    """Structural and semantic checks; returns the document ready to encode."""
    bundle = bundle or Bundle.default()
    check_against(bundle.struct("SystemManifest"), document)
    version = document.get("schemaVersion", 0)
    if version != SCHEMA_VERSION:
        raise ManifestError(f"$.schemaVersion: expected {SCHEMA_VERSION}, got {version}")
    binaries = [b.get("name", "") for b in document.get("binaries", [])]
    _unique(binaries, "$.binaries", "binary")
    for index, binary in enumerate(document.get("binaries", [])):
        if not binary.get("name") or not binary.get("module"):
            raise ManifestError(f"$.binaries[{index}]: needs both `name` and `module`")
    init_config = document.get("initConfig", {})
    init = init_config.get("init", "")
    if init not in binaries:
        raise ManifestError(
            f"$.initConfig.init: {init!r} is not a binary (known: {', '.join(binaries) or 'none'})"
        )
    exported: dict[str, set[str]] = {}
    services = init_config.get("services", [])
    _unique([s.get("name", "") for s in services], "$.initConfig.services", "service")
    for index, service in enumerate(services):
        path = f"$.initConfig.services[{index}]"
        name = service.get("name", "")
        if not name:
            raise ManifestError(f"{path}: a service needs a `name`")
        if service.get("binary") not in binaries:
            raise ManifestError(f"{path}.binary: {service.get('binary')!r} is not a binary")
        exports = service.get("exports", [])
        export_names = [e.get("name", "") for e in exports]
        for e_index, export in enumerate(exports):
            try:
                bundle.interface(export.get("interface", ""))
            except KeyError:
                raise ManifestError(
                    f"{path}.exports[{e_index}].interface: no interface "
                    f"{export.get('interface')!r} in the schema"
                ) from None
        cap_names = [c.get("name", "") for c in service.get("caps", [])] + export_names
        _unique(cap_names, f"{path}.caps", "cap")
        for c_index, cap in enumerate(service.get("caps", [])):
            source = cap.get("source", {})
            if "import" in source:
                ref = source["import"]
                if ref.get("export") not in exported.get(ref.get("service"), set()):
                    raise ManifestError(
                        f"{path}.caps[{c_index}]: imports {ref.get('service')}."
                        f"{ref.get('export')}, which no earlier service exports "
                        "(services start in order: list exporters first)"
                    )
            elif "kernel" not in source and "terminal" not in source:
                raise ManifestError(
                    f"{path}.caps[{c_index}]: source needs `kernel`, `import` or `terminal`"
                )
        exported[name] = set(export_names)
    for index, offer in enumerate(init_config.get("bundles", [])):
        path = f"$.initConfig.bundles[{index}]"
        source = offer.get("cap", {}).get("source", {})
        if "import" in source:
            ref = source["import"]
            if ref.get("export") not in exported.get(ref.get("service"), set()):
                raise ManifestError(
                    f"{path}: offers {ref.get('service')}.{ref.get('export')}, "
                    "which no service exports"
                )
        elif "kernel" not in source:
            raise ManifestError(f"{path}.cap.source needs `kernel` or `import`")
        unknown = set(offer.get("profiles", [])) - set(PROFILES)
        if unknown or not offer.get("profiles"):
            raise ManifestError(
                f"{path}.profiles: give some of {', '.join(PROFILES)}"
                + (f" (not {', '.join(sorted(unknown))})" if unknown else "")
            )
    return document


def _unique(names: list[str], path: str, what: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ManifestError(f"{path}: {what} {name!r} appears twice")
        seen.add(name)


def build(path: File | None = None, overlay: Path | None = None) -> bytes:
    """Load, overlay, validate and encode: the bytes the kernel boots from."""
    path = path or default_manifest()
    document = load_document(path)
    if overlay is None and Path(OVERLAY_NAME).exists():
        overlay = Path(OVERLAY_NAME)
    if overlay is not None:
        document = merge(document, load_document(overlay))
    return encode_document(document)


def encode_document(document: dict[str, Any]) -> bytes:
    bundle = Bundle.default()
    return encode(bundle.struct("SystemManifest"), validate(document, bundle))
