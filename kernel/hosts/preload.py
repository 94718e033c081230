"""What a process worker imports while it waits in the pool: the bundle and the
usual programs, so that a spawn pays only for starting its program."""

from __future__ import annotations

import importlib

from kernel.codec import Bundle

MODULES = (
    "demos.counter.client",
    "demos.paperclips.client",
    "demos.chat.client",
    "demos.adventure.client",
    "kernel.programs.ping",
)


def warm_up() -> None:
    Bundle.default()
    for module in MODULES:
        importlib.import_module(module)
