"""Faults injected into a live service, shared by the fault tests and `bench faults`.

The service: replica A hosts QEMU sessions (bystanders, each with a client attached)
and a tab session relayed through it; replica B hosts nothing and shows the tab
session to a viewer through a share link, through Redis. Each scenario breaks one
thing with the real component (SIGKILL to a QEMU or to redis-server, a guest that
sends an unreadable control frame or exits with input unread, a disk that refuses a
recording's writes), then checks what a user would: the broken thing ended (or
degraded) with a reason the API, the page and `/healthz` show; every bystander
session still echoes a keystroke; no byte the host produced was lost or repeated.

`capos-playground bench faults` runs them all and reports (bench/results/faults.json):
  faults_injected          scenarios run
  sessions_lost_unrelated  bystander sessions that ended or stopped echoing (target 0)
  bytes_lost               bytes a viewer or owner never got, or got twice (target 0)
  recovery_ms_<fault>      the fault to the service working again: for Redis, redis-server
                           back to the viewer on the other replica getting new output;
                           for the others, the fault to its session (or recording) ending
                           with the reason shown (the guest that exits with input unread
                           waits a second on purpose before it does: that second is in it)
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.sync.client import ClientConnection, connect

from bench.figures import Targets, report
from bench.liveserver import ONE_ADDRESS_RIG, LiveServer, live_server
from bench.poolserver import PoolServer, TerminalClient
from bench.redisserver import RedisProcess, redis_process
from kernel.hosts.models.settings import ModelSettings
from server.hosting import QemuHosting
from server.image import with_init
from server.sessions.qemu import QemuSession
from server.settings import QemuSettings, RecordingLimits, Settings
from server.stream import OutputStream

GUESTS = Path(__file__).with_name("guests")
TARGETS: Targets = {"sessions_lost_unrelated": ("<=", 0), "bytes_lost": ("<=", 0)}
BYSTANDERS = 4


@dataclass
class Fault:
    """What one scenario found."""

    name: str
    reason: str  # what the user was told (the session's or recording's reason, or /healthz)
    recovery_ms: float
    bytes_lost: int = 0
    details: dict = field(default_factory=dict)


# --- the service ---------------------------------------------------------------------------


@dataclass
class Service:
    """Two replicas through one Redis; A hosts QEMU sessions and a tab session, B views."""

    redis: RedisProcess
    a: LiveServer
    b: LiveServer
    data_a: Path
    bystanders: list[TerminalClient] = field(default_factory=list)

    @property
    def pool_a(self) -> PoolServer:
        return PoolServer(None, self.a.port)

    def check_bystanders(self) -> int:
        """How many bystander sessions no longer answer a keystroke."""
        lost = 0
        for n, client in enumerate(self.bystanders):
            try:
                client.command(f"bystander{n}")
            except (AssertionError, TimeoutError, OSError) as exc:
                print(f"  bystander {n} lost: {exc}", file=sys.stderr)
                lost += 1
        return lost


def quiet_settings(
    data_dir: Path,
    redis_url: str | None = None,
    qemu: QemuSettings | None = None,
    recording_limits: RecordingLimits | None = None,
) -> Settings:
    """A server without the model (no fault here needs it, and it is slow to open) whose
    one client (this process, on one address) may run every session of the service."""
    return Settings(
        data_dir=data_dir,
        redis_url=redis_url,
        qemu=qemu,
        recording_limits=recording_limits or RecordingLimits(),
        model=ModelSettings(disabled=True),
        admission=ONE_ADDRESS_RIG,
    )


@contextlib.contextmanager
def service(bystanders: int = BYSTANDERS, max_vms: int = 8) -> Iterator[Service]:
    """The service above, with `bystanders` QEMU sessions on A, each with a client."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(redis_process())
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="capos-faults-")))
        qemu = QemuSettings(warm=1, max_vms=max_vms)
        a = stack.enter_context(
            live_server(quiet_settings(data / "a", redis_url=redis.url, qemu=qemu))
        )
        b = stack.enter_context(live_server(quiet_settings(data / "b", redis_url=redis.url)))
        up = Service(redis, a, b, data / "a")
        for _ in range(bystanders):
            client = TerminalClient(up.pool_a, up.pool_a.new_session())
            stack.callback(client.close)
            client.read_prompt()
            up.bystanders.append(client)
        yield up


def wait(predicate: Callable[[], object], what: str, timeout: float = 60) -> float:
    """Poll until `predicate()` is true; the monotonic time it became so."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return time.monotonic()


def health(server: LiveServer) -> tuple[int, dict]:
    response = httpx.get(server.base + "/healthz", timeout=10)
    return response.status_code, response.json()


def session_state(server: LiveServer, session_id: str) -> dict:
    return httpx.get(f"{server.base}/api/sessions/{session_id}", timeout=10).json()


# --- QEMU faults ---------------------------------------------------------------------------


def kill_qemu(up: Service) -> Fault:
    """SIGKILL to one session's QEMU while the bystanders' VMs serve."""
    victim = up.pool_a.new_session()
    client = TerminalClient(up.pool_a, victim)
    client.read_prompt()
    session = up.a.state["directory"].get(victim["id"], QemuSession)
    killed = time.monotonic()
    os.kill(session.vm.pid, signal.SIGKILL)
    reason = client.read_exit()
    ended = wait(lambda: session_state(up.a, victim["id"])["state"] == "ended", "the end")
    client.close()
    return Fault("kill_qemu", reason, (ended - killed) * 1000)


async def _adopt_guest(hosting: QemuHosting, init: str, where: Path) -> str:
    """A session on a VM booted from a misbehaving guest, in the same pool as the rest."""
    pool = hosting.pool
    image = with_init(pool.image, init, where)
    vm = pool.start(OutputStream(pool.config.scrollback), serve_model=False, image=image)
    return hosting.adopt(vm).id


def misbehaving_guest(up: Service, name: str, script: str, flood: bool) -> Fault:
    """A guest started in the pool that breaks its channel once a key is pressed."""
    where = Path(tempfile.mkdtemp(prefix="capos-guest-"))
    hosting: QemuHosting = up.a.state["hosting"]
    init = (GUESTS / script).read_text()
    session_id = up.a.run(_adopt_guest(hosting, init, where))
    session = {"id": session_id, "terminal": f"/api/sessions/{session_id}/terminal"}
    client = TerminalClient(up.pool_a, session)
    client.read_prompt(timeout=120)
    triggered = time.monotonic()
    client.send(type="input", data="x")
    if flood:  # bytes the guest will never read, on the terminal and the control channel
        client.send(type="input", data="unread " * 2000)
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{up.a.base}/api/sessions/{session_id}/monitor", timeout=10)
    reason = client.read_exit(timeout=60)
    ended = wait(lambda: session_state(up.a, session_id)["state"] == "ended", "the end")
    client.close()
    with contextlib.suppress(OSError):
        for file in where.iterdir():
            file.unlink()
        where.rmdir()
    return Fault(name, reason, (ended - triggered) * 1000)


# --- Redis ---------------------------------------------------------------------------------


class Relay:
    """The owner's tab on replica A, as its relay socket: it writes output at offsets."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.tab = httpx.post(server.base + "/api/tabs", timeout=10).json()
        port = server.port
        self.ws: ClientConnection = connect(f"ws://127.0.0.1:{port}{self.tab['relay']}")
        assert json.loads(self.ws.recv(10))["type"] == "resume"
        self.offset = 0
        self.written = ""

    def write(self, text: str) -> None:
        self.ws.send(json.dumps({"type": "output", "offset": self.offset, "data": text}))
        self.offset += len(text.encode())
        self.written += text

    def share(self, mode: str = "view") -> httpx.Response:
        path = f"/api/sessions/{self.tab['id']}/shares"
        return httpx.post(self.server.base + path, json={"mode": mode}, timeout=10)

    def close(self) -> None:
        self.ws.close()


def restart_redis(up: Service, outage_s: float = 3.0) -> Fault:
    """SIGKILL to redis-server under two replicas, output written meanwhile, then back."""
    relay = Relay(up.a)
    viewer = _viewer_on(up.b, relay.share().json())
    doomed_share = relay.share().json()  # revoked while Redis is away
    doomed = _viewer_on(up.b, doomed_share)
    try:
        relay.write("before the outage\r\n")
        viewer.read_until(lambda: "before the outage" in viewer.text, "output before")
        doomed.read_until(lambda: "before the outage" in doomed.text, "output before")
        up.redis.kill()
        wait(lambda: health(up.a)[0] == 503, "/healthz to say Redis is down", timeout=15)
        status, down = health(up.a)
        refused = relay.share()  # a link needs Redis: refused plainly meanwhile
        revoke = f"{up.a.base}/api/sessions/{relay.tab['id']}/shares/{doomed_share['id']}"
        revoked = httpx.delete(revoke, timeout=10)
        unknown = httpx.get(f"{up.b.base}/s/{'x' * 43}", timeout=10)  # B cannot tell: 503
        for n in range(int(outage_s * 10)):
            relay.write(f"during the outage {n}\r\n")
            time.sleep(0.1)
        up.redis.start()
        back = time.monotonic()
        relay.write("after the outage\r\n")
        flowing = None
        deadline = time.monotonic() + 60
        while "after the outage" not in viewer.text and time.monotonic() < deadline:
            viewer.next_frame(timeout=max(0.1, deadline - time.monotonic()))
            if flowing is None and "during the outage" in viewer.text:
                flowing = time.monotonic()
        recovered = flowing or time.monotonic()
        wait(lambda: health(up.a)[0] == 200, "/healthz to say Redis is back", timeout=15)
        cut_off = doomed.read_exit(timeout=30)  # the revocation reached the other replica
        lost = _lost(relay.written, viewer.text)
        details = {
            "healthz_while_down": down.get("down"),
            "share_while_down": [refused.status_code, refused.json().get("error", "")],
            "revoke_while_down": [revoked.status_code, revoked.json().get("error", "")],
            "revoked_viewer_on_b": cut_off,
            "unknown_link_on_b_while_down": unknown.status_code,
            "tab_state_after": httpx.get(f"{up.a.base}/api/tabs/{relay.tab['id']}").json()["state"],
        }
        reason = f"/healthz {status}: {down['parts']['redis'].get('detail', '')}"
        return Fault("redis_restart", reason, (recovered - back) * 1000, lost, details)
    finally:
        viewer.close()
        doomed.close()
        relay.close()


def _viewer_on(server: LiveServer, share: dict) -> TerminalClient:
    """A viewer of `share` connected to `server` (any replica)."""
    token = share["url"].split("/s/", 1)[1]
    return TerminalClient(PoolServer(None, server.port), {"terminal": f"/s/{token}/terminal"})


def _lost(written: str, seen: str) -> int:
    """Bytes the host wrote that the viewer did not get in order (0 when it got them all)."""
    if seen == written:
        return 0
    common = 0
    for mine, theirs in zip(written, seen, strict=False):
        if mine != theirs:
            break
        common += 1
    return len(written.encode()) - len(written[:common].encode())


# --- storage -------------------------------------------------------------------------------


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """RLIMIT_FSIZE for this process: a write past `limit` bytes fails (EFBIG; CPython
    ignores SIGXFSZ), as writes on a full disk do."""
    before = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, before)


def recording_disk_full(server: LiveServer, limit: int = 2 * 1024 * 1024) -> Fault:
    """A recording whose writes the disk refuses: it stops with a marker, the session goes on."""
    relay = Relay(server)
    try:
        path = f"{server.base}/api/sessions/{relay.tab['id']}/recordings"
        recording = httpx.post(path, json={}, timeout=10).json()
        recordings = server.state["hub"].recordings
        cast = recordings.path(recordings.recordings[recording["id"]])
        chunk = "x" * 60_000 + "\r\n"
        line = len(json.dumps([0.0, "o", chunk])) + 8  # what one chunk adds to the cast, at most
        refused_at: float | None = None
        with file_size_limit(limit):
            # One chunk at a time, each recorded before the next, until one cannot be:
            # the recording's stop is timed from the write the disk refuses.
            while _recording(server, relay, recording["id"])["recording"]:
                size = cast.stat().st_size
                if size + line > limit and refused_at is None:
                    refused_at = time.monotonic()
                relay.write(chunk)
                with contextlib.suppress(TimeoutError):
                    wait(lambda s=size: cast.stat().st_size != s, "the chunk recorded", 5)
                if relay.offset > 16 * limit:
                    raise AssertionError("the recording never stopped at the disk's limit")
            stopped = time.monotonic()
        info = _recording(server, relay, recording["id"])
        lines = cast.read_text().splitlines()
        relay.write("still here\r\n")
        tab = httpx.get(f"{server.base}/api/tabs/{relay.tab['id']}", timeout=10).json()
        details = {
            "last_line": lines[-1][:120],
            "every_line_parses": all(_parses(line) for line in lines),
            "session_state": tab["state"],
            "session_output_offset": tab["output_offset"],
        }
        recovery = (stopped - (refused_at or stopped)) * 1000
        return Fault("recording_disk_full", info["reason"], recovery, 0, details)
    finally:
        relay.close()


def _recording(server: LiveServer, relay: Relay, recording_id: str) -> dict:
    path = f"{server.base}/api/sessions/{relay.tab['id']}/recordings"
    listed = httpx.get(path, timeout=10).json()["recordings"]
    return next(r for r in listed if r["id"] == recording_id)


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def disk_floor_refusal(data_dir: Path) -> tuple[int, str]:
    """A new recording on a server whose disk is under its free-space floor."""
    floor = RecordingLimits(min_free_mib=10**9)
    with live_server(quiet_settings(data_dir, recording_limits=floor)) as server:
        relay = Relay(server)
        try:
            path = f"{server.base}/api/sessions/{relay.tab['id']}/recordings"
            refused = httpx.post(path, json={}, timeout=10)
            return refused.status_code, refused.json()["error"]
        finally:
            relay.close()


# --- the benchmark -------------------------------------------------------------------------


def run_benchmark(json_path: str | None, quick: bool = False) -> int:
    faults: list[Fault] = []
    lost_unrelated = 0
    print("bench faults: starting two replicas, Redis and the QEMU pool...", file=sys.stderr)
    with service(bystanders=2 if quick else BYSTANDERS) as up:
        scenarios: list[tuple[str, Callable[[], Fault]]] = [
            ("kill -9 of one QEMU", lambda: kill_qemu(up)),
            (
                "a guest sends an unreadable control frame",
                lambda: misbehaving_guest(up, "guest_garbage", "garbage_control.py", False),
            ),
            (
                "a guest exits with input unread",
                lambda: misbehaving_guest(up, "guest_exit_unread", "exit_unread.py", True),
            ),
            (
                "redis-server killed and restarted",
                lambda: restart_redis(up, outage_s=3.0 if quick else 10.0),
            ),
            ("a recording's disk refuses writes", lambda: recording_disk_full(up.a)),
        ]
        for what, scenario in scenarios:
            print(f"  {what}...", file=sys.stderr, flush=True)
            fault = scenario()
            lost = up.check_bystanders()
            lost_unrelated += lost
            faults.append(fault)
            print(
                f"    -> {fault.reason[:100]!r}; {fault.recovery_ms:.0f} ms; "
                f"bytes lost {fault.bytes_lost}; bystanders lost {lost}",
                file=sys.stderr,
            )
        status = health(up.a)[0]
    figures: dict[str, float | None] = {
        "faults_injected": len(faults),
        "sessions_lost_unrelated": lost_unrelated,
        "bytes_lost": sum(f.bytes_lost for f in faults),
    }
    figures.update({f"recovery_ms_{f.name}": round(f.recovery_ms, 1) for f in faults})
    return report(
        figures,
        TARGETS,
        json_path,
        quick=quick,
        bystanders=2 if quick else BYSTANDERS,
        healthz_after=status,
        faults={f.name: {"reason": f.reason, **f.details} for f in faults},
    )
