"""Tool descriptors from capnp methods, argument checks, and grammars from their schemas."""

from __future__ import annotations

import json

import pytest

from kernel.codec import Bundle
from kernel.hosts.models.grammar import UnsupportedSchema, gbnf
from kernel.hosts.models.local import AnswerText, LocalModel, reply_schema
from kernel.programs.shell.tools import Tool, _carries_caps, arguments, json_schema
from kernel.programs.shell.values import InputError, to_params

BUNDLE = Bundle.default()


def method(interface: str, name: str):
    return BUNDLE.interface(interface).method(name)


def tool(interface: str, name: str) -> Tool:
    found = method(interface, name)
    return Tool(f"x.{name}", "x", None, found, json_schema(found.params))


def plain_methods():
    """Every method of the schema that a shell could offer as a tool."""
    for interface in BUNDLE.interfaces:
        for found in interface.methods:
            if not (_carries_caps(found.params) or _carries_caps(found.results)):
                yield interface.name, found


def test_the_json_schema_follows_the_capnp_params_struct():
    assert json_schema(method("Counter", "increment").params) == {
        "type": "object",
        "properties": {"by": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}},
        "additionalProperties": False,
        "required": ["by"],
    }
    assert json_schema(method("Timer", "now").params)["properties"] == {}


def test_methods_that_move_caps_are_never_tools():
    assert _carries_caps(method("ProcessSpawner", "spawn").params)
    assert _carries_caps(method("AuthorityBroker", "shellBundle").results)
    assert not _carries_caps(method("Counter", "increment").params)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"by": 2', "not valid JSON"),
        ("[2]", "must be a JSON object"),
        ('{"by": "2"}', "expects UInt32"),
        ('{"by": 4294967296}', "outside UInt32"),
        ('{"by": 1, "extra": 0}', "no parameter 'extra'"),
        ("{}", "missing parameter 'by'"),
    ],
)
def test_arguments_that_do_not_fit_the_schema_are_refused_with_the_reason(text, problem):
    with pytest.raises(InputError, match=problem):
        arguments(tool("Counter", "increment"), text)


def test_arguments_that_fit_become_params():
    assert arguments(tool("Counter", "increment"), '{"by": 3}') == {"by": 3}
    assert arguments(tool("Echo", "echo"), '{"data": "hi"}') == {"data": b"hi"}


def test_every_plain_method_of_the_schema_has_a_grammar_llama_cpp_parses():
    model = LocalModel()
    descriptors = [
        {
            "name": f"{i}.{m.name}",
            "description": "",
            "parametersJson": json.dumps(json_schema(m.params)),
        }
        for i, m in plain_methods()
    ]
    assert len(descriptors) > 20
    for descriptor in descriptors:
        model.grammar(gbnf(reply_schema([descriptor])))
    model.grammar(gbnf(reply_schema(descriptors)))
    with pytest.raises(UnsupportedSchema, match="cannot parse"):
        model.grammar("root ::= foo (")  # refused, where llama.cpp itself would crash


def test_a_schema_the_grammar_cannot_express_is_refused_not_loosened():
    with pytest.raises(UnsupportedSchema):
        gbnf({"type": "object", "properties": {"x": {"type": "integer", "minimum": 5}}})
    with pytest.raises(UnsupportedSchema):
        gbnf({"type": "object", "properties": {"x": {"$ref": "#/defs/y"}}})


def test_the_local_answer_streams_as_decoded_text_in_any_chunking():
    reply = '{"answer": "Line one\\nsaid \\"hi\\" \\\\ done"}'
    whole = json.loads(reply)["answer"]
    for size in (1, 2, 3, 7, len(reply)):
        answer = AnswerText()
        pieces = [answer.feed(reply[i : i + size]) for i in range(0, len(reply), size)]
        assert "".join(pieces) == whole
    tool = AnswerText()
    assert tool.feed('{"tool": "counter.get", "arguments": {}}') == ""


def test_a_union_becomes_a_choice_of_objects_each_naming_one_member():
    struct = BUNDLE.struct("CompletionEvent")
    schema = json_schema(struct)
    assert [list(alt["properties"]) for alt in schema["oneOf"]] == [
        ["textDelta"],
        ["toolCall"],
        ["usage"],
        ["done"],
        ["error"],
    ]
    assert schema["oneOf"][1]["required"] == ["toolCall"]
    LocalModel().grammar(gbnf(schema))
    to_params(struct, {"done": "stop"}, None, "event")
