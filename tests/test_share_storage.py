"""What the disk keeps, against the real server: quotas on recordings, retention, and no
credential at rest (SQLite, Redis and the files' modes), plus the first schema's migration."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from bench.redisserver import redis_server
from bench.tab import serving
from server.cli import build_parser, recording_limits
from server.settings import MIB, RecordingLimits, Settings
from tests.asciicast import read_v3
from tests.test_share import Tab
from tests.test_share_restart import free_port, start_server

pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")

KIB = 1024
LINE = "z" * 1000 + "\r\n"


def wait_for(check: Callable[[], object], what: str, timeout: float = 10) -> object:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.05)
    return value


def record(tab: Tab, **body) -> httpx.Response:
    return httpx.post(f"{tab.base}/api/sessions/{tab.id}/recordings", json=body)


def fill(tab: Tab, recording: dict, data_dir: Path) -> dict:
    """Output, a line at a time (each recorded before the next), until the recording
    stops; then its info."""
    cast = data_dir / "recordings" / f"{recording['id']}.cast"
    for _ in range(200):
        size = cast.stat().st_size
        tab.write(LINE)
        deadline = time.monotonic() + 0.5
        while cast.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.005)
        if cast.stat().st_size == size:  # stopped: it records nothing more
            break
    return stopped(tab, recording["id"])


def stopped(tab: Tab, recording_id: str) -> dict:
    """The recording's info once it has stopped."""

    def info() -> dict | None:
        listed = httpx.get(f"{tab.base}/api/sessions/{tab.id}/recordings").json()["recordings"]
        found = next(r for r in listed if r["id"] == recording_id)
        return None if found["recording"] else found

    return wait_for(info, "the recording stopped")  # type: ignore[return-value]


def test_a_sessions_recordings_stop_at_its_quota_and_more_are_refused_with_429(tmp_path):
    limits = RecordingLimits(per_session=2, session_bytes=32 * KIB)
    with serving(Settings(data_dir=tmp_path, recording_limits=limits)) as base:
        tab = Tab(base)
        first = record(tab).json()
        info = fill(tab, first, tmp_path)
        assert "this session's recordings reached their limit of 0.03125 MiB" in info["reason"]
        assert 31 * KIB < info["size"] <= 32 * KIB + 300  # the limit, and the marker saying why
        assert "reached their limit" in httpx.get(base + first["cast"]).text.splitlines()[-1]
        refused = record(tab)
        assert refused.status_code == 429 and "retry-after" not in refused.headers
        assert "this session's recordings take" in refused.json()["error"]
        assert "delete some" in refused.json()["error"]

        other = Tab(base)  # the count: two kept, stopped or not
        kept = record(other).json()
        stop = f"{base}/api/sessions/{other.id}/recordings/{kept['id']}/stop"
        assert httpx.post(stop).status_code == 200
        assert record(other).status_code == 201
        third = record(other)
        assert third.status_code == 429 and "keeps 2 recordings" in third.json()["error"]
        url = f"{base}/api/sessions/{other.id}/recordings/{kept['id']}"
        assert httpx.delete(url).status_code == 204
        assert record(other).status_code == 201


@pytest.mark.parametrize(
    ("limits", "stop_reason", "status", "refusal"),
    [
        (
            RecordingLimits(client_bytes=32 * KIB),
            "the recordings started from this address reached their limit of 0.03125 MiB",
            429,
            "the recordings started from your address take",
        ),
        (
            RecordingLimits(server_bytes=32 * KIB),
            "the server's recordings reached all it keeps (0.03125 MiB)",
            507,
            "new recordings are refused until older ones expire",
        ),
    ],
    ids=["per-address", "per-server"],
)
def test_recordings_past_an_address_or_the_server_quota_stop_and_are_refused_until_some_expire(
    tmp_path, limits, stop_reason, status, refusal
):
    with serving(Settings(data_dir=tmp_path, recording_limits=limits)) as base:
        tab = Tab(base)
        first = record(tab, expires_in=100).json()
        assert stop_reason in fill(tab, first, tmp_path)["reason"]
        refused = record(Tab(base))  # another session: its own quota is not what is spent
        assert refused.status_code == status and refusal in refused.json()["error"]
        # the first recording expires in 100 s and the next sweep deletes it
        wait = int(refused.headers["retry-after"])
        assert 95 <= wait <= 100 + limits.sweep_interval_s + 1


def test_expired_recordings_and_links_are_swept_and_a_failing_sweep_is_retried(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    options = ["--sweep-interval", "0.2", "--expired-links-kept", "0"]
    server = start_server(tmp_path, port, *options, "--retention-days", str(60 / 86400))
    db = tmp_path / "capos.sqlite3"

    def rows(table: str) -> set[str]:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return {row[0] for row in conn.execute(f"SELECT id FROM {table}")}

    try:
        tab = Tab(base)
        too_long = record(tab, expires_in=120)
        assert too_long.status_code == 400 and "1 to 60" in too_long.json()["error"]
        kept = record(tab).json()
        assert abs(kept["expires_at"] - (time.time() + 60)) < 5  # the retention, by default
        share, recording = tab.share("view", expires_in=1), record(tab, expires_in=1).json()
        cast = tmp_path / "recordings" / f"{recording['id']}.cast"
        assert cast.exists() and share["id"] in rows("shares")
        wait_for(lambda: httpx.get(share["url"]).status_code == 404, "the link was purged")
        replay = base + recording["url"]
        wait_for(lambda: httpx.get(replay).status_code == 404, "the recording went")
        assert not cast.exists() and rows("recordings") == {kept["id"]}
        assert share["id"] not in rows("shares")

        doomed = record(tab, expires_in=1).json()
        with sqlite3.connect(db, isolation_level=None) as lock:
            lock.execute("BEGIN IMMEDIATE")  # no other writer: the sweep's delete fails
            health = wait_for(
                lambda: (r := httpx.get(base + "/healthz")).status_code == 503 and r.json(),
                "the failed sweep shows on /healthz",
                timeout=20,
            )
            assert "locked" in health["parts"]["store"]["detail"]  # type: ignore[index]
            lock.execute("ROLLBACK")
        wait_for(lambda: httpx.get(base + doomed["url"]).status_code == 404, "the retried sweep")
        wait_for(lambda: httpx.get(base + "/healthz").status_code == 200, "the store is ok")
        assert server.poll() is None and rows("recordings") == {kept["id"]}
    finally:
        server.terminate()
        server.wait(10)


def redis_values(client: redis.Redis) -> dict[bytes, bytes]:
    """Every key in Redis and all it holds, as bytes."""
    found = {}
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"string":
            value = client.get(key) or b""
        elif kind == b"hash":
            value = b" ".join(k + b"=" + v for k, v in client.hgetall(key).items())
        elif kind == b"stream":
            entries = client.xrange(key)
            value = b" ".join(k + b"=" + v for _, f in entries for k, v in f.items())
        else:
            raise AssertionError(f"{key!r} is a {kind!r}: read it here too")
        found[key] = value
    return found


def test_no_token_is_kept_in_sqlite_or_redis_and_only_the_servers_user_reads_the_files(
    tmp_path,
):
    old_token = "O" * 43  # a link an older version kept in Redis with its token in clear
    old_key = f"capos:share:{hashlib.sha256(old_token.encode()).hexdigest()}"
    old_row = {
        "id": "oldlink",
        "token": old_token,
        "session_id": "long-gone",
        "mode": "view",
        "created": time.time(),
        "expires_at": time.time() + 3600,
        "creator_ip": "127.0.0.1",
        "revoked_at": None,
    }
    with redis_server() as url:
        client = redis.Redis.from_url(url)
        client.set(old_key, json.dumps(old_row))
        with serving(Settings(data_dir=tmp_path, redis_url=url)) as base:
            wait_for(lambda: b"token_digest" in (client.get(old_key) or b""), "the upgrade")
            assert httpx.get(f"{base}/s/{old_token}").status_code == 410  # known: opens
            tab = Tab(base)
            share = tab.share("drive", expires_in=600)
            recording = record(tab, input=True).json()
            tab.write("recorded\r\n")
            httpx.post(f"{base}/api/sessions/{tab.id}/recordings/{recording['id']}/stop")
            tokens = [
                old_token,
                share["url"].rsplit("/s/", 1)[1],
                recording["url"].rsplit("/r/", 1)[1],
            ]
            assert httpx.get(share["url"]).status_code == 200
            assert httpx.get(base + recording["url"]).status_code == 200
            files = [tmp_path / name for name in ("capos.sqlite3", "capos.sqlite3-wal")]
            for path in files:
                data = path.read_bytes()
                assert data and not any(token.encode() in data for token in tokens), path
            held = redis_values(client)
            share_keys = [k for k in held if k.startswith(b"capos:share:")]
            assert len(share_keys) == 2
            # each link's key vanishes a day after it expires (in 600 s, and in an hour)
            ttls = sorted(client.ttl(key) for key in share_keys)
            assert 86400 + 500 < ttls[0] <= 86400 + 600 and 86400 + 3500 < ttls[1] <= 90000
            for key, value in held.items():
                assert not any(token.encode() in key + value for token in tokens), key
            cast = tmp_path / "recordings" / f"{recording['id']}.cast"
            assert (tmp_path / "capos.sqlite3-shm").exists()
            modes = {
                path.name: path.stat().st_mode & 0o777
                for path in [tmp_path, tmp_path / "recordings", cast, *tmp_path.glob("capos*")]
            }
            assert modes == {
                tmp_path.name: 0o700,
                "recordings": 0o700,
                cast.name: 0o600,
                "capos.sqlite3": 0o600,
                "capos.sqlite3-wal": 0o600,
                "capos.sqlite3-shm": 0o600,
            }


FIRST_SCHEMA = """
CREATE TABLE shares (
    id TEXT PRIMARY KEY, token TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL,
    mode TEXT NOT NULL, created REAL NOT NULL, expires_at REAL NOT NULL,
    creator_ip TEXT NOT NULL, revoked_at REAL
);
CREATE TABLE recordings (
    id TEXT PRIMARY KEY, session_id TEXT NOT NULL, file TEXT NOT NULL, started REAL NOT NULL,
    expires_at REAL NOT NULL, record_input INTEGER NOT NULL, stopped REAL, reason TEXT,
    size INTEGER NOT NULL DEFAULT 0
);
"""


def test_a_database_of_the_first_schema_is_migrated_and_keeps_no_token(tmp_path: Path):
    share_tokens = ["S" * 43, "T" * 43]  # two links: each row gets its own digest
    replay_token = "R" * 43  # the first schema's recording id was its replay token
    now = time.time()
    cast_text = '{"version": 2, "width": 80, "height": 24}\n[0.5, "o", "old\\r\\n"]\n'
    (tmp_path / "recordings").mkdir(mode=0o755)
    (tmp_path / "recordings" / f"{replay_token}.cast").write_text(cast_text)
    (tmp_path / "recordings" / f"{replay_token}.cast").chmod(0o644)
    (tmp_path / "recordings" / "orphan.cast").write_text(cast_text)  # no row names it
    tmp_path.chmod(0o755)
    with sqlite3.connect(tmp_path / "capos.sqlite3") as db:
        db.executescript(FIRST_SCHEMA)
        for n, token in enumerate(share_tokens):
            db.execute(
                "INSERT INTO shares VALUES (?, ?, 'gone', 'view', ?, ?, '10.0.0.1', NULL)",
                (f"link{n}", token, now, now + 3600),
            )
        db.execute(
            "INSERT INTO recordings VALUES (?, 'gone', ?, ?, ?, 0, ?, 'stopped', ?)",
            (replay_token, f"{replay_token}.cast", now, now + 3600, now, len(cast_text)),
        )
    with serving(Settings(data_dir=tmp_path)) as base:
        for token in share_tokens:
            assert httpx.get(f"{base}/s/{token}").status_code == 410  # known, session ended
        assert httpx.get(f"{base}/s/{'U' * 43}").status_code == 404
        assert httpx.get(f"{base}/r/{replay_token}").status_code == 200
        # a v2 cast recorded before v3 is served as it is, and as v3 on request
        cast = f"{base}/r/{replay_token}.cast"
        assert httpx.get(cast).text == httpx.get(cast + "?format=v2").text == cast_text
        header, events = read_v3(httpx.get(cast + "?format=v3").text)
        assert header["term"] == {"cols": 80, "rows": 24} and events == [(500_000, "o", "old\r\n")]
        [listed] = httpx.get(f"{base}/api/sessions/gone/recordings").json()["recordings"]
        assert listed["id"] != replay_token and len(listed["id"]) == 12 and "url" not in listed
        casts = sorted(p.name for p in (tmp_path / "recordings").iterdir())
        assert casts == [f"{listed['id']}.cast"]  # renamed by its public id; the orphan gone
        assert (tmp_path / "recordings" / casts[0]).stat().st_mode & 0o777 == 0o600
        assert tmp_path.stat().st_mode & 0o777 == 0o700
    data = (tmp_path / "capos.sqlite3").read_bytes()
    assert not any(token.encode() in data for token in [*share_tokens, replay_token])
    with sqlite3.connect(tmp_path / "capos.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        columns = [row[1] for row in db.execute("PRAGMA table_info(shares)")]
        assert "token" not in columns and "token_digest" in columns
        digests = {row[0] for row in db.execute("SELECT token_digest FROM shares")}
        assert digests == {hashlib.sha256(t.encode()).hexdigest() for t in share_tokens}


def test_serve_takes_the_quotas_and_the_retention_from_its_options():
    args = build_parser().parse_args(
        ["serve", "--recordings-per-session", "3", "--session-recordings-mib", "5"]
        + ["--client-recordings-mib", "7", "--server-recordings-mib", "11"]
        + ["--retention-days", "2", "--sweep-interval", "9"]
    )
    limits = recording_limits(args)
    assert (limits.per_session, limits.session_bytes, limits.client_bytes) == (3, 5 * MIB, 7 * MIB)
    assert (limits.server_bytes, limits.retention_s, limits.sweep_interval_s) == (
        11 * MIB,
        2 * 86400,
        9,
    )
    defaults = recording_limits(build_parser().parse_args(["serve"]))
    assert defaults == RecordingLimits()
