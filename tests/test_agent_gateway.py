"""Outside agents through the shell: AgentPort requests served with the shell's own caps.

The default system on the in-process host, driven as the server drives a
guest: requests go into the kernel's AgentPort, the shell answers. What an
agent sees must be what a person at that shell holds, and every refusal
must come before anything is sent.
"""

from __future__ import annotations

import itertools
import json

import pytest

from kernel.services import agentport
from tests.agentsystem import AgentSystem

_ids = itertools.count(1)


@pytest.fixture
def system():
    with AgentSystem(model=None, guest=False) as running:
        ask(running, guest=None)  # as create_session does: an agent works as a guest
        yield running


def ask(system: AgentSystem, **request) -> dict:
    answer = system.host.ask_agent({"id": next(_ids), **request})
    return answer


def call(system: AgentSystem, cap: str, method: str, params: object = None, bind: str = ""):
    text = params if isinstance(params, str) else json.dumps(params or {})
    answer = ask(system, call={"cap": cap, "method": method, "paramsJson": text, "bind": bind})
    return json.loads(answer["json"]) if "json" in answer else answer["error"]


def test_agents_see_exactly_the_shells_caps(system):
    held = {c["name"]: c["interface"] for c in ask(system, listCaps=None)["caps"]}
    screen = system.exchange("caps", "> ")
    for name, interface in held.items():
        assert name in screen and interface in screen
    assert held["echo"] == "Echo" and held["launcher"] == "ProcessSpawner"
    # the shell's own machinery is not among them
    assert not {"terminal", "agents", "sessionManager", "authorityBroker"} & set(held)


def test_an_agent_takes_the_guest_profile_as_typing_guest_does():
    with AgentSystem(model=None, guest=False) as system:
        anonymous = {c["name"]: c["origin"] for c in ask(system, listCaps=None)["caps"]}
        assert anonymous == {"manual": "bundle", "session": "bundle", "systemInfo": "bundle"}
        refused = ask(system, spawn={"binary": "quick", "grantsJson": "{}"})["error"]
        assert "holds no launcher" in refused["message"]
        guest = {c["name"]: c["interface"] for c in ask(system, guest=None)["caps"]}
        assert guest["launcher"] == "ProcessSpawner" and guest["monitor"] == "SystemMonitor"
        assert "chat" not in guest  # the operator's
        shown = system.wait_for("guest: now guest (guest)")  # the person at the terminal sees it
        system.wait_for("guest@capos> ", after=shown)  # and the prompt they type at says so
        assert "profile=guest" in system.exchange("whoami", "> ")


def test_describe_gives_json_schema_from_the_capnp_methods(system):
    described = json.loads(ask(system, describeCap="counter")["json"])
    assert described["interface"] == "Counter"
    increment = next(m for m in described["methods"] if m["name"] == "increment")
    assert increment["params"]["properties"]["by"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 4294967295,
    }
    assert increment["params"]["required"] == ["by"]
    assert increment["results"]["properties"]["value"]["type"] == "integer"
    spawner = json.loads(ask(system, describeCap="launcher")["json"])
    grant = spawner["methods"][0]["params"]["properties"]["grants"]["items"]
    cap_member = next(o for o in grant["properties"]["source"]["oneOf"] if "cap" in o["required"])
    assert cap_member["properties"]["cap"]["required"] == ["$cap"]


def test_a_good_call_returns_typed_results(system):
    assert call(system, "counter", "increment", {"by": 2}) == {"results": {"value": 2}}
    assert call(system, "counter", "get") == {"results": {"value": 2}}
    assert call(system, "echo", "echo", {"data": "héllo"}) == {"results": {"data": "héllo"}}
    assert "counter.get" not in system.screen  # calls are quiet: the terminal is the person's


@pytest.mark.parametrize(
    ("cap", "method", "params", "says"),
    [
        ("nope", "get", {}, "no cap named 'nope'"),
        ("counter", "decrement", {}, "has no method 'decrement'"),
        ("counter", "increment", {}, "missing parameter 'by'"),
        ("counter", "increment", {"by": "x"}, "expects UInt32"),
        ("counter", "increment", {"by": -1}, "outside UInt32"),
        ("counter", "increment", {"by": 1, "extra": 2}, "no parameter 'extra'"),
        ("counter", "increment", "{not json", "not valid JSON"),
        ("counter", "increment", "[1, 2]", "must be a JSON object"),
        ("counter", "increment", '{"by": ' + "[" * 2000 + "]" * 2000 + "}", "not valid JSON"),
        ("echo", "echo", {"data": {"$cap": "nope"}}, "expects Data"),
    ],
)
def test_bad_calls_are_refused_before_anything_is_sent(system, cap, method, params, says):
    error = call(system, cap, method, params)
    assert error["kind"] == "input"
    assert says in error["message"]
    assert call(system, "counter", "get") == {"results": {"value": 0}}


def test_a_cap_exception_comes_back_with_its_type(system):
    error = call(
        system, "launcher", "spawn", {"name": "x", "binaryName": "no-such-binary", "grants": []}
    )
    assert error["kind"] == "capException"
    assert error["type"] == "invalidArgument"
    assert "no-such-binary" in error["message"]


def test_an_oversized_request_is_refused_and_the_shell_serves_on(system):
    error = call(system, "echo", "echo", {"data": "x" * 7000})
    assert error["kind"] == "input" and "over" in error["message"]
    assert call(system, "echo", "echo", {"data": "still here"})["results"]["data"] == "still here"


def test_caps_pass_by_name_and_results_bind_to_names(system):
    grants = [{"name": "echo", "source": {"cap": {"$cap": "echo"}}}]
    spawned = call(
        system, "launcher", "spawn", {"name": "p", "binaryName": "ping", "grants": grants}, "p"
    )
    assert spawned["results"]["handle"] == {"$cap": "p", "interface": "ProcessHandle"}
    held = {c["name"] for c in ask(system, listCaps=None)["caps"]}
    assert "p" in held
    status = call(system, "p", "status")["results"]["status"]
    assert status["binaryName"] == "ping"
    # caps in results are released unless bound, and the answer says so
    narrowed = call(system, "monitor", "subtree", {"pid": 1})
    assert narrowed["results"]["monitor"]["$cap"] is None
    assert "released" in narrowed["note"]


def test_binding_over_the_bundle_is_refused_and_nothing_runs(system):
    error = call(system, "counter", "increment", {"by": 5}, bind="echo")
    assert error["kind"] == "input" and "bundle" in error["message"]
    error = call(system, "counter", "increment", {"by": 5}, bind="no spaces")
    assert error["kind"] == "input"
    assert call(system, "counter", "get") == {"results": {"value": 0}}


def test_spawn_grants_exactly_what_is_named(system):
    grants = json.dumps({"stdio": {"client": "stdio"}, "counter": {"client": "counter"}})
    answer = json.loads(ask(system, spawn={"binary": "counter", "grantsJson": grants})["json"])
    assert answer["binary"] == "counter" and answer["pid"] > 0
    system.wait_for("spawned by an agent")
    system.wait_for("[counter]")  # its stdio is the shell's terminal
    served = json.loads(
        ask(
            system,
            spawn={
                "binary": "counter-server",
                "grantsJson": json.dumps({"counter": {"new": "Counter"}}),
            },
        )["json"]
    )
    assert any("a client of what it serves" in line for line in served["kept"])


@pytest.mark.parametrize(
    ("grants", "says"),
    [
        ({"stdio": {"steal": "stdio"}}, "grant 'stdio'"),
        ({"stdio": 5}, "grant 'stdio'"),
        ({"counter": "nope"}, "no cap named 'nope'"),
        ({"stdio": "stdio"}, "client @stdio"),
    ],
)
def test_bad_spawns_are_refused(system, grants, says):
    answer = ask(system, spawn={"binary": "counter", "grantsJson": json.dumps(grants)})
    assert answer["error"]["kind"] == "input"
    assert says in answer["error"]["message"]
    assert "spawned by an agent" not in system.screen


def test_names_an_agent_binds_are_the_persons_too(system):
    call(system, "monitor", "subtree", {"pid": 1}, bind="mine")
    screen = system.exchange("caps", "> ")
    assert "mine" in screen
    assert "mine.snapshot(maxCalls :UInt32" in system.exchange("methods mine", "> ")
    whole = call(system, "mine", "snapshot", {"maxCalls": 0, "maxLogs": 0})  # over 8 KiB
    assert whole["results"]["snapshot"]["scopePid"] == 1
    # the person's own typed call takes the same whole-system answer
    assert "scopePid: 1" in system.exchange("mine.snapshot(maxCalls=0, maxLogs=0)", "> ")


def test_a_full_port_answers_busy_and_a_stale_request_never_runs(monkeypatch):
    # A system with no shell: nobody takes requests.
    from kernel.hosts.inproc import InProcessHost
    from kernel.manifest import default_manifest, encode_document, load_document

    document = load_document(default_manifest())
    document["initConfig"]["services"] = [
        s for s in document["initConfig"]["services"] if s["name"] != "shell"
    ]
    host = InProcessHost(encode_document(document))
    host.boot()
    try:
        port = host.kernel.agents
        with host.cond:
            for request_id in range(agentport.MAX_WAITING):
                port.submit({"id": request_id, "listCaps": None})
            port.submit({"id": 999, "listCaps": None})
        assert host.agent_answers[999]["error"]["kind"] == "busy"
        assert len(host.agent_answers) == 1  # the others wait, answered by nobody yet
        monkeypatch.setattr(agentport, "MAX_WAIT_NS", 0)
        with host.cond:
            port.submit({"id": 1000, "listCaps": None})
        stale = [a for a in host.agent_answers.values() if a["error"]["kind"] == "busy"]
        assert len(stale) == agentport.MAX_WAITING + 1  # every waiting one, and 999
    finally:
        host.shutdown()


def test_a_shell_that_ends_answers_what_it_took(system):
    host = system.host
    sleep = {"cap": "timer", "method": "sleep", "paramsJson": '{"ns": 60000000000}', "bind": ""}
    with host.cond:
        host.kernel.agents.submit({"id": 77, "call": sleep})
        host.kernel.take_woken()
        host.cond.notify_all()
    system.type("exit\n")
    with host.cond:
        assert host.cond.wait_for(lambda: 77 in host.agent_answers, 10)
    assert host.agent_answers[77]["error"]["kind"] == "gone"


def test_a_whole_system_snapshot_fits_beside_what_the_shell_keeps_pending(system):
    """The shell keeps a terminal read, a resize wait and its children's StdIO pending;
    a snapshot of the whole system still has room in its buffer area."""
    grants = {"stdio": {"client": "stdio"}, "counter": {"client": "counter"}}
    spawned = ask(system, spawn={"binary": "counter", "grantsJson": json.dumps(grants)})
    assert "json" in spawned, spawned
    answer = call(system, "monitor", "snapshot", {"maxCalls": 0, "maxLogs": 0})
    assert "results" in answer, answer
    binaries = {p["binary"] for p in answer["results"]["snapshot"]["processes"]}
    assert {"init", "shell", "counter"} <= binaries
