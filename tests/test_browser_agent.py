"""Agent mode in a browser tab: the tab's kernel asks the server's model.

The server runs the real built-in model (SmolLM2-135M on llama.cpp); the
tab's LanguageModel cap reaches it through the page and the server's model
socket (server/modelapi.py), and the tab's shell runs the calls it proposes
with the tab's own caps, after asking.
"""

from __future__ import annotations

import re
import time

import pytest

from bench.tab import become_guest, has_prompt, screen, serving, wait_screen
from kernel.hosts.models.settings import ModelSettings
from server.settings import Settings

pytestmark = pytest.mark.browser

CALL = re.compile(r"^\[(call_\w+)\] counter\.(increment|get)\(")  # shown once schema-checked


ASK = "allow? [y]es [n]o [a]lways [d]eny always:"


def test_agent_in_the_tab_runs_the_servers_local_models_call_after_asking(browser, base_url):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base_url + "/play")
    wait_screen(page, has_prompt, 120)
    assert page.inner_text("#model") == "agent model: SmolLM2-135M-Instruct (on the server)"
    assert "not a capable assistant" in page.get_attribute("#model", "title")

    become_guest(page)  # the demo bundle: the model and the counter
    page.keyboard.type("agent counter\n")
    rows = wait_screen(page, lambda rows: "agent>" in rows, 60)
    banner = "\n".join(rows)
    assert "agent: SmolLM2-135M-Instruct is answering" in banner
    assert "on the playground's server" in banner and "not a capable assistant" in banner

    page.keyboard.type("increment the counter by 2\n")
    rows = wait_screen(page, lambda rows: any(r.startswith(ASK) for r in rows), 90)
    assert any(CALL.match(r) for r in rows), rows  # a call to a tool it was offered, checked
    assert not any("] value = " in r for r in rows)  # nothing ran while it asked
    page.keyboard.type("y\n")
    wait_screen(page, lambda rows: any("] value = " in r for r in rows), 60)
    answer_no_until_prompt(page)
    page.keyboard.type("what time is it?\n")
    page.keyboard.press("Control+C")  # stops the server's generation
    wait_screen(page, lambda rows: "agent: interrupted" in rows, 60)
    page.keyboard.type("exit\n")
    page.keyboard.type("counter.get()\n")
    rows = wait_screen(page, lambda rows: any(r.startswith("value = ") for r in rows), 30)
    assert "value = 0" not in rows  # the call the user allowed ran on the tab's counter
    assert errors == []
    page.close()


def answer_no_until_prompt(page) -> None:
    """Say no to any further call the model proposes until agent mode prompts again."""
    deadline = time.monotonic() + 90
    answered = 1  # the first question, answered yes
    while time.monotonic() < deadline:
        rows = [r for r in screen(page) if r]
        if rows and rows[-1] == "agent>":
            return
        if sum(r.startswith(ASK) for r in rows) > answered:
            page.keyboard.type("n\n")
            answered += 1
        time.sleep(0.05)
    raise AssertionError(f"agent mode did not prompt again: {screen(page)}")


def test_a_tab_says_plainly_when_the_server_runs_no_model(browser):
    with serving(Settings(model=ModelSettings(disabled=True))) as url:
        page = browser.new_page()
        page.goto(url + "/play")
        wait_screen(page, has_prompt, 120)
        assert page.inner_text("#model") == "agent model: none"
        assert "--no-llm" in page.get_attribute("#model", "title")
        become_guest(page)
        page.keyboard.type("agent\n")
        rows = wait_screen(page, lambda rows: any("holds no LanguageModel" in r for r in rows), 30)
        said = "".join(rows).replace(" ", "")  # the reason wraps across rows
        assert "atabgetstheserver'smodelunlesstheserverrunsnone" in said, rows
        page.keyboard.type("timer.now()\n")  # and the shell carries on
        wait_screen(page, lambda rows: any(r.startswith("ns = ") for r in rows), 30)
        page.close()
