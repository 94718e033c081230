"""The native shell, driven as a user would: a script on its terminal.

These boot the default system on the in-process host with a script
terminal (fast); tests/test_shell_native.py drives the real
`capos-playground shell` through a pipe and a pseudo-terminal.
"""

from __future__ import annotations

import hashlib
import time

import pytest

from kernel.hosts.inproc import InProcessHost
from kernel.manifest import default_manifest, encode_document, load_document

GUEST = "guest: now guest (guest); type caps to see what you hold"
TEST_BINARIES = {
    "greeter": "tests.programs.greeter",
    "sleeper": "tests.programs.sleeper",
    "quick": "tests.programs.quick",
}


def shell_session(
    script: str, *, timeout: float = 20.0, hang_up: bool = True, guest: bool = False
) -> str:
    """Type `script` into a fresh system's shell; return everything it showed.

    `guest`: type `guest` first and wait for the demo bundle, as a visitor does, so
    that a Ctrl-C in `script` is not taken while `guest` runs."""
    document = load_document(default_manifest())
    document["binaries"] += [{"name": n, "module": m} for n, m in TEST_BINARIES.items()]
    host = InProcessHost(encode_document(document), terminal=False)
    host.boot()
    try:
        if guest:
            host.type(b"guest\n")
            deadline = time.monotonic() + timeout
            while GUEST.encode() not in host.screen:
                if time.monotonic() > deadline:
                    pytest.fail(f"guest did not answer; the shell showed:\n{host.screen.decode()}")
                time.sleep(0.01)
        host.type(script.encode())
        if hang_up:
            host.hang_up()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shells = [p for p in host.started if p.binary == "shell"]
            if shells and not shells[0].alive:
                break
            time.sleep(0.01)
        else:
            pytest.fail(f"the shell did not exit; it showed:\n{host.screen.decode()}")
        assert host.crashes == {}, host.crashes
        assert host.kernel.faults == []
        return host.screen.decode()
    finally:
        host.shutdown()


MOTD = load_document(default_manifest())["kernelParams"]["motd"].rstrip("\n") + "\n"


def after_motd(screen: str) -> list[str]:
    assert screen.startswith(MOTD), screen
    return screen[len(MOTD) :].splitlines()


def guest_session(script: str, *, hang_up: bool = True) -> str:
    """`shell_session` with `guest` typed first: the demo bundle, as a visitor's first step."""
    return shell_session(script, hang_up=hang_up, guest=True)


def after_guest(screen: str) -> list[str]:
    """The lines after the MOTD and the `guest` a script typed first (the demo bundle)."""
    lines = after_motd(screen)
    assert lines[0] == GUEST, lines
    return lines[1:]


def test_motd_comes_first_and_names_the_demo_commands():
    screen = shell_session("exit\n")
    assert screen.startswith("Welcome to capOS Playground")
    assert 'run "chat-client" with { stdio: client @stdio, chat: client @chat }' in screen


def test_caps_lists_every_cap_the_shell_holds_with_interfaces_and_origin():
    lines = after_guest(
        guest_session(
            'spawn "sleeper" with { timer: @timer }\ncaps\n'
            'run "greeter" with { stdio: @terminal }\nkill\nexit\n'
        )
    )
    refusal = "terminal is the shell's own: it never passes it on"
    assert refusal in lines
    own = lines.index("The shell's own, never passed on:")
    table = lines[lines.index(next(x for x in lines if x.startswith("NAME"))) : own]
    assert table[0].split() == ["NAME", "INTERFACE", "ORIGIN"]
    rows = {line.split()[0]: line.split()[1:] for line in table[1:]}
    own_rows = {line.split()[0]: line.split()[1:] for line in lines[own + 2 : lines.index(refusal)]}
    assert rows["timer"] == ["Timer", "bundle", "(guest)"]
    assert rows["launcher"] == ["ProcessSpawner", "bundle", "(guest)"]
    assert "chat" not in rows  # offered to operator sessions only
    assert own_rows["terminal"] == ["TerminalSession", "spawn"]
    assert own_rows["sessionManager"] == ["SessionManager", "spawn"]
    assert rows["%1"] == ["ProcessHandle", "job", "(sleeper)"]


def test_anonymous_holds_what_the_book_gives_and_guest_brings_the_demo_bundle():
    lines = after_motd(
        shell_session('caps\nrun "counter" with { stdio: client @stdio }\nguest\ncaps\nexit\n')
    )
    own = lines.index("The shell's own, never passed on:")
    anonymous = {line.split()[0]: line.split()[1:] for line in lines[1:own]}
    assert anonymous == {
        "manual": ["Manual", "bundle", "(anonymous)"],
        "session": ["UserSession", "bundle", "(anonymous)"],
        "systemInfo": ["SystemInfo", "bundle", "(anonymous)"],
    }
    assert lines[own + 2].split() == ["terminal", "TerminalSession", "spawn"]
    refused = "run: this session holds no launcher (try setup, login or guest)"
    assert refused in lines
    after = lines[lines.index(GUEST) + 2 :]
    table = after[: after.index("The shell's own, never passed on:")]
    guest = {line.split()[0]: line.split()[1:] for line in table}
    for name in ("launcher", "monitor", "timer", "echo", "counter", "paperclips"):
        assert guest[name][1:] == ["bundle", "(guest)"], name
    assert "chat" not in guest and "adventure" not in guest


def test_methods_shows_parameter_and_result_types():
    lines = after_guest(guest_session("methods timer\nexit\n"))
    assert lines[0].startswith("timer.now() -> (ns :UInt64)")
    assert lines[1].startswith("timer.sleep(ns :UInt64) -> ()")


def test_typed_calls_are_checked_against_the_schema_before_sending():
    lines = after_guest(
        guest_session(
            "timer.now()\n"
            "timer.nw()\n"
            'timer.sleep(ns="soon")\n'
            "timer.sleep()\n"
            "timer.sleep(ns=1, extra=2)\n"
            "timer.sleep(ns=-1)\n"
            "nosuch.now()\n"
            "exit\n"
        )
    )
    assert lines[0].startswith("ns = ") and int(lines[0][5:]) > 0
    assert lines[1] == "Timer has no method 'nw' (did you mean now?) (it has: now, sleep)"
    assert lines[2] == 'timer.sleep: ns expects UInt64 (a whole number), got "soon"'
    assert lines[3] == "timer.sleep: missing parameter 'ns' (UInt64)"
    assert lines[4] == "timer.sleep has no parameter 'extra' (it takes: ns :UInt64)"
    assert lines[5] == "timer.sleep: ns: -1 is outside UInt64 (0..18446744073709551615)"
    assert lines[6] == "no cap named 'nosuch' in this shell: type caps"


def test_capexceptions_show_their_type():
    lines = after_guest(guest_session("entropy.getRandom(len=5000)\nexit\n"))
    assert lines[0] == "error: invalidArgument: at most 4096 bytes a call, not 5000"


def test_let_keeps_result_caps_and_release_gives_them_back():
    screen = guest_session(
        'let kid = launcher.spawn(name="k", binaryName="sleeper", '
        'grants=[{name: "timer", source: {cap: @timer}}])\n'
        "kid.status()\n"
        "release kid\n"
        "kid.status()\n"
        "let t = @timer\n"
        "t.now()\n"
        "exit\n"
    )
    lines = after_guest(screen)
    assert lines[0] == "kid = <ProcessHandle cap>"
    assert lines[1].startswith("status = { pid: ") and "running: (void)" in lines[1]
    assert lines[2] == "released kid"
    assert lines[3] == "no cap named 'kid' in this shell: type caps"
    assert lines[4] == "t = <Timer cap>"
    assert lines[5].startswith("ns = ")


def test_unkept_result_caps_are_released_and_the_user_is_told():
    lines = after_guest(
        guest_session('launcher.spawn(name="k", binaryName="quick", grants=[])\nexit\n')
    )
    assert lines[0].startswith("handle = <ProcessHandle cap>")
    assert lines[-1] == "(caps not kept: let NAME = launcher.spawn(...) keeps them)"


def test_run_serves_stdio_and_waits_for_the_child():
    lines = after_guest(
        guest_session('run "greeter" with { stdio: client @stdio }\nAda\nbye\ncaps\nexit\n')
    )
    assert lines[:3] == ["greeter ready", "hello, Ada!", "greeter: exit 3"]
    assert lines[3].startswith("NAME")


def test_child_reads_end_of_input_when_the_script_ends():
    lines = after_guest(guest_session('run "greeter" with { stdio: client @stdio }\nAda\n'))
    assert lines == ["greeter ready", "hello, Ada!", "greeter: end of input"]


def test_passphrase_reads_two_hidden_lines_and_never_shows_them():
    run = 'run "passphrase" with { stdio: client @stdio }\n'
    lines = after_guest(guest_session(f"{run}open sesame\nopen sesame\n{run}one\ntwo\nexit\n"))
    assert "passphrase: they match (11 characters)" in lines
    assert "passphrase: the two differ" in lines
    assert not any("sesame" in line for line in lines)


def test_spawn_runs_in_the_background_and_wait_brings_it_forward():
    lines = after_guest(
        guest_session('spawn "greeter" with { stdio: client @stdio }\nps\nwait %1\nBo\nbye\nexit\n')
    )
    assert lines[0].startswith("[1] greeter (pid ")
    assert "greeter ready" in lines
    ps = lines[lines.index("JOB  PID  STATE      BINARY") + 1]
    assert ps.split()[0] == "%1" and ps.split()[2:] == ["running", "greeter"]
    assert "hello, Bo!" in lines
    assert lines[-1] == "[1] greeter: exit 3"


def test_kill_ends_a_background_job():
    lines = after_guest(
        guest_session('spawn "sleeper" with { timer: @timer }\nkill %1\nps\nexit\n')
    )
    assert lines[0].startswith("[1] sleeper")
    assert any(line.startswith("[1] done  sleeper  (killed (killed by pid") for line in lines)
    assert lines[-1] == "no jobs"


def test_ctrl_c_kills_the_foreground_child_not_the_shell():
    lines = after_guest(
        guest_session('run "sleeper" with { timer: @timer }\n\x03caps\nexit\n', hang_up=False)
    )
    assert lines[0].startswith("sleeper: killed (killed by pid")
    assert lines[1].startswith("NAME")


def test_ctrl_c_interrupts_a_long_call():
    lines = after_guest(
        guest_session("timer.sleep(ns=60000000000)\n\x03caps\nexit\n", hang_up=False)
    )
    assert lines[0] == "timer.sleep: interrupted (its answer will be dropped)"
    assert lines[1].startswith("NAME")


def test_refused_grants_name_the_problem():
    lines = after_guest(
        guest_session(
            'run "greeter" with { stdio: client @stdio, x: @disk }\n'
            'run "greeter" with { stdio: client @stdio, t: client @timer }\n'
            'run "greeter" with { stdio: @stdio }\n'
            'run "nope"\n'
            'run "greeter" with { a: @timer, a: @timer }\n'
            "exit\n"
        )
    )
    assert lines[0] == "no cap named 'disk' in this shell: type caps"
    assert lines[1] == (
        "grant 't': client @timer needs an endpoint, but @timer is a Timer (pass it as @timer)"
    )
    assert lines[2].startswith("grant 'stdio': write client @stdio")
    assert lines[3].startswith("error: invalidArgument: no binary 'nope' in the boot package")
    assert lines[4] == "syntax error: grant 'a' is named twice"


def test_setup_login_guest_logout_swap_the_bundle():
    lines = after_motd(
        shell_session(
            "setup\nalice\nsecret\nsecret\n"
            "whoami\n"
            "logout\n"
            "whoami\n"
            "login\nalice\nsecret\n"
            "guest\n"
            "caps\n"
            "exit\n"
        )
    )
    assert lines[1] == "setup: now alice (operator); type caps to see what you hold"
    assert (
        lines[2].startswith("alice  profile=operator") and "via setup -> password-login" in lines[2]
    )
    assert lines[3] == "logout: back to anonymous; caps the old session granted are revoked"
    assert lines[4].startswith("(no account)  profile=anonymous")
    assert lines[5] == "login: now alice (operator); type caps to see what you hold"
    assert lines[6] == "guest: now guest (guest); type caps to see what you hold"
    rows = {line.split()[0]: line.split()[1:] for line in lines[8:]}
    assert rows["entropy"] == ["EntropySource", "bundle", "(guest)"]


def test_wrong_passwords_are_refused_then_rate_limited():
    lines = after_motd(
        shell_session(
            "setup\nbob\nright\nright\nlogout\n"
            + "login\nbob\nwrong\n" * 4
            + "login\nbob\nright\nexit\n"
        )
    )
    refusals = [line for line in lines if line.startswith("login:")]
    assert refusals[:3] == ["login: login incorrect"] * 3  # the third starts a delay
    assert refusals[3].startswith("login: too many failed logins: try again in ")
    assert refusals[4].startswith("login: too many")  # even the right password waits


def test_setup_refuses_mismatched_passwords_and_bad_names():
    lines = after_motd(
        shell_session("setup\ncarol\none\ntwo\nsetup\nNot Valid\npassword\npassword\nexit\n")
    )
    assert lines[1] == "setup: the passwords differ; nothing was created"
    assert lines[3].startswith("setup: a username is 1-32 of a-z 0-9 _ -")


def test_help_man_and_apropos():
    lines = after_motd(
        shell_session("help\nhelp run\nman Timer\napropos session\nman nosuch\nexit\n")
    )
    text = "\n".join(lines)
    assert "caps     [ext] list the caps this shell holds" in text
    assert 'run "BINARY" with { NAME: @CAP, NAME: client @CAP, ... }' in text
    assert "Timer(interfaces) - The monotonic clock" in text
    assert "now @0 () -> (ns :UInt64);" in text
    assert "SessionManager (interfaces) - Authentication proves" in text
    assert "man: no page 'nosuch'" in text


def test_syntax_errors_point_at_the_problem():
    lines = after_motd(shell_session('run "x" with { a }\nfoo\nexit\n'))
    assert lines[0] == "syntax error: expected ':' after the grant name 'a', found '}'"
    assert lines[1] == "unknown command 'foo': type help"


PAPERCLIPS_BOOK = [
    "status",
    "buy marketing",
    "make",
    "make 100",
    "buy autoclipper",
    "status",
    "run 3",
    "projects",
    "exit",
]
ADVENTURE_WALK = [
    "look",
    "take lantern",
    "e",
    "take flint",
    "inspect stall",
    "use flint on lantern",
    "w",
    "go west",
    "take blank writ",
    "take seal",
    "use seal on writ",
    "e",
    "n",
    "n",
    "use writ on gate",
    "n",
    "e",
    "use dial",
    "w",
    "n",
    "use compass on beacon",
    "inventory",
    "exit",
]


def test_paperclips_book_script_through_the_shell():
    screen = guest_session(
        'run "paperclips" with { stdio: client @stdio, game: client @paperclips }\n'
        + "\n".join(PAPERCLIPS_BOOK)
        + "\nexit\n"
    )
    lines = after_guest(screen)
    for expected in (
        "[paperclips] Marketing level 2 costs $10.00; you have $0.00.",
        "[paperclips] Made 1 clip.",
        "[paperclips] Made 100 clips.",
        "[paperclips] An autoclipper costs $5.00; you have $0.00.",
        "[paperclips] projects:",
    ):
        assert expected in lines
    assert any(line.startswith("[paperclips] Ran 3 ticks:") for line in lines)
    assert lines[-1].startswith("[paperclips]") or lines[-1].startswith("  ")


def test_adventure_walk_to_the_win_through_the_shell():
    screen = shell_session(
        "setup\nwren\nlantern\nlantern\n"
        'run "adventure-client" with { stdio: client @stdio, adventure: client @adventure }\n'
        + "\n".join(ADVENTURE_WALK)
        + "\nexit\n"
    )
    assert "You have won the expedition!" in screen
    assert "[adventure] Relics: aurelian compass" in screen


def test_grants_that_do_not_fit_the_binary_are_refused_naming_them():
    lines = after_guest(
        guest_session(
            'run "counter" with { stdio: client @stdio, counter: client @paperclips }\n'
            'run "counter" with { stdio: client @stdio }\n'
            'run "counter" with { stdio: client @stdio, counter: client @counter, t: @timer }\n'
            "exit\n"
        )
    )
    assert lines == [
        "error: invalidArgument: grant 'counter' is a PaperclipsGame; counter expects a Counter",
        "error: invalidArgument: counter needs counter (Counter)",
        "error: invalidArgument: counter takes no cap named 't' (it takes: stdio, counter)",
    ]


def test_chat_needs_the_operator_bundle():
    lines = after_guest(
        guest_session('run "chat-client" with { stdio: client @stdio, chat: client @chat }\nexit\n')
    )
    assert lines == ["no cap named 'chat' in this shell: type caps"]


def wait_for(host: InProcessHost, terminal: str, text: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while text.encode() not in host.screens[terminal]:
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not on {terminal}:\n{host.screens[terminal].decode()}")
        time.sleep(0.01)


def test_two_shells_talk_through_chat_as_two_members():
    document = load_document(default_manifest())
    second = next(s for s in document["initConfig"]["services"] if s["name"] == "shell").copy()
    second["name"] = "shell2"
    second["caps"] = [{"name": "terminal", "source": {"terminal": "terminal2"}}] + [
        c for c in second["caps"] if c["name"] != "terminal"
    ]
    document["initConfig"]["services"].append(second)
    host = InProcessHost(encode_document(document), terminal=False, extra_terminals=("terminal2",))
    host.boot()
    chat = 'run "chat-client" with { stdio: client @stdio, chat: client @chat }\n'
    try:
        host.type(("setup\nann\npw-ann\npw-ann\n" + chat).encode(), "terminal")
        wait_for(host, "terminal", "[chat] /join")
        host.type(("setup\nben\npw-ben\npw-ben\n" + chat).encode(), "terminal2")
        wait_for(host, "terminal2", "[chat] /join")
        host.type(b"hello from ann\n", "terminal")
        wait_for(host, "terminal2", "hello from ann")
        host.type(b"hi ann\n/who\n", "terminal2")
        wait_for(host, "terminal", "hi ann")
        wait_for(host, "terminal2", "[chat] #lobby: <member-1> <member-2> <member-3>")
        ann, ben = host.screens["terminal"].decode(), host.screens["terminal2"].decode()
        assert "[chat] #lobby <member-2> hello from ann" in ben  # a member, never a name
        assert "[chat] #lobby <member-3> hi ann" in ann
        assert "<ann>" not in ben and "<ben>" not in ann
        assert host.crashes == {} and host.kernel.faults == []
    finally:
        host.shutdown()


def test_history_lists_what_was_typed_and_clear_is_harmless_in_a_script():
    lines = after_guest(guest_session("timer.now()\nclear\nhistory\nexit\n"))
    # a script's lines are not user history: only an interactive terminal records them
    assert lines[0].startswith("ns = ")
    assert lines[1:] == []


def test_agent_says_plainly_when_no_language_model_is_held():
    lines = after_motd(shell_session("agent\nhelp agent\nexit\n"))
    assert lines[0].startswith("agent: this session holds no LanguageModel cap")
    assert "agent [CAP ...]" in "\n".join(lines)


def test_accounts_work_without_scrypt_as_in_a_browser_tab(monkeypatch):
    """Pyodide's Python has no OpenSSL: setup and login fall back to PBKDF2-HMAC-SHA256."""
    from kernel.services import credentials

    assert credentials.pbkdf2_sha256(b"pw", b"salt", 1000) == hashlib.pbkdf2_hmac(
        "sha256", b"pw", b"salt", 1000
    )
    long = b"p" * 100  # past the HMAC block size: the key is hashed first
    assert credentials.pbkdf2_sha256(long, b"s", 3) == hashlib.pbkdf2_hmac("sha256", long, b"s", 3)
    monkeypatch.delattr(hashlib, "scrypt")
    monkeypatch.setattr(credentials, "PBKDF2_ITERATIONS", 100)
    lines = after_motd(
        shell_session(
            "setup\nzed\nsecret\nsecret\nlogout\nlogin\nzed\nwrong\nlogin\nzed\nsecret\nexit\n"
        )
    )
    assert lines[1] == "setup: now zed (operator); type caps to see what you hold"
    assert "login: login incorrect" in lines
    assert lines[-1] == "login: now zed (operator); type caps to see what you hold"


def test_a_child_can_serve_a_new_endpoint_and_killing_it_revokes_its_clients():
    lines = after_guest(
        guest_session(
            'spawn "counter-server" with { counter: new Counter }\n'
            "counter2.increment(by=2)\n"
            "kill %1\n"
            "counter2.increment(by=1)\n"
            'spawn "counter-server" with { counter: new Nope }\n'
            "exit\n"
        )
    )
    assert lines[0].startswith("[1] counter-server (pid ")
    assert lines[1] == "counter2 = <Counter cap>: a client of what it serves as counter"
    assert lines[2] == "value = 2"
    assert lines[3].startswith("[1] done  counter-server  (killed")
    assert lines[4].startswith("error: disconnected: ")  # revoked with its server
    assert lines[5] == "new Nope: no interface 'Nope' in the schema"


def test_move_gives_a_cap_away_and_copy_keeps_it():
    lines = after_guest(
        guest_session(
            'spawn "paperclips-server" with { timer: @timer, paperclips: new PaperclipsGame }\n'
            "timer.now()\n"
            'spawn "paperclips-server" with { timer: move @timer, '
            "paperclips: new PaperclipsGame }\n"
            "timer.now()\n"
            "exit\n"
        )
    )
    assert (
        lines[1] == "paperclips2 = <PaperclipsGame cap>: a client of what it serves as paperclips"
    )
    assert lines[2].startswith("ns = ")  # a copy leaves the shell's cap in place
    assert lines[3] == "moved: timer is no longer held by this shell"
    assert lines[6] == "no cap named 'timer' in this shell: type caps"


def test_logout_revokes_the_caps_the_sessions_children_hold():
    lines = after_motd(
        guest_session(
            ""
            'spawn "counter" with { stdio: client @stdio, counter: client @counter }\n'
            "logout\n"
            "wait %1\n"
            "inc\n"
            "counter.increment(by=1)\n"
            "guest\n"
            "counter.increment(by=1)\n"
            "exit\n"
        )
    )
    text = "\n".join(lines)
    assert "logout: back to anonymous; caps the old session granted are revoked" in text
    assert "no cap named 'counter' in this shell: type caps" in text  # anonymous holds none
    # the child still runs, but the counter cap it was granted under the guest session is dead
    assert "[counter] the counter is gone: disconnected: ClientEndpoint of #" in text
    assert "revoked, the session that granted it logged out" in text
    # a new guest bundle is a fresh grant, untouched by the logout
    assert "value = 1" in text
