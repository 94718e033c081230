"""The demos as whole systems on the in-process host: each client against its server,
driven by tests/programs/stdio_script.py, which plays the user over StdIO and prints
the transcript to the console."""

from __future__ import annotations

import json
import re
import time

import pytest

from kernel.hosts.inproc import InProcessHost
from kernel.manifest import encode_document

BINARIES = {
    "chat-server": "demos.chat.server",
    "chat-client": "demos.chat.client",
    "chat-bot": "demos.chat.bot",
    "paperclips-server": "demos.paperclips.server",
    "paperclips": "demos.paperclips.client",
    "adventure-server": "demos.adventure.server",
    "adventure-client": "demos.adventure.client",
    "counter-server": "demos.counter.server",
    "counter": "demos.counter.client",
    "stdio-script": "tests.programs.stdio_script",
    "prober": "tests.programs.demo_prober",
}


def kernel(*names: str) -> list[dict]:
    return [{"name": n, "source": {"kernel": n}} for n in names]


def imported(name: str, service: str, export: str | None = None) -> dict:
    return {"name": name, "source": {"import": {"service": service, "export": export or name}}}


def server(name: str, binary: str, export: str, interface: str, caps=()) -> dict:
    return {
        "name": name,
        "binary": binary,
        "exports": [{"name": export, "interface": interface}],
        "caps": list(caps),
    }


def terminal(name: str, export: str = "stdio", caps=()) -> dict:
    """A scripted terminal: serves StdIO on `export` and plays the MOTD's script for it."""
    return server(
        name,
        "stdio-script",
        export,
        "StdIO",
        kernel("console") + [{"name": "info", "source": {"kernel": "systemInfo"}}, *caps],
    )


def client(name: str, binary: str, term: str, caps=(), export: str = "stdio") -> dict:
    """A client as the shell starts it: its own session, a StdIO, and the grants given."""
    return {
        "name": name,
        "binary": binary,
        "caps": [imported("stdio", term, export), *caps],
        "freshSession": True,
    }


class Demo:
    def __init__(self, services: list[dict], scripts: dict[str, list]) -> None:
        self.host = InProcessHost(encode_document(self.document(services, scripts)))

    @staticmethod
    def document(services: list[dict], scripts: dict[str, list]) -> dict:
        """A manifest: every demo binary, these services, the scripts as the MOTD."""
        return {
            "schemaVersion": 1,
            "kernelParams": {"motd": json.dumps(scripts)},
            "binaries": [{"name": "init", "module": "kernel.programs.init"}]
            + [{"name": n, "module": m} for n, m in BINARIES.items()],
            "initConfig": {"init": "init", "services": services},
        }

    def __enter__(self) -> Demo:
        self.host.boot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.host.shutdown()

    def transcript(self, name: str = "stdio", timeout: float = 10.0) -> str:
        end = f"--- end {name} ---\n".encode()
        deadline = time.monotonic() + timeout
        while end not in self.host.console:
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no transcript {name!r}; console:\n{self.host.console.decode()}\n"
                    f"crashes: {self.host.crashes}"
                )
            time.sleep(0.005)
        return transcript_in(self.host.console.decode(), name)

    def healthy(self) -> None:
        assert self.host.crashes == {}
        assert self.host.kernel.faults == []
        assert "ended with status" not in self.host.console.decode()


def transcript_in(console: str, name: str) -> str:
    """The transcript stdio_script printed for terminal `name`."""
    start, end = f"--- transcript {name} ---\n", f"--- end {name} ---\n"
    return console[console.index(start) + len(start) : console.index(end)]


def in_order(transcript: str, *lines: str) -> None:
    """Each line appears in the transcript, as a whole line, in this order."""
    have = transcript.splitlines()
    at = 0
    for line in lines:
        assert line in have[at:], f"{line!r} missing or out of order in:\n{transcript}"
        at = have.index(line, at) + 1


# --- chat -------------------------------------------------------------------------------

CHAT = server("chat", "chat-server", "chat", "Chat")
BOT = {"name": "bot", "binary": "chat-bot", "caps": [imported("chat", "chat")] + kernel("timer")}
CHAT_BANNER = "[chat] /join <channel>, /leave, /who, /exit, or plain text"
CHAT_BOOK = [
    CHAT,
    BOT,
    terminal("term", caps=[imported("chat", "chat")]),
    client("client", "chat-client", "term", [imported("chat", "chat")]),
]
CHAT_BOOK_SCRIPT = [
    {"members": ["#lobby", 1]},  # the bot is in first, so it is member-1
    "hello from shell",
    {"await": "echo-bot heard you."},
    "/who",
    "/exit",
]
CHAT_BOOK_TRANSCRIPT = [
    CHAT_BANNER,
    "[chat:#lobby]> hello from shell",
    "[chat] #lobby <member-2> hello from shell",
    "[chat] #lobby <member-1> [chat-bot] echo-bot heard you.",
    "[chat:#lobby]> /who",
    "[chat] #lobby: <member-1> <member-2>",
    "[chat:#lobby]> /exit",
]


def test_chat_client_sees_its_line_and_the_bot_s_answer_once_each_as_in_the_book():
    with Demo(CHAT_BOOK, {"stdio": CHAT_BOOK_SCRIPT}) as demo:
        assert demo.transcript().splitlines() == CHAT_BOOK_TRANSCRIPT
        demo.healthy()


def test_two_chat_members_each_see_every_line_of_their_channels_exactly_once():
    services = [
        CHAT,
        terminal("term-a", "stdio-a", caps=[imported("chat", "chat")]),
        terminal("term-b", "stdio-b", caps=[imported("chat", "chat")]),
        client("client-a", "chat-client", "term-a", [imported("chat", "chat")], "stdio-a"),
        client("client-b", "chat-client", "term-b", [imported("chat", "chat")], "stdio-b"),
    ]
    # Each line waits for the one before it, so both transcripts are exact.
    scripts = {
        "stdio-a": [
            {"await": "<member-2> hello from b"},
            "/join #side",
            "psst",
            {"await": "<member-1> psst"},
            "/leave",
            "hi from a",
            {"await": "<member-2> bye"},
            "/exit",
        ],
        "stdio-b": [
            {"members": ["#lobby", 1]},  # after a joined: b is member-2
            "hello from b",
            {"await": "<member-1> hi from a"},
            "/who",
            "bye",
            {"await": "<member-2> bye"},
            "/exit",
        ],
    }
    with Demo(services, scripts) as demo:
        assert demo.transcript("stdio-a").splitlines() == [
            CHAT_BANNER,
            "[chat] #lobby <member-2> hello from b",
            "[chat:#lobby]> /join #side",
            "[chat] joined #side",
            "[chat:#side]> psst",
            "[chat] #side <member-1> psst",
            "[chat:#side]> /leave",
            "[chat] left #side",
            "[chat:#lobby]> hi from a",
            "[chat] #lobby <member-1> hi from a",
            "[chat] #lobby <member-2> bye",
            "[chat:#lobby]> /exit",
        ]
        assert demo.transcript("stdio-b").splitlines() == [  # b never joined #side
            CHAT_BANNER,
            "[chat:#lobby]> hello from b",
            "[chat] #lobby <member-2> hello from b",
            "[chat] #lobby <member-1> hi from a",
            "[chat:#lobby]> /who",
            "[chat] #lobby: <member-1> <member-2>",
            "[chat:#lobby]> bye",
            "[chat] #lobby <member-2> bye",
            "[chat:#lobby]> /exit",
        ]
        demo.healthy()


def test_chat_client_refuses_overlong_and_control_character_lines_but_keeps_going():
    services = [
        CHAT,
        terminal("term"),
        client("client", "chat-client", "term", [imported("chat", "chat")]),
    ]
    script = ["x" * 1500, "bell\x07", "/join", "/join #BAD", "/nonsense", "/leave", "hi", "/exit"]
    with Demo(services, {"stdio": script}) as demo:
        assert demo.transcript().splitlines() == [
            CHAT_BANNER,
            "[chat:#lobby]> " + "x" * 1500,
            "[chat] refused: message is over 1024 bytes",
            "[chat:#lobby]> bell\x07",
            "[chat] refused: message has control characters",
            "[chat:#lobby]> /join",
            "[chat] usage: /join #channel",
            "[chat:#lobby]> /join #BAD",
            "[chat] refused: bad channel name '#BAD': use '#' and 1-32 of a-z 0-9 . _ - "
            "(like #lobby)",
            "[chat:#lobby]> /nonsense",
            "[chat] unknown command /nonsense",
            CHAT_BANNER,
            "[chat:#lobby]> /leave",
            "[chat] left #lobby",
            "[chat]> hi",
            "[chat] not in a channel: /join #lobby",
            "[chat]> /exit",
        ]
        demo.healthy()


# --- paperclips ---------------------------------------------------------------------------

PAPERCLIPS = server("paperclips", "paperclips-server", "paperclips", "PaperclipsGame")
BOOK_SCRIPT = ["status", "buy marketing", "make", "make 100", "buy autoclipper", "status"]
BOOK_SCRIPT += ["run 3", "projects", "exit"]


def test_paperclips_book_script_against_the_server_gives_exact_numbers():
    services = [
        PAPERCLIPS,  # no timer: the clock stands still, so only `run 3` ticks
        terminal("term"),
        client("client", "paperclips", "term", [imported("game", "paperclips", "paperclips")]),
    ]
    with Demo(services, {"stdio": BOOK_SCRIPT}) as demo:
        out = demo.transcript()
        in_order(
            out,
            "[paperclips]> status",
            "[paperclips] tick 0",
            "  clips     0 made, 0 unsold",
            "  funds     $0.00   price $0.25   demand 10 a tick",
            "[paperclips]> buy marketing",
            "[paperclips] Marketing level 2 costs $10.00; you have $0.00.",
            "[paperclips]> make",
            "[paperclips] Made 1 clip.",
            "[paperclips]> make 100",
            "[paperclips] Made 100 clips.",
            "[paperclips]> buy autoclipper",
            "[paperclips] An autoclipper costs $5.00; you have $0.00.",
            "[paperclips]> status",
            "  clips     101 made, 101 unsold",
            "  wire      899 inches (1000 for $15.00)",
            "[paperclips]> run 3",
            "[paperclips] Ran 3 ticks: made 0 clips, sold 30 for $7.50.",
            "[paperclips]> projects",
            "[paperclips] projects:",
            "[paperclips]> exit",
        )
        assert re.search(r"^  1  Improved AutoClippers +500 ops +available ", out, re.M)
        assert re.search(r"^  3  Wire Drones +1,500 ops \+ \$100\.00 +locked ", out, re.M)
        demo.healthy()


def test_paperclips_help_comes_from_the_server_and_a_blank_line_repeats():
    services = [
        PAPERCLIPS,
        terminal("term"),
        client("client", "paperclips", "term", [imported("game", "paperclips", "paperclips")]),
    ]
    script = ["help", "make 2", "", "make 5000", "sell -3", "buy spaceship", "frobnicate", "exit"]
    with Demo(services, {"stdio": script}) as demo:
        out = demo.transcript()
        in_order(
            out,
            "[paperclips] commands:",
            "  buy drone        harvests 100 inches of wire a tick (locked)",
            "[paperclips]> make 2",
            "[paperclips] Made 2 clips.",
            "[paperclips]> ",
            "[paperclips] Made 2 clips.",
            "[paperclips] make: the count must be a whole number from 1 to 1,000, not 5000",
            "[paperclips] sell: n must be a whole number, not '-3'",
            "[paperclips] buy what? wire <n>, or one of "
            "autoclipper|marketing|processor|memory|drone|factory|probe",
            "[paperclips] unknown command 'frobnicate': try help",
        )
        demo.healthy()


def test_paperclips_without_a_game_cap_plays_locally_as_the_book_launches_it():
    # run "paperclips" with { stdio: client @stdio, timer: @timer }
    services = [terminal("term"), client("client", "paperclips", "term", kernel("timer"))]
    with Demo(services, {"stdio": ["make 7", "status", "exit"]}) as demo:
        out = demo.transcript()
        in_order(out, "[paperclips] Made 7 clips.", "[paperclips]> status")
        assert re.search(r"^  clips     7 made, \d unsold$", out, re.M)
        demo.healthy()


def test_two_paperclips_visitors_have_separate_games():
    game = [imported("game", "paperclips", "paperclips")]
    services = [
        PAPERCLIPS,
        terminal("term-a", "stdio-a"),
        terminal("term-b", "stdio-b"),
        client("client-a", "paperclips", "term-a", game, "stdio-a"),
        client("client-b", "paperclips", "term-b", game, "stdio-b"),
    ]
    scripts = {"stdio-a": ["make 40", "status", "exit"], "stdio-b": ["make 3", "status", "exit"]}
    with Demo(services, scripts) as demo:
        assert "  clips     40 made, 40 unsold" in demo.transcript("stdio-a")
        assert "  clips     3 made, 3 unsold" in demo.transcript("stdio-b")
        demo.healthy()


# --- adventure ----------------------------------------------------------------------------

ADVENTURE = server("adventure", "adventure-server", "adventure", "Adventure")
LANDING = [
    "[adventure] Frontier Landing",
    "  A dusty landing field at the edge of the Aurelian Frontier. A signpost leans in the wind.",
    "  Exits: north, east, west",
    "  You see: lantern",
    "  Here: signpost",
]
ARRIVAL = [  # what a new expedition's client shows first
    "[adventure] Aurelian Frontier: a capOS expedition.",
    "[adventure] The old beacon on the frontier has been dark for a generation. Light it again.",
    "[adventure] Commands: look, go <dir>, take <thing>, inspect <thing>, "
    "use <thing> [on <thing>], inventory, status, resume, restart, help, exit.",
    *LANDING,
]
WALK = ["take lantern", "e", "take flint", "inspect stall", "use flint on lantern", "w"]
WALK += ["go west", "take blank writ", "take seal", "use seal on writ", "e", "n", "n"]
WALK += ["use writ on gate", "n", "e", "use dial", "w", "n", "use compass on beacon"]


def test_adventure_client_walks_to_the_win():
    services = [
        ADVENTURE,
        terminal("term"),
        client("client", "adventure-client", "term", [imported("adventure", "adventure")]),
    ]
    script = ["look", *WALK, "inventory", "status", "resume", "exit"]
    with Demo(services, {"stdio": script}) as demo:
        out = demo.transcript()
        in_order(
            out,
            "[adventure] Aurelian Frontier: a capOS expedition.",
            "[adventure] Frontier Landing",
            "[adventure]> n",
            "[adventure] The gate is shut. The warden's slot waits for a writ.",
            "[adventure]> e",
            "[adventure] Sunken Vault",
            "[adventure]> use compass on beacon",
            "[adventure] You set the compass in the cradle. Its needle spins, the beacon roars "
            "alight, and the whole frontier sees it. You have won the expedition!",
            "[adventure]> inventory",
            "[adventure] Items: lantern (lit), flint",
            "[adventure] Writs: writ of passage",
            "[adventure] Relics: aurelian compass",
            "[adventure] Marks: Mark of the Lamplighter, Mark of Passage, Mark of the Beacon",
            "[adventure] Evidence: smuggler's tally",
            "[adventure]> status",
            "[adventure] Expedition 1, won, at Beacon Tower.",
            "[adventure]> resume",
            "[adventure] Resuming expedition 1 (18 moves).",
            "[adventure] Beacon Tower",
        )
        demo.healthy()


def test_two_adventurers_share_a_room_channel_but_not_an_expedition():
    caps = [imported("adventure", "adventure"), imported("chat", "chat")]
    services = [
        CHAT,
        ADVENTURE,
        terminal("term-a", "stdio-a"),
        terminal("term-b", "stdio-b", caps=[imported("chat", "chat")]),
        client("client-a", "adventure-client", "term-a", caps, "stdio-a"),
        client("client-b", "adventure-client", "term-b", caps, "stdio-b"),
    ]
    # Each line waits for the one before it, so both transcripts are exact.
    scripts = {
        "stdio-a": [
            {"await": "<member-2> here"},
            "take lantern",
            "say took-it",
            {"await": "<member-2> saw-it"},
            "exit",
        ],
        "stdio-b": [
            {"members": ["#r.landing", 1]},  # a is in the room first: a is member-1
            "say here",
            {"await": "<member-1> took-it"},
            "look",
            "say saw-it",
            {"await": "<member-2> saw-it"},
            "exit",
        ],
    }
    with Demo(services, scripts) as demo:
        assert demo.transcript("stdio-a").splitlines() == [
            *ARRIVAL,
            "[room] <member-2> here",
            "[adventure]> take lantern",
            "[adventure] Taken: lantern.",
            "[adventure]> say took-it",
            "[room] <member-1> took-it",
            "[room] <member-2> saw-it",
            "[adventure]> exit",
        ]
        assert demo.transcript("stdio-b").splitlines() == [
            *ARRIVAL,
            "[adventure]> say here",
            "[room] <member-2> here",
            "[room] <member-1> took-it",
            "[adventure]> look",
            *LANDING,  # b's own expedition: the lantern is still there
            "[adventure]> say saw-it",
            "[room] <member-2> saw-it",
            "[adventure]> exit",
        ]
        demo.healthy()


# --- counter ------------------------------------------------------------------------------

COUNTER = server("counter", "counter-server", "counter", "Counter")


def test_counter_client_increments_and_gets():
    services = [
        COUNTER,
        terminal("term"),
        client("client", "counter", "term", [imported("counter", "counter")]),
    ]
    script = ["get", "inc", "inc 41", "get", "inc 0", "inc -1", "inc 99999999999", "dance"]
    with Demo(services, {"stdio": script}) as demo:  # ends at end of input
        out = demo.transcript()
        assert out.splitlines() == [
            "[counter] inc [n], get, exit",
            "[counter]> get",
            "[counter] 0",
            "[counter]> inc",
            "[counter] 1",
            "[counter]> inc 41",
            "[counter] 42",
            "[counter]> get",
            "[counter] 42",
            "[counter]> inc 0",
            "[counter] increment by 1 to 1,000,000, not 0",
            "[counter]> inc -1",
            "[counter] inc takes a whole number, like inc 5",
            "[counter]> inc 99999999999",
            "[counter] inc takes a whole number, like inc 5",
            "[counter]> dance",
            "[counter] inc [n], get, exit",
            "[counter]> ",
        ]
        demo.healthy()


# --- hostile callers ----------------------------------------------------------------------


def test_servers_refuse_hostile_calls_and_keep_serving():
    services = [
        CHAT,
        PAPERCLIPS,
        ADVENTURE,
        COUNTER,
        {
            "name": "prober",
            "binary": "prober",
            "caps": kernel("console")
            + [
                imported("chat", "chat"),
                imported("game", "paperclips", "paperclips"),
                imported("adventure", "adventure"),
                imported("counter", "counter"),
            ],
        },
    ]
    with Demo(services, {}) as demo:
        deadline = time.monotonic() + 10
        while b"prober: done" not in demo.host.console:
            assert time.monotonic() < deadline, demo.host.console.decode()
            time.sleep(0.01)
        lines = dict(
            line.split(": ", 1) for line in demo.host.console.decode().splitlines() if ": " in line
        )
        assert lines["chat oversized"] == "invalidArgument: params of 20048 bytes are too large"
        assert lines["chat bad channel"].startswith("invalidArgument: bad channel name")
        assert lines["chat unknown method"] == "unimplemented: Chat has no method @42"
        assert lines["counter garbage params"].startswith("invalidArgument: malformed params")
        assert lines["counter zero"].startswith("invalidArgument: increment by 1")
        assert lines["game huge make"].startswith("invalidArgument: make: the count must be")
        assert lines["game bad enum"].startswith("invalidArgument: nothing called '99'")
        assert lines["game long command"] == "invalidArgument: command: at most 256 bytes"
        assert lines["adventure long name"] == "invalidArgument: a name is at most 64 bytes"
        assert lines["counter after"] == "ok 2"
        assert lines["chat after"] == "ok []"
        assert lines["game after"] == "ok 0"
        assert lines["adventure after"] == "ok 'landing'"
        demo.healthy()


# --- the native host ----------------------------------------------------------------------


@pytest.mark.native
def test_chat_book_transcript_on_the_native_host_with_isolated_processes():
    from kernel.hosts.native import NativeHost

    document = Demo.document(CHAT_BOOK, {"stdio": CHAT_BOOK_SCRIPT})
    console: list[str] = []
    with NativeHost(
        encode_document(document), console=lambda p, d: console.append(d.decode())
    ) as host:
        host.boot()
        host.run(until=lambda: "--- end stdio ---" in "".join(console), timeout=20)
        assert transcript_in("".join(console), "stdio").splitlines() == CHAT_BOOK_TRANSCRIPT
        assert host.kernel.faults == []
