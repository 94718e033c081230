"""Agent mode with the real built-in model: SmolLM2-135M on llama.cpp, one thread.

Few and quick: the model is loaded once for the module (0.1 s) and each
generation takes about a second. What the model proposes varies with the
prompt, so the tests assert what must hold whatever it proposes.
"""

from __future__ import annotations

import json
import time

import pytest

from kernel.codec import Bundle
from kernel.hosts.models.local import LocalModel
from kernel.programs.shell.tools import descriptor
from kernel.programs.shell.values import to_params
from tests.agentsystem import AgentSystem

BUNDLE = Bundle.default()


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return LocalModel()


TOOLS = {
    "counter.increment": ("Counter", "increment"),
    "counter.get": ("Counter", "get"),
    "timer.now": ("Timer", "now"),
    "paperclips.make": ("PaperclipsGame", "make"),
    "paperclips.setPrice": ("PaperclipsGame", "setPrice"),
    "echo.echo": ("Echo", "echo"),
}


def request(text: str) -> dict:
    tools = [
        descriptor(n.split(".")[0], BUNDLE.interface(i), BUNDLE.interface(i).method(m))
        for n, (i, m) in TOOLS.items()
    ]
    return {
        "messages": [{"role": "user", "content": text, "toolCalls": [], "toolCallId": ""}],
        "tools": tools,
        "params": {"maxTokens": 96, "temperature": 0.0},
    }


def test_every_call_the_local_model_proposes_is_schema_valid(model):
    calls = []
    for text in ("increment the counter by 3", "make 12 paperclips", "set the price to 5 cents"):
        events = list(model.generate(request(text), lambda: False))
        assert "done" in events[-1], events
        calls += [e["toolCall"] for e in events if "toolCall" in e]
    assert calls, "the model proposed no call at all"
    for call in calls:
        interface, method = TOOLS[call["name"]]  # a tool it was offered, nothing else
        params = BUNDLE.interface(interface).method(method).params
        to_params(params, json.loads(call["argumentsJson"]), None, call["name"])


def answer_questions(system: AgentSystem, start: int, answer: str) -> None:
    """Answer every `allow?` with `answer` until agent mode prompts again."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        screen = system.screen
        asked, prompted = screen.find("allow?", start), screen.find("agent> ", start)
        if asked >= 0 and (prompted < 0 or asked < prompted):
            start = asked + len("allow?")
            system.type(answer + "\n")
        elif prompted >= 0:
            return
        time.sleep(0.01)
    raise AssertionError(f"agent mode did not prompt again:\n{system.screen[start:]}")


def test_a_denied_tool_is_never_executed_by_the_local_model(model):
    with AgentSystem(model) as system:
        system.exchange("agent counter", "agent> ")
        system.exchange("deny counter.increment", "agent> ")
        start = len(system.screen)
        system.type("increment the counter by 2\n")
        answer_questions(system, start, "n")
        assert "counter.increment(" not in system.screen[start:]
        system.exchange("exit", "> ")
        assert "value = 0" in system.exchange("counter.get()", "> ")
        system.finish()


def test_ask_mode_waits_for_the_user_before_the_local_models_call_runs(model):
    with AgentSystem(model) as system:
        banner = system.exchange("agent counter", "agent> ")
        assert "SmolLM2-135M-Instruct is answering" in banner
        assert "not a capable assistant" in banner
        start = len(system.screen)
        system.exchange("increment the counter by 2", "allow?", timeout=60)
        time.sleep(0.5)
        assert "value =" not in system.screen[start:]  # nothing ran while it waited
        system.type("y\n")
        system.wait_for("] value = ", after=start, timeout=60)
        answer_questions(system, start, "n")
        system.finish()


def test_ctrl_c_stops_the_local_models_loop(model):
    with AgentSystem(model) as system:
        system.exchange("agent counter", "agent> ")
        start = len(system.screen)
        system.type("increment the counter by 2\n\x03")
        system.wait_for("agent: interrupted", after=start, timeout=60)
        system.exchange("exit", "> ")
        assert "value = 0" in system.exchange("counter.get()", "> ")
        system.finish()
