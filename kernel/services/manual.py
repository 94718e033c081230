"""Manual: the system's documentation as a capability (backs `man` and `apropos`).

The corpus is handed to the kernel at boot, as capOS boot-packages its
ManualCorpus: hand-written pages for commands, concepts and demos, and a
page per interface generated from the schema and its doc comments.
"""

from __future__ import annotations

import difflib

from kernel.capobject import CallContext, KernelService
from kernel.errors import CapError

MAX_WORD = 64


class Manual(KernelService):
    interface_name = "Manual"

    def __init__(self, pages: list[dict]) -> None:
        super().__init__()
        self._pages = {page["topic"].lower(): page for page in pages}

    def page(self, ctx: CallContext, params: dict) -> dict:
        topic = params["topic"].strip().lower()
        found = self._pages.get(topic)
        if found is not None:
            return {"result": {"page": found}}
        close = difflib.get_close_matches(topic, list(self._pages), n=5, cutoff=0.6)
        return {"result": {"notFound": [self._pages[t]["topic"] for t in close]}}

    def apropos(self, ctx: CallContext, params: dict) -> dict:
        word = params["word"].strip().lower()
        if not word or len(word) > MAX_WORD:
            raise CapError.invalid_argument(f"apropos needs a word of 1-{MAX_WORD} characters")
        hits = [
            p
            for p in self._pages.values()
            if word in p["topic"].lower() or word in p["summary"].lower()
        ]
        return {"pages": [_heading(p) for p in sorted(hits, key=_order)]}

    def topics(self, ctx: CallContext, params: dict) -> dict:
        return {"pages": [_heading(p) for p in sorted(self._pages.values(), key=_order)]}


def _heading(page: dict) -> dict:
    return {**page, "body": ""}


def _order(page: dict) -> tuple[str, str]:
    return page["section"], page["topic"].lower()
