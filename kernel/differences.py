"""Where the playground departs from the capOS book, each with its reason: one list.

The manual's `differences` page is generated from it (kernel.manual), and the
tour panel marks the commands it names as playground extensions (server.tours),
so a departure is written down once. When the playground is made faithful on a
point, its entry goes; when it departs anew, the entry comes with the change.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    title: str
    book: str  # what the capOS book says
    playground: str  # what the playground does instead
    why: str
    # Shell words the book does not have: `help` and the tours mark them as playground
    # extensions ("calls" stands for a typed call, NAME.method(...)).
    commands: tuple[str, ...] = ()


DIFFERENCES: tuple[Difference, ...] = (
    Difference(
        title="The guest bundle holds the demo services",
        book=(
            "A shell starts anonymous with its terminal and minimal authority; `guest` "
            "selects a manifest-gated bundle with no service endpoints; login brings the "
            "operator bundle with the service endpoints (chat, adventure)."
        ),
        playground=(
            "The anonymous shell holds its terminal, its session, SystemInfo and the "
            "manual. The guest bundle holds a launcher, the public demo endpoints (echo, "
            "counter, paperclips, model), a timer, a logger, entropy and a whole-system "
            "monitor; chat and the adventure stay in the operator bundle. Sessions made "
            "for outside agents (MCP create_session) are logged in as guest before they "
            "are handed over."
        ),
        why=(
            "`guest` is a visitor's step into the demos without an account; holding the "
            "counter, paperclips and the monitor back until `setup` would put a password "
            "step before every tour. The book does not say what its guest bundle holds "
            "beyond that it has no service endpoints."
        ),
    ),
    Difference(
        title="Shell commands the book does not show",
        book=(
            "The book's native shell is a schema-aware capability REPL whose commands "
            "compile to typed calls, but the only commands it shows are run, spawn, wait, "
            "login, setup, guest, man, apropos, help and exit (and sessions end by logout)."
        ),
        playground=(
            "Commands to look at and use what the shell holds: caps, methods, typed calls "
            "(NAME.method(...)), let, release, ps, whoami, the monitoring views "
            "(top, log, trace, graph), history, clear and agent mode. `help` marks them "
            "[ext]."
        ),
        why=(
            "Each makes a part of the model visible from the prompt; their syntax is the "
            "playground's own, since the book publishes none."
        ),
        commands=(
            "caps",
            "methods",
            "calls",
            "let",
            "release",
            "ps",
            "whoami",
            "top",
            "log",
            "trace",
            "graph",
            "history",
            "clear",
            "agent",
        ),
    ),
    Difference(
        title="kill",
        book="The book names spawn, run and wait as the shell's process commands.",
        playground="`kill %N` ends a background job through its ProcessHandle.",
        why="The revocation tour needs a server to die on request to show its caps go with it.",
        commands=("kill",),
    ),
    Difference(
        title="new Interface grants",
        book="Grants pass a held cap (`@name`) or an endpoint's client facet (`client @name`).",
        playground=(
            "`name: new Interface` makes an endpoint the child serves and keeps its client "
            "in the shell under the grant's name."
        ),
        why=(
            "So a visitor can start a server of their own and call it, without editing the "
            "boot manifest."
        ),
        commands=("new",),
    ),
    Difference(
        title="move grants",
        book=(
            "Caps travel on CALL and RETURN as copy or move; the book shows no shell syntax "
            "for choosing."
        ),
        playground="`move @name` in a grant or call gives the cap away; the shell forgets it.",
        why="The move-or-copy tour shows the difference from the prompt.",
        commands=("move",),
    ),
    Difference(
        title="Session expiry, and what a session's end reaches",
        book=(
            "Broker-issued bundle caps are bound to a session whose liveness makes stale "
            "sessions fail closed; sessions end by logout, terminal close or revocation, "
            "and a manifest may give operator sessions a lifetime."
        ),
        playground=(
            "Logout ends the session's lease: every bundle cap issued under it, in the "
            "shell or copied to its children (spawn grants, IPC transfers), then fails with "
            "disconnected. Nothing expires by time, closing a terminal does not end the "
            "session, and caps a child got by calling a bundle cap (a monitor.subtree "
            "facet, a ProcessHandle) are not bound to the lease."
        ),
        why=(
            "Logout is what a visitor does and sees; a lifetime, terminal-close ending and "
            "leases on derived caps are not built yet."
        ),
    ),
    Difference(
        title="system.local.toml instead of CUE",
        book=(
            "The boot manifest is written in CUE (`system.cue`, overlaid by a gitignored "
            "`system.local.cue`) and compiled by mkmanifest with a pinned CUE compiler."
        ),
        playground=(
            "kernel/manifests/default.toml, overlaid by ./system.local.toml, with the same "
            "fields as schema/manifest.capnp's SystemManifest."
        ),
        why=(
            "The kernel is standard-library Python that also runs in a browser tab; TOML "
            "is read there by the standard library, and no CUE compiler runs in a tab."
        ),
    ),
    Difference(
        title="Pyodide instead of a wasm32 rebuild",
        book=(
            "The browser proposal rebuilds capOS's own userspace for the browser: one Web "
            "Worker per process, the ring as the only interface to port."
        ),
        playground=(
            "The kernel and every process are the same Python code run by Pyodide, one "
            "worker per process, the ring in a SharedArrayBuffer."
        ),
        why=(
            "The capOS sources are not available to build; the ring, cap table and "
            "services here follow the book, written once for the tab, QEMU and tests."
        ),
    ),
    Difference(
        title="The adventure is an original quest",
        book=(
            "The Aurelian Frontier is a Roman-frontier adventure with wards, combat, spells, "
            "NPC actors and a custody mission, its content generated from CUE sources; the "
            "client gets only StdIO, Adventure and Chat, and `resume` returns to the "
            "session's expedition."
        ),
        playground=(
            "The same name and shape (a resident server keyed by the caller's session, a "
            "client granted StdIO, Adventure and Chat, `resume`), with a seven-room quest "
            "written for the playground: no combat, spells or NPCs."
        ),
        why=(
            "The book describes the game, but its mission content lives in the capOS "
            "sources, which are not available here."
        ),
    ),
)


def extension_commands() -> frozenset[str]:
    """Every shell word a tour should mark as a playground extension."""
    return frozenset(word for entry in DIFFERENCES for word in entry.commands)


def manual_page() -> dict:
    """The `differences` manual page (section concepts), generated from DIFFERENCES."""
    lines = [
        "Every place this playground knowingly departs from the capOS book,",
        "and why. Entries marked [extension] are shell words the book does not",
        "have; tours mark them too.",
    ]
    for number, entry in enumerate(DIFFERENCES, 1):
        mark = "  [extension]" if entry.commands else ""
        lines += ["", f"{number}. {entry.title}{mark}"]
        for label, text in (("book", entry.book), ("here", entry.playground), ("why", entry.why)):
            lines += textwrap.wrap(
                text, 72, initial_indent=f"    {label + ':':<6}", subsequent_indent=" " * 10
            )
    lines += ["", "SEE ALSO", "    capabilities, sessions, login"]
    return {
        "topic": "differences",
        "section": "concepts",
        "summary": "where this playground departs from the capOS book, and why",
        "body": "\n".join(lines) + "\n",
    }
