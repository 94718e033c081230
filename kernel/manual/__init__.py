"""The manual corpus: hand-written pages plus one generated page per interface.

The host builds it once at boot and hands it to the kernel's Manual cap,
as capOS boot-packages a compiled ManualCorpus. A hand-written page is a
Markdown file under `pages/<section>/<topic>.md` whose first line is its
one-line summary; interface pages come from the schema bundle and the
.capnp doc comments; `differences` comes from kernel.differences.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from kernel.codec import Bundle, InterfaceType, StructType
from kernel.codec.bundle import capnp_type_name
from kernel.differences import manual_page as differences_page
from kernel.shipped import shipped

if TYPE_CHECKING:
    from kernel.shipped import File


def build_corpus(bundle: Bundle | None = None) -> list[dict]:
    bundle = bundle or Bundle.default()
    pages = [
        _read(section.name, page)
        for section in _listing(shipped("kernel/manual/pages/"))
        if section.is_dir()
        for page in _listing(section)
        if page.name.endswith(".md")
    ]
    pages.append(differences_page())
    pages += [interface_page(i) for i in sorted(bundle.interfaces, key=lambda i: i.name)]
    return pages


def _listing(directory: File) -> list[File]:
    entries: list[File] = list(directory.iterdir())
    return sorted(entries, key=lambda entry: entry.name)


def _read(section: str, path: File) -> dict:
    summary, _, body = path.read_text(encoding="utf-8").partition("\n")
    return {
        "topic": path.name.removesuffix(".md"),
        "section": section,
        "summary": summary.strip(),
        "body": body.strip("\n") + "\n",
    }


def signature(struct: StructType) -> str:
    """`(name :Text, grants :List(CapGrant))`, as the .capnp file writes it."""
    return (
        "("
        + ", ".join(
            f"{f.name} :{capnp_type_name(f.type) if f.group is None else 'group'}"
            for f in struct.fields
        )
        + ")"
    )


def interface_page(interface: InterfaceType) -> dict:
    lines = ["SYNOPSIS", f"    interface {interface.name} {{"]
    for method in interface.methods:
        lines.append(
            f"      {method.name} @{method.ordinal} {signature(method.params)}"
            f" -> {signature(method.results)};"
        )
    lines.append("    }")
    if interface.methods:
        lines += ["", "METHODS"]
        for method in interface.methods:
            lines.append(f"    {method.name}  {method.doc or '(no description)'}")
    if interface.doc:
        lines += ["", "DESCRIPTION", *_wrap(interface.doc)]
    lines += ["", f"Interface id: 0x{interface.id:016x}", "See also: caps, let, capabilities"]
    return {
        "topic": interface.name,
        "section": "interfaces",
        "summary": _first_sentence(interface.doc) or f"the {interface.name} interface",
        "body": "\n".join(lines) + "\n",
    }


def _first_sentence(text: str) -> str:
    head, dot, _ = text.partition(". ")
    return head + ("." if dot else "")


def _wrap(text: str) -> list[str]:
    return ["    " + line for line in textwrap.wrap(text, 72)]
