"""Agent mode against an OpenAI-compatible endpoint: the scripted server in llm_server.py.

The real HTTP provider, model service, kernel cap and shell runner run; only
the model's answers are scripted, including hostile ones: a call to a cap
the shell does not hold, arguments that are not JSON, escape sequences, an
answer that never ends.
"""

from __future__ import annotations

import json
import time

import pytest

from kernel.hosts.inproc import InProcessHost
from kernel.hosts.models.openai import EndpointSettings, OpenAICompatible
from kernel.manifest import encode_document
from tests.agentsystem import AgentSystem
from tests.llm_server import ENDLESS, ScriptedLLM, text, tool_call
from tests.systems import imported, kernel_caps, system


@pytest.fixture
def llm():
    with ScriptedLLM() as server:
        yield server


def agent(llm: ScriptedLLM, key: str = "") -> AgentSystem:
    return AgentSystem(OpenAICompatible(EndpointSettings(llm.url, "scripted-model", key)))


def tool_messages(request: dict) -> list[dict]:
    return [m for m in request["body"]["messages"] if m["role"] == "tool"]


def test_a_proposed_call_runs_after_the_user_allows_it_and_its_result_goes_back(llm):
    llm.script.extend([tool_call("counter__increment", '{"by": 2}'), text("The counter ", "is 2.")])
    with agent(llm, key="sk-test") as system:
        banner = system.exchange("agent", "agent> ")
        assert "scripted-model is answering" in banner
        assert "OpenAI-compatible endpoint at 127.0.0.1" in banner
        asked = system.exchange("add two to the counter", "allow?")
        assert "[call_1] counter.increment(by=2)" in asked
        shown = system.exchange("y", "agent> ")
        assert "[call_1] value = 2" in shown
        assert "scripted-model> The counter is 2." in shown
        system.exchange("exit", "> ")
        assert "value = 2" in system.exchange("counter.get()", "> ")
        screen = system.finish()
    first, second = llm.requests
    assert first["authorization"] == "Bearer sk-test"  # the key goes to the endpoint only
    assert "sk-test" not in screen
    names = [t["function"]["name"] for t in first["body"]["tools"]]
    assert "counter__increment" in names
    assert not any(n.startswith("launcher") for n in names)  # methods that move caps are no tools
    assert all("CapId" not in json.dumps(t) for t in first["body"]["tools"])
    assert json.loads(tool_messages(second)[0]["content"]) == {"ok": {"value": 2}}
    assert tool_messages(second)[0]["tool_call_id"] == "call_1"


def test_a_call_to_a_cap_the_shell_does_not_hold_is_refused_and_the_model_told(llm):
    llm.script.extend([tool_call("chat__send", '{"text": "hi"}'), text("Sorry.")])
    with agent(llm) as system:
        system.exchange("agent", "agent> ")
        shown = system.exchange("post hi to the chat", "Sorry.")
        assert "refused: chat.send is not a tool of this shell" in shown
        assert "allow?" not in shown
        system.exchange("exit", "> ")
        logged = system.exchange("log warn", "> ")  # the audit trail, in the system's log
        assert "agent (scripted-model) [call_1] chat.send: refused: not a tool" in logged
        system.finish()
    assert "no tool named chat.send" in tool_messages(llm.requests[1])[0]["content"]


def test_arguments_that_are_not_json_or_do_not_fit_the_schema_never_run(llm):
    llm.script.extend(
        [
            tool_call("counter__increment", '{"by": 2'),
            tool_call("counter__increment", '{"by": -5}', call_id="call_2"),
            tool_call("counter__increment", '{"by": 1, "evil": true}', call_id="call_3"),
            text("Giving up."),
        ]
    )
    with agent(llm) as system:
        system.exchange("agent", "agent> ")
        shown = system.exchange("add two", "Giving up.")
        assert "[call_1] refused: counter.increment: the arguments are not valid JSON" in shown
        assert "[call_2] refused: counter.increment: by: -5 is outside UInt32" in shown
        assert "[call_3] refused: counter.increment has no parameter 'evil'" in shown
        assert "allow?" not in shown
        system.exchange("exit", "> ")
        assert "value = 0" in system.exchange("counter.get()", "> ")
        system.finish()


def test_a_denied_tool_is_not_offered_and_never_runs_even_when_proposed(llm):
    llm.script.extend([tool_call("counter__increment", '{"by": 2}'), text("Denied, then.")])
    with agent(llm) as system:
        system.exchange("agent", "agent> ")
        system.exchange("deny counter.inc\t", "counter.increment: deny")  # Tab completes tools
        shown = system.exchange("add two", "Denied, then.")
        assert "[call_1] refused: counter.increment is denied" in shown
        system.exchange("exit", "> ")
        assert "value = 0" in system.exchange("counter.get()", "> ")
        system.finish()
    offered = [t["function"]["name"] for t in llm.requests[0]["body"]["tools"]]
    assert "counter__increment" not in offered and "counter__get" in offered


def test_ask_mode_waits_for_the_user_and_no_means_the_call_never_runs(llm):
    llm.script.extend([tool_call("counter__increment", '{"by": 7}'), text("Fine.")])
    with agent(llm) as system:
        system.exchange("agent", "agent> ")
        start = len(system.screen)
        system.exchange("add seven", "allow?")
        time.sleep(0.5)  # the user thinks; nothing may run meanwhile
        assert "value =" not in system.screen[start:]
        assert len(llm.requests) == 1
        shown = system.exchange("n", "agent> ")
        assert "[call_1] not run: the user said no" in shown
        system.exchange("exit", "> ")
        assert "value = 0" in system.exchange("counter.get()", "> ")
        system.finish()
    assert "did not allow" in tool_messages(llm.requests[1])[0]["content"]


def test_always_allows_the_tool_for_the_rest_of_agent_mode(llm):
    llm.script.extend(
        [
            tool_call("counter__increment", '{"by": 1}'),
            text("One."),
            tool_call("counter__increment", '{"by": 1}'),
            text("Two."),
        ]
    )
    with agent(llm) as system:
        system.exchange("agent", "agent> ")
        system.exchange("add one", "allow?")
        system.exchange("a", "One.")
        shown = system.exchange("add one more", "Two.")
        assert "allow?" not in shown and "[call_1] value = 2" in shown
        listing = system.exchange("tools", "agent> ").splitlines()
        assert next(line for line in listing if "counter.increment" in line).split()[1] == "allow"
        system.finish()


def test_a_long_result_reaches_the_model_cut_but_as_valid_json(llm):
    llm.script.extend([tool_call("manual__page", '{"topic": "agent"}'), text("Read it.")])
    with agent(llm) as system:
        system.exchange("agent manual", "agent> ")
        system.exchange("read about capabilities", "allow?")
        system.exchange("y", "Read it.")
        system.finish()
    result = json.loads(tool_messages(llm.requests[1])[0]["content"])
    assert result["note"] == "the result was too long" and len(result["cut"]) == 2048


def test_ctrl_c_stops_an_endless_answer_and_the_endpoint_sees_the_hang_up(llm):
    llm.script.append(ENDLESS)
    with agent(llm) as system:
        system.exchange("agent", "agent> ")
        system.exchange("talk forever", "scripted-model> more")
        system.type("\x03")
        system.wait_for("agent: interrupted")
        assert llm.hung_up.wait(10)
        assert "agent> " in system.exchange("tools", "agent> ")  # agent mode goes on
        system.finish()


def test_an_endless_answer_is_cut_off_by_the_runner(llm):
    llm.script.extend([ENDLESS, text("Short now.")])
    with agent(llm) as system:
        system.exchange("agent", "agent> ")
        shown = system.exchange("talk forever", "it was stopped", timeout=60)
        assert "ran past 16384 characters" in shown
        assert "Short now." in system.exchange("and now?", "agent> ")
        system.finish()


def test_text_no_utf8_can_carry_and_deep_json_are_refused_not_fatal(llm):
    deep = "[" * 1500 + "]" * 1500
    llm.script.extend(
        [
            text("half a pair: \ud800!"),
            tool_call("echo__echo", '{"data": "\\udc00"}'),
            tool_call("echo__echo", '{"data": ' + deep + "}", call_id="call_2"),
            text("Done."),
        ]
    )
    with agent(llm) as system:
        system.exchange("agent", "agent> ")
        assert "half a pair: ?!" in system.exchange("say it", "agent> ")
        shown = system.exchange("echo it", "Done.")
        assert "[call_1] refused: echo.echo: the arguments are not valid JSON" in shown
        assert "[call_2] refused: echo.echo: the arguments are not valid JSON" in shown
        system.finish()


def test_escape_sequences_and_failures_from_the_endpoint_are_harmless(llm):
    llm.script.extend([text("red\x1b[31m\x1b]0;pwned\x07 text"), tool_call("\x1b[2J", "{}")])
    llm.script.append(text("ok"))
    llm.script.append([b"data: " + b"x" * 70_000 + b"\n\n"])
    llm.script.append([b"data: {not json\n\n"])
    with agent(llm) as system:
        system.exchange("agent", "agent> ")
        shown = system.exchange("colour?", "agent> ")
        assert "scripted-model> red[31m]0;pwned text" in shown
        shown = system.exchange("clear it", "agent> ")
        assert "refused: ?[2J is not a tool" in shown
        shown = system.exchange("a long line", "agent> ")
        assert "the model failed: the model endpoint sent a line over 65536 bytes" in shown
        shown = system.exchange("broken", "agent> ")
        assert "the model failed: the model endpoint sent a chunk that is not valid JSON" in shown
        system.finish()


def test_an_unreachable_or_failing_endpoint_is_reported_plainly():
    with ScriptedLLM() as llm:
        url = llm.url
    with AgentSystem(OpenAICompatible(EndpointSettings(url, "gone"))) as system:
        system.exchange("agent", "agent> ")
        shown = system.exchange("hello", "agent> ")
        assert "agent: the model failed: cannot reach the model endpoint" in shown
        system.finish()


def test_a_session_cannot_touch_another_sessions_stream_nor_hog_the_model(llm):
    llm.script.append(text("for ", "the owner"))
    probes = {
        "model-owner": "tests.programs.model_owner",
        "model-snoop": "tests.programs.model_snoop",
    }
    document = system(
        [
            {
                "name": "model",
                "binary": "model-service",
                "exports": [{"name": "model", "interface": "LanguageModel"}],
                "caps": [{"name": "device", "source": {"kernel": "languageModel"}}],
            },
            *(
                {
                    "name": name,
                    "binary": name,
                    "freshSession": True,
                    "caps": [*kernel_caps("console", "timer"), imported("model", "model", "model")],
                }
                for name in probes
            ),
        ],
        {"model-service": "kernel.programs.model_service", **probes},
    )
    model = OpenAICompatible(EndpointSettings(llm.url, "scripted-model"))
    host = InProcessHost(encode_document(document), model=model)
    host.boot()
    try:
        deadline = time.monotonic() + 20
        while b"owner: '" not in host.console and time.monotonic() < deadline:
            time.sleep(0.01)
        console = host.console.decode()
        assert "snoop: refused 9 of 9" in console
        assert "owner: 'for the owner' then stop" in console
        assert host.crashes == {}
    finally:
        host.shutdown()
