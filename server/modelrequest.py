"""A LanguageModel.generate request from a browser tab, checked field by field.

Inside a capOS system the codec checks a request against the schema before
the host sees it; a tab's kernel runs in the visitor's browser, so what its
socket sends is untrusted and is checked again here, against the same
schema (schema/capos.capnp: ChatMessage, ToolDescriptor, GenerateParams) and
the same limits the kernel applies (kernel/services/model.py). A request
that passes is exactly the dict a provider takes.
"""

from __future__ import annotations

from kernel.services.model import MAX_MESSAGES, MAX_TOKENS, MAX_TOOLS
from server.jsonbody import is_int

ROLES = ("system", "user", "assistant", "tool")
MAX_TEXT = 16 * 1024  # characters of one text field
MAX_CALLS = 8  # tool calls one assistant message carries


class BadRequest(ValueError):
    """The request does not fit the schema or the limits; the message says where."""


def check_request(value: object) -> dict:
    """The request, when it is a valid generate request; raises BadRequest otherwise."""
    request = _fields(value, "request", {"messages": list, "tools": list, "params": dict})
    messages, tools = request["messages"], request["tools"]
    if not 1 <= len(messages) <= MAX_MESSAGES or len(tools) > MAX_TOOLS:
        raise BadRequest(f"a request takes 1..{MAX_MESSAGES} messages and {MAX_TOOLS} tools")
    return {
        "messages": [_message(m, f"messages[{i}]") for i, m in enumerate(messages)],
        "tools": [_tool(t, f"tools[{i}]") for i, t in enumerate(tools)],
        "params": _params(request["params"]),
    }


def _message(value: object, where: str) -> dict:
    message = _fields(
        value, where, {"role": str, "content": str, "toolCalls": list, "toolCallId": str}
    )
    if message["role"] not in ROLES:
        raise BadRequest(f"{where}.role must be one of {', '.join(ROLES)}")
    if len(message["toolCalls"]) > MAX_CALLS:
        raise BadRequest(f"{where}.toolCalls may hold at most {MAX_CALLS} calls")
    message["toolCalls"] = [
        _fields(c, f"{where}.toolCalls[{i}]", {"id": str, "name": str, "argumentsJson": str})
        for i, c in enumerate(message["toolCalls"])
    ]
    return message


def _tool(value: object, where: str) -> dict:
    return _fields(value, where, {"name": str, "description": str, "parametersJson": str})


def _params(value: object) -> dict:
    params = _fields(value, "params", {"maxTokens": int, "temperature": float})
    if not 1 <= params["maxTokens"] <= MAX_TOKENS or not 0 <= params["temperature"] <= 2:
        raise BadRequest(f"params: maxTokens must be 1..{MAX_TOKENS} and temperature 0..2")
    return params


def _fields(value: object, where: str, shape: dict[str, type]) -> dict:
    """A JSON object with exactly `shape`'s fields, each of its type (texts bounded)."""
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object")
    if set(value) != set(shape):
        missing, unknown = sorted(set(shape) - set(value)), sorted(set(value) - set(shape))
        wrong = [f"missing {missing}"] * bool(missing) + [f"unknown {unknown}"] * bool(unknown)
        raise BadRequest(f"{where} takes exactly the fields {sorted(shape)}: {', '.join(wrong)}")
    out = {}
    for name, kind in shape.items():
        field = value[name]
        if kind is float and is_int(field):
            field = float(field)  # JSON writes 0.0 as 0
        if not isinstance(field, kind) or isinstance(field, bool):
            raise BadRequest(f"{where}.{name} must be a {_TYPE_NAMES[kind]}")
        if isinstance(field, str) and len(field) > MAX_TEXT:
            raise BadRequest(f"{where}.{name} may be at most {MAX_TEXT} characters")
        out[name] = field
    return out


_TYPE_NAMES = {str: "string", list: "list", dict: "JSON object", int: "integer", float: "number"}
