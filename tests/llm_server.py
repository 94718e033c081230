"""A small OpenAI-compatible chat-completions server that answers from a script.

Remote providers cannot be reached from here, so provider tests run the real
HTTP client against this: each POST takes the next scripted answer (server-
sent events, as the real API streams them) and keeps the request body for
the test to read. It listens on 127.0.0.1 only, and an endless answer stops
by itself after a bounded number of chunks or when the client hangs up.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENDLESS_LIMIT = 20_000  # chunks an endless answer sends at most


def text(*parts: str) -> list[bytes]:
    """Chunks streaming `parts` as content deltas, then [DONE]."""
    chunks = [_chunk({"content": p}) for p in parts]
    return [*chunks, _chunk({}, finish="stop"), b"data: [DONE]\n\n"]


def tool_call(name: str, arguments: str, call_id: str = "call_1") -> list[bytes]:
    """Chunks streaming one tool call, its arguments split in two as real servers do."""
    half = len(arguments) // 2
    first = {"index": 0, "id": call_id, "type": "function", "function": {"name": name}}
    return [
        _chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]}),
        _chunk({}, finish="tool_calls"),
        b"data: [DONE]\n\n",
    ]


ENDLESS = "endless"  # a script entry: content deltas that never end


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    body = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


@dataclass
class ScriptedLLM:
    script: deque = field(default_factory=deque)
    requests: list[dict] = field(default_factory=list)
    hung_up: threading.Event = field(default_factory=threading.Event)  # a client left mid-stream
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}/v1/chat/completions"

    def __enter__(self) -> ScriptedLLM:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                owner.requests.append(
                    {
                        "body": json.loads(self.rfile.read(length)),
                        "authorization": self.headers.get("Authorization"),
                    }
                )
                answer = owner.script.popleft() if owner.script else text("(script ended)")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                chunks = (_chunk({"content": "more " * 20}) for _ in range(ENDLESS_LIMIT))
                try:
                    for chunk in chunks if answer == ENDLESS else answer:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if answer == ENDLESS:
                            time.sleep(0.001)
                except (BrokenPipeError, ConnectionResetError):
                    owner.hung_up.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
