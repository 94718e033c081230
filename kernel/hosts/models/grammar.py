"""GBNF grammars (llama.cpp's constrained sampling) from the tool schemas' JSON Schema.

Only the subset the shell derives from capnp structs is needed, and each
construct is turned into a grammar whose every sentence is valid for the
schema: objects write all their properties in schema order (optional ones
too, which is still valid), `oneOf` is a choice, integers get no more digits
than always fit their range (uint32 takes up to 9, so never overflows),
strings are JSON strings without control characters. Anything else is
refused, so a schema this cannot express fails loudly instead of letting
invalid calls through.
"""

from __future__ import annotations

import json
from typing import Any

BASE = r"""
ws ::= [ ]?
char ::= [^"\\\x00-\x1f] | "\\" ["\\/bfnrt]
string ::= "\"" char* "\""
number ::= "-"? [0-9]{1,9} ("." [0-9]{1,6})?
boolean ::= "true" | "false"
null ::= "null"
"""


class UnsupportedSchema(ValueError):
    """A JSON Schema construct this grammar builder does not express."""


def gbnf(schema: dict) -> str:
    """A GBNF grammar whose root matches exactly the documents the builder allows."""
    rules: dict[str, str] = {}
    root = _rule(schema, "root", rules)
    if root != "root":
        rules["root"] = root
    body = "\n".join(f"{name} ::= {rhs}" for name, rhs in rules.items())
    return body + BASE


def _literal(value: str) -> str:
    return json.dumps(json.dumps(value))  # a JSON string, quoted as a GBNF literal


def _rule(schema: Any, name: str, rules: dict[str, str]) -> str:
    """The rule (or inline expression) for `schema`; named rules go into `rules`."""
    if not isinstance(schema, dict):
        raise UnsupportedSchema(f"{name}: a schema must be an object")
    for key in ("oneOf", "anyOf"):
        if key in schema:
            choices = [_rule(s, f"{name}-{i}", rules) for i, s in enumerate(schema[key])]
            rules[name] = " | ".join(choices)
            return name
    if "const" in schema:
        return _literal(schema["const"])
    if "enum" in schema:
        return "(" + " | ".join(_literal(v) for v in schema["enum"]) + ")"
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        parts = []
        for index, (key, sub) in enumerate(properties.items()):
            value = _rule(sub, f"{name}-{_safe(key)}", rules)
            sep = '"," ws ' if index else ""
            parts.append(f'{sep}{_literal(key)} ws ":" ws {value}')
        rules[name] = '"{" ws ' + " ws ".join(parts) + (" ws " if parts else "") + '"}"'
        return name
    if kind == "array":
        item = _rule(schema.get("items", {}), f"{name}-item", rules)
        rules[name] = f'"[" ws ({item} ("," ws {item}){{0,15}})? ws "]"'
        return name
    if kind == "integer":
        return _integer(schema)
    if kind in ("string", "number", "boolean", "null"):
        return kind
    raise UnsupportedSchema(f"{name}: type {kind!r} is not supported")


def _integer(schema: dict) -> str:
    low = schema.get("minimum", -(10**9) + 1)
    high = schema.get("maximum", 10**9 - 1)
    if low > 0 or high < 0:
        raise UnsupportedSchema(f"integer range {low}..{high} must include 0")
    digits = max(1, min(len(str(high)) - 1, 18))
    if high < 9:
        digits_rule = f"[0-{high}]" if high >= 0 else "[0]"
    else:
        digits_rule = f'([1-9] [0-9]{{0,{digits - 1}}} | "0")'
    if low >= 0:
        return digits_rule
    neg_digits = max(1, min(len(str(-low)) - 1, 18))
    negative = f'"-" [1-9] [0-9]{{0,{neg_digits - 1}}}' if -low >= 9 else f'"-" [1-{-low}]'
    return f"({digits_rule} | {negative})"


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in key) or "x"
