"""Which model a native host attaches: the operator's choice, made once at start.

Default: the built-in local model when it is installed (`make llm`). An
OpenAI-compatible endpoint replaces it with `--llm-url`; its key is read from
the environment here and nowhere else. `--no-llm` attaches none (the shell's
`agent` then says no model is held).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel.hosts.models.runner import Provider

if TYPE_CHECKING:  # the guest, which boots with these settings, never parses arguments
    import argparse


@dataclass(frozen=True)
class ModelSettings:
    url: str | None = None  # an OpenAI-compatible chat-completions URL
    model: str = "default"  # the model name sent to that endpoint
    disabled: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelSettings:
        return cls(url=args.llm_url, model=args.llm_model, disabled=args.no_llm)


def add_model_options(command: argparse.ArgumentParser) -> None:
    from kernel.hosts.models.openai import KEY_ENV

    command.add_argument(
        "--llm-url",
        metavar="URL",
        help="an OpenAI-compatible chat-completions URL for agent mode instead of the "
        f"built-in local model (its key, if any, from ${KEY_ENV})",
    )
    command.add_argument("--llm-model", default="default", help="the model name to ask it for")
    command.add_argument("--no-llm", action="store_true", help="attach no language model")


def open_provider(settings: ModelSettings) -> Provider | None:
    """The provider to attach, or None (with a line on stderr saying why)."""
    if settings.disabled:
        return None
    if settings.url:
        from kernel.hosts.models.openai import KEY_ENV, EndpointSettings, OpenAICompatible

        key = os.environ.get(KEY_ENV, "")
        return OpenAICompatible(EndpointSettings(settings.url, settings.model, key))
    from kernel.hosts.models.local import LocalModel, ModelMissing

    try:
        return LocalModel()
    except ModelMissing as exc:
        print(f"capos-playground: agent mode has no model: {exc}", file=sys.stderr)
        return None
