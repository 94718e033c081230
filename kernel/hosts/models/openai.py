"""Any OpenAI-compatible chat-completions endpoint, streamed (server-sent events).

The operator names the endpoint (`--llm-url`); the key comes from the
environment and goes only to that endpoint, never to a browser or a capOS
process. What the endpoint sends is untrusted: the stream is bounded in
bytes, time and tool calls, and names or arguments are passed on as written
for the runner to check.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_STREAM_BYTES = 1024 * 1024
MAX_LINE = 64 * 1024  # one server-sent event line
MAX_TOOL_CALLS = 16
MAX_ARGUMENTS = 4096  # bytes of one call's arguments
MAX_ID = 64
DELTA_CHUNK = 2048  # text deltas are passed on in pieces of at most this
READ_TIMEOUT_S = 60.0
STREAM_DEADLINE_S = 180.0
KEY_ENV = "CAPOS_LLM_API_KEY"


@dataclass(frozen=True)
class EndpointSettings:
    url: str  # the chat-completions URL, e.g. http://127.0.0.1:8080/v1/chat/completions
    model: str = "default"
    api_key: str = ""  # from the environment (KEY_ENV); empty: no Authorization header
    deadline_s: float = STREAM_DEADLINE_S


def tool_name_out(name: str) -> str:
    """OpenAI function names allow [A-Za-z0-9_-]: `counter.increment` travels as
    `counter__increment`."""
    return name.replace(".", "__")


def check_url(url: str) -> None:
    """Refuse an --llm-url that is not an http(s) URL (ValueError saying so)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--llm-url must be an http(s) URL, not {url!r}")


class OpenAICompatible:
    def __init__(self, settings: EndpointSettings) -> None:
        check_url(settings.url)
        self.settings = settings

    def info(self) -> dict:
        """What anyone may see of it: the host and port, never credentials in the URL
        (this reaches tabs through GET /api/model and every VM's kernel command line)."""
        url = urlsplit(self.settings.url)
        host = f"{url.hostname}:{url.port}" if url.port else str(url.hostname)
        return {
            "modelId": self.settings.model,
            "provider": f"OpenAI-compatible endpoint at {host}",
            "local": False,
            "contextTokens": 0,
            "note": "a remote model the operator configured",
        }

    def generate(self, request: dict, cancelled: Callable[[], bool]) -> Iterator[dict]:
        names = {tool_name_out(t["name"]): t["name"] for t in request["tools"]}
        body = {
            "model": self.settings.model,
            "messages": [_message(m) for m in request["messages"]],
            "stream": True,
            "max_tokens": request["params"]["maxTokens"],
            "temperature": request["params"]["temperature"],
        }
        if request["tools"]:
            body["tools"] = [_tool(t) for t in request["tools"]]
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        http_request = urllib.request.Request(
            self.settings.url, json.dumps(body).encode(), headers, method="POST"
        )
        try:
            response = urllib.request.urlopen(http_request, timeout=READ_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode(errors="replace").strip()
            yield {"error": f"the model endpoint answered HTTP {exc.code}: {detail}"}
            return
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            yield {"error": f"cannot reach the model endpoint {self.settings.url}: {reason}"}
            return
        with response:
            yield from _Stream(names, self.settings.deadline_s).events(response, cancelled)


class _Stream:
    """Reassembles one streamed completion into CompletionEvents."""

    def __init__(self, names: dict[str, str], deadline_s: float) -> None:
        self.names = names
        self.deadline = time.monotonic() + deadline_s
        self.calls: dict[int, dict] = {}  # by the endpoint's index
        self.received = 0

    def events(self, response, cancelled: Callable[[], bool]) -> Iterator[dict]:
        finish = "stop"
        while raw := response.readline(MAX_LINE + 1):
            self.received += len(raw)
            if cancelled():
                return
            if len(raw) > MAX_LINE:
                yield {"error": f"the model endpoint sent a line over {MAX_LINE} bytes"}
                return
            if self.received > MAX_STREAM_BYTES or time.monotonic() > self.deadline:
                yield {"error": "the model endpoint's answer did not end in time; it was cut off"}
                return
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue  # comments, event names, keep-alives
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            try:
                chunk = json.loads(data)
                choice = chunk["choices"][0] if chunk.get("choices") else {}
            except (ValueError, TypeError, KeyError, AttributeError):
                yield {"error": "the model endpoint sent a chunk that is not valid JSON"}
                return
            if isinstance(chunk.get("usage"), dict):
                yield {"usage": _usage(chunk["usage"])}
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(text, str) and text:
                for start in range(0, len(text), DELTA_CHUNK):
                    yield {"textDelta": text[start : start + DELTA_CHUNK]}
            problem = self._tool_deltas(
                delta.get("tool_calls") if isinstance(delta, dict) else None
            )
            if problem:
                yield {"error": problem}
                return
            if isinstance(choice.get("finish_reason"), str):
                finish = choice["finish_reason"][:32]
        else:
            if not self.calls and finish == "stop" and self.received == 0:
                yield {"error": "the model endpoint closed the stream without an answer"}
                return
        for index in sorted(self.calls):
            call = self.calls[index]
            yield {
                "toolCall": {
                    "id": call["id"] or f"call_{index + 1}",
                    "name": self.names.get(call["name"], call["name"].replace("__", ".")),
                    "argumentsJson": call["arguments"],
                }
            }
        yield {"done": finish}

    def _tool_deltas(self, deltas: object) -> str | None:
        if not isinstance(deltas, list):
            return None
        for delta in deltas:
            if not isinstance(delta, dict):
                return "the model endpoint sent a malformed tool call"
            index = delta.get("index", len(self.calls))
            if not isinstance(index, int) or index < 0:
                return "the model endpoint sent a tool call with a bad index"
            call = self.calls.get(index)
            if call is None:
                if len(self.calls) >= MAX_TOOL_CALLS:
                    return f"the model proposed more than {MAX_TOOL_CALLS} tool calls at once"
                call = self.calls[index] = {"id": "", "name": "", "arguments": ""}
            if isinstance(delta.get("id"), str):
                call["id"] = delta["id"][:MAX_ID]
            function = delta.get("function") or {}
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    call["name"] = (call["name"] + function["name"])[:128]
                if isinstance(function.get("arguments"), str):
                    call["arguments"] += function["arguments"]
            if len(call["arguments"]) > MAX_ARGUMENTS:
                return f"a tool call's arguments ran over {MAX_ARGUMENTS} bytes"
        return None


def _message(message: dict) -> dict:
    out: dict = {"role": message["role"], "content": message["content"]}
    if message["role"] == "assistant" and message["toolCalls"]:
        out["content"] = message["content"] or None
        out["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {
                    "name": tool_name_out(call["name"]),
                    "arguments": call["argumentsJson"],
                },
            }
            for call in message["toolCalls"]
        ]
    if message["role"] == "tool":
        out["tool_call_id"] = message["toolCallId"]
    return out


def _tool(tool: dict) -> dict:
    return {
        "type": "function",
        "function": {
            "name": tool_name_out(tool["name"]),
            "description": tool["description"],
            "parameters": json.loads(tool["parametersJson"] or "{}"),
        },
    }


def _usage(usage: dict) -> dict:
    def count(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) and 0 <= value < 2**32 else 0

    return {"promptTokens": count("prompt_tokens"), "completionTokens": count("completion_tokens")}
