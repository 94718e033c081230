"""The server's model socket (server/modelapi.py), as a tab's page uses it and as a hostile
client abuses it, against the real server and a scripted OpenAI-compatible endpoint.

The scripted endpoint (tests/llm_server.py) makes each answer deterministic; the real
HTTP client runs against it, so a cancel or a vanished tab is seen where it matters: the
endpoint's stream is hung up and the next generation runs at once.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from bench.tab import serving
from kernel.hosts.models.openai import KEY_ENV, EndpointSettings, OpenAICompatible
from kernel.hosts.models.settings import ModelSettings
from server import modelapi, modelhub
from server.modelhub import MAX_ACTIVE, MAX_WAITING, ModelHub, Overrun
from server.settings import Settings
from tests.llm_server import ENDLESS, ScriptedLLM, text, tool_call

KEY = "sk-never-in-a-browser"


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as scripted:
        yield scripted


@pytest.fixture(scope="module")
def base(llm) -> Iterator[str]:
    os.environ[KEY_ENV] = KEY  # read once, when the server opens its model
    try:
        with serving(Settings(model=ModelSettings(url=llm.url, model="scripted-1"))) as url:
            yield url
    finally:
        del os.environ[KEY_ENV]


@pytest.fixture
def model(base, llm) -> Iterator[ClientConnection]:
    llm.script.clear()
    llm.hung_up.clear()
    with connect(socket_url(base), origin=base) as conn:
        yield conn


def socket_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/api/model/stream"


def message(role: str = "user", content: object = "hello") -> dict:
    return {"role": role, "content": content, "toolCalls": [], "toolCallId": ""}


def request(content: str = "hello", **params) -> dict:
    return {
        "messages": [message(content=content)],
        "tools": [
            {"name": "counter.increment", "description": "", "parametersJson": '{"type":"object"}'}
        ],
        "params": {"maxTokens": 64, "temperature": 0, **params},
    }


def generate(conn: ClientConnection, stream: int, body: dict | None = None) -> None:
    conn.send(json.dumps({"type": "generate", "stream": stream, "request": body or request()}))


def frame(conn: ClientConnection, timeout: float = 10) -> dict:
    return json.loads(conn.recv(timeout))


def until_end(conn: ClientConnection, stream: int) -> list[dict]:
    """The stream's events up to its final one (events of other streams are skipped)."""
    events = []
    while True:
        got = frame(conn)
        if got.get("stream") == stream:
            events.append(got["event"])
            if "done" in got["event"] or "error" in got["event"]:
                return events


def test_the_page_learns_which_model_answers_and_never_its_key(base, llm):
    info = httpx.get(base + "/api/model").json()["info"]
    assert info["modelId"] == "scripted-1" and info["local"] is False
    assert "on the playground's server" in info["provider"]
    assert KEY not in httpx.get(base + "/api/model").text


def test_a_generation_streams_its_events_and_the_key_goes_only_to_the_endpoint(model, llm):
    llm.script.extend([text("The count", "er is 3."), tool_call("counter__increment", '{"by":2}')])
    generate(model, 7)
    assert until_end(model, 7) == [
        {"textDelta": "The count"},
        {"textDelta": "er is 3."},
        {"done": "stop"},
    ]
    generate(model, 8)
    events = until_end(model, 8)
    assert events[0] == {
        "toolCall": {"id": "call_1", "name": "counter.increment", "argumentsJson": '{"by":2}'}
    }
    assert events[-1] == {"done": "tool_calls"}
    assert llm.requests[-1]["authorization"] == f"Bearer {KEY}"
    assert llm.requests[-1]["body"]["messages"] == [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("sent", "said"),
    [
        (b"\x00binary", "binary frames are not accepted"),
        ("not json", "a frame must be a JSON object"),
        ("[1, 2]", 'a JSON object with a "type"'),
        ('{"type": "sing", "stream": 1}', "unknown frame type 'sing'"),
        ('{"type": "generate", "stream": 0}', '"stream", an integer 1..'),
        ('{"type": "cancel", "stream": true}', '"stream", an integer 1..'),
        ('{"type": "cancel", "stream": 1, "also": 2}', "cancel takes only the fields"),
        ("x" * 70_000, "at most 65536 characters"),
    ],
)
def test_a_bad_frame_is_refused_with_a_reason_and_the_connection_goes_on(model, llm, sent, said):
    model.send(sent)
    refused = frame(model)
    assert refused["type"] == "error" and said in refused["message"], refused
    llm.script.append(text("still here"))
    generate(model, 1)
    assert until_end(model, 1) == [{"textDelta": "still here"}, {"done": "stop"}]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({**request(), "extra": 1}, "request takes exactly the fields"),
        ({**request(), "messages": []}, "1..64 messages"),
        ({**request(), "messages": [message(role="root")]}, "role must be one of"),
        ({**request(), "messages": [message(content=5)]}, "content must be a string"),
        ({**request(), "tools": [{"name": "x"}]}, "tools[0] takes exactly the fields"),
        (request(maxTokens=0), "maxTokens must be 1..2048"),
        (request(maxTokens=10**9), "maxTokens must be 1..2048"),
        (request(temperature=float("nan")), "temperature 0..2"),
        (request(content="x" * 20_000), "at most 16384 characters"),
        ("not an object", "request must be a JSON object"),
    ],
)
def test_a_bad_request_ends_its_stream_with_an_error_and_reaches_no_model(model, llm, body, said):
    before = len(llm.requests)
    generate(model, 3, body)
    (event,) = until_end(model, 3)
    assert said in event["error"], event
    assert event["error"].startswith("the server refused the request")
    assert len(llm.requests) == before


def test_a_message_past_the_socket_limit_closes_only_that_connection(base, model, llm):
    with pytest.raises(ConnectionClosed) as closed:
        model.send("x" * (2 << 20))
        frame(model)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    with connect(socket_url(base)) as other:
        llm.script.append(text("fine"))
        generate(other, 1)
        assert until_end(other, 1)[-1] == {"done": "stop"}


def test_a_tab_may_have_only_a_few_generations_under_way(model, llm):
    llm.script.extend([ENDLESS] * MAX_ACTIVE)
    for stream in range(1, MAX_ACTIVE + 1):
        generate(model, stream)
    generate(model, 1)  # a number already under way: refused, the first one goes on
    generate(model, 99)
    refused = []
    while len(refused) < 2:
        got = frame(model)
        if got["type"] == "error" or got["stream"] == 99:
            refused.append(got)
    assert "stream 1 is already under way" in refused[0]["message"]
    assert f"{MAX_ACTIVE} generations under way" in refused[1]["event"]["error"]
    for stream in range(1, MAX_ACTIVE + 1):
        model.send(json.dumps({"type": "cancel", "stream": stream}))
        assert until_end(model, stream)[-1] == {"done": "cancelled"}


def test_cancel_stops_the_endpoints_stream_and_frees_the_model(model, llm):
    llm.script.extend([ENDLESS, text("next")])
    generate(model, 5)
    assert "textDelta" in frame(model)["event"]  # it is under way
    model.send(json.dumps({"type": "cancel", "stream": 5}))
    assert until_end(model, 5)[-1] == {"done": "cancelled"}
    with pytest.raises(TimeoutError):
        model.recv(0.3)  # nothing more of it
    assert llm.hung_up.wait(5)  # the provider stopped reading (the answer lasts 20 s)
    generate(model, 6)
    assert until_end(model, 6) == [{"textDelta": "next"}, {"done": "stop"}]
    model.send(json.dumps({"type": "cancel", "stream": 6}))  # ended already: nothing more
    with pytest.raises(TimeoutError):
        model.recv(0.3)


def test_a_tab_that_goes_away_mid_generation_frees_the_model(base, model, llm, monkeypatch):
    monkeypatch.setattr(modelhub, "MAX_WAITING", 10**6)  # only its going away can stop it
    llm.script.extend([ENDLESS, text("for the next tab")])
    generate(model, 1)
    assert "textDelta" in frame(model)["event"]
    model.close()
    assert llm.hung_up.wait(5)  # the provider stopped reading (the answer lasts 20 s)
    with connect(socket_url(base)) as other:
        generate(other, 1)
        assert until_end(other, 1) == [{"textDelta": "for the next tab"}, {"done": "stop"}]


def test_past_the_limit_of_tabs_on_the_model_a_new_one_is_told_to_come_back(
    base, model, monkeypatch
):
    monkeypatch.setattr(modelapi, "MAX_LINES", 1)  # `model` holds the one line
    model.send("{}")
    assert frame(model)["type"] == "error"  # its line is open
    with connect(socket_url(base)) as extra, pytest.raises(ConnectionClosed) as closed:
        extra.recv(5)
    assert closed.value.rcvd.code == 4429 and "too many tabs" in closed.value.rcvd.reason


def test_a_page_from_another_site_cannot_use_the_model(base):
    with pytest.raises(Exception, match="403"):
        connect(socket_url(base), origin="http://evil.example")


def test_a_server_without_a_model_says_so_and_refuses_the_socket():
    with serving(Settings(model=ModelSettings(disabled=True))) as url:
        said = httpx.get(url + "/api/model").json()
        assert said["info"] is None and "--no-llm" in said["reason"]
        with connect(socket_url(url)) as conn:
            refused = frame(conn)
            assert refused["type"] == "error" and "--no-llm" in refused["message"]
            with pytest.raises(ConnectionClosed) as closed:
                conn.recv(5)
        assert closed.value.rcvd.code == 4404


def test_a_tab_that_reads_nothing_stops_its_generation_and_is_cut_off(llm):
    """The hub itself, without a socket: nothing drains the line's outbox here."""

    async def read_nothing() -> None:
        provider = OpenAICompatible(EndpointSettings(llm.url))
        hub = ModelHub(provider, asyncio.get_running_loop(), tokens_per_hour=20_000)
        try:
            with hub.line("a tab") as line:
                line.generate(1, request())
                while line.active:  # until the lagging stream is stopped
                    await asyncio.sleep(0.01)
                assert line.outbox.qsize() == MAX_WAITING + 1
                frames = [line.outbox.get_nowait() for _ in range(MAX_WAITING + 1)]
                assert "fell behind" in frames[-1]["event"]["error"]
                for _ in range(MAX_WAITING):
                    line.reply_error("a refused frame")
                with pytest.raises(Overrun):  # the socket then closes the connection
                    line.reply_error("one more")
        finally:
            await asyncio.to_thread(hub.close)

    llm.script.clear()
    llm.hung_up.clear()
    llm.script.append(ENDLESS)
    asyncio.run(read_nothing())
    assert llm.hung_up.wait(5)  # the endpoint's stream was let go


def test_serve_refuses_an_llm_url_that_is_not_http_before_starting(capsys):
    from server.cli import main

    assert main(["serve", "--llm-url", "ftp://models.example/v1", "--max-vms", "0"]) == 2
    assert "--llm-url must be an http(s) URL" in capsys.readouterr().err


def test_a_client_past_its_token_budget_is_stopped_and_another_is_not(llm):
    """The hub with a budget of 100 tokens an hour: an endless answer stops at it."""

    async def spend_it() -> tuple[dict, dict]:
        provider = OpenAICompatible(EndpointSettings(llm.url))
        hub = ModelHub(provider, asyncio.get_running_loop(), tokens_per_hour=100)
        try:
            with hub.line("greedy") as greedy, hub.line("modest") as modest:
                greedy.generate(1, request())
                last = await _final_event(greedy)
                greedy.generate(2, request())  # nothing left: refused at once
                again = await _final_event(greedy)
                assert "limit reached" in again["error"]
                modest.generate(1, request())  # another client has its own budget
                return last, await _final_event(modest)
        finally:
            await asyncio.to_thread(hub.close)

    llm.script.clear()
    llm.script.extend([ENDLESS, text("fine")])
    stopped, served = asyncio.run(spend_it())
    assert "limit reached" in stopped["error"] and "100 tokens" in stopped["error"]
    assert served.get("done") == "stop"


async def _final_event(line) -> dict:
    """The next `done` or `error` event on the line, within 20 s."""
    async with asyncio.timeout(20):
        while True:
            frame = await line.outbox.get()
            event = frame["event"]
            if "done" in event or "error" in event:
                return event


def test_credentials_in_the_llm_url_reach_no_answer(llm):
    host, port = llm.url.split("//", 1)[1].split("/", 1)[0].split(":")
    url = f"http://alice-ops:hunter2-secret@{host}:{port}/v1"
    with serving(Settings(model=ModelSettings(url=url, model="scripted-1"))) as base:
        answer = httpx.get(base + "/api/model")
    assert answer.status_code == 200 and "hunter2" not in answer.text
    assert "alice-ops" not in answer.text and f"{host}:{port}" in answer.text
