"""The server's configuration: one typed object, read once, passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kernel.hosts.models.settings import ModelSettings
from server.admission import AdmissionLimits

REPO_ROOT = Path(__file__).resolve().parents[1]
WS_MAX_MESSAGE = 1 << 20  # a websocket message past this closes its connection (1009)


def default_data_dir() -> Path:
    """The user's data directory ($XDG_DATA_HOME, else ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "capos-playground"


def default_cache_dir() -> Path:
    """Built artefacts the server makes once and reuses (the Pyodide snapshot, the guest image)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "capos-playground"


@dataclass(frozen=True)
class QemuSettings:
    """The QEMU pool behind server-hosted sessions."""

    warm: int = 2  # VMs kept booted at the prompt
    max_vms: int = 8  # all QEMU processes at once (warm, in use, restoring)
    memory_mib: int = 256  # each VM's memory cap
    accel: str = "auto"  # "auto" (KVM if a real boot works), "kvm" or "tcg"
    idle_timeout_s: float = 300.0  # no client for this long: the VM is saved and stopped
    lifetime_s: float = 3600.0  # wall clock, suspended time included
    cpu_seconds: float = 900.0  # CPU time a session's VMs may use in all
    max_sessions: int = 64
    scrollback: int = 256 * 1024  # output bytes kept per session for reconnecting clients
    snapshot: bool = True  # refill the pool by restoring a booted template, not by booting


@dataclass(frozen=True)
class ShareLimits:
    links_per_session: int = 32  # live (unrevoked, unexpired) links on one session
    links_per_ip: int = 64  # live links created from one address
    viewers_per_session: int = 1000
    viewers_per_ip: int = 64  # open viewer connections from one address
    default_expires_in: float = 3600.0
    max_expires_in: float = 7 * 24 * 3600.0
    # An expired link answers 410 ("expired") this long, then it is purged (SQLite) or
    # vanishes (its Redis key's TTL) and answers 404 like any unknown link.
    expired_kept_s: float = 24 * 3600.0


MIB = 1024 * 1024


@dataclass(frozen=True)
class RecordingLimits:
    """What recordings may take of the disk, and for how long: a public host's visitors
    can neither fill it nor keep what they recorded forever (server/quota.py,
    server/retention.py)."""

    max_bytes: int = 16 * MIB  # one recording: its .cast and its monitor timeline
    max_timeline_bytes: int = 4 * MIB  # of which the timeline may take this much
    max_duration_s: float = 3600.0
    max_marker: int = 200  # characters of a marker's label
    min_free_mib: int = 256  # free disk under the data directory below which recording stops
    per_session: int = 8  # recordings one session keeps (running or not)
    session_bytes: int = 64 * MIB  # what one session's recordings take in all
    client_bytes: int = 128 * MIB  # what the recordings started from one address take
    server_bytes: int = 4096 * MIB  # what every recording under the data directory takes
    retention_s: float = 30 * 24 * 3600.0  # the longest a recording is kept (its max expiry)
    sweep_interval_s: float = 600.0  # how often expired recordings and links are deleted


@dataclass(frozen=True)
class TabLimits:
    max_tabs: int = 256
    reconnect_grace_s: float = 15.0  # a dropped owner connection may come back this soon
    input_queue: int = 256  # frames of drive input waiting for the owner's tab


@dataclass(frozen=True)
class AgentLimits:
    sessions_per_client: int = 4  # live sessions one MCP client may own
    calls_per_s: float = 50.0  # steady rate per client, in bursts of twice that
    call_timeout_s: float = 30.0  # the guest drops a request not taken within 20 s
    wake_timeout_s: float = 30.0  # restoring a suspended session
    boot_wait_s: float = 60.0  # create_session waits this long for a VM the pool is booting
    spawn_wait_s: float = 600.0  # a spawn told to wait answers within this, or times out
    generate_s: float = 300.0  # a model generation read to its end within this, or cancelled
    max_params_json: int = 6 * 1024  # the shell takes requests into an 8 KiB buffer

    @property
    def burst(self) -> int:
        return max(1, round(2 * self.calls_per_s))


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # Names this server answers to besides localhost, 127.0.0.1 and [::1] on its port
    # (server/origin.py): "NAME" on any port, "NAME:PORT" on that one. Any other Host is
    # refused, which is what stops DNS rebinding.
    public_hosts: tuple[str, ...] = ()
    web_dir: Path = field(default=REPO_ROOT / "web")
    cache_dir: Path = field(default_factory=default_cache_dir)
    qemu: QemuSettings | None = None  # None: no server-hosted sessions
    # Share links, recordings, suspended sessions; None: the user's data directory.
    data_dir: Path | None = None
    redis_url: str | None = None  # replicas share sessions, links and live output through it
    share_limits: ShareLimits = field(default_factory=ShareLimits)
    recording_limits: RecordingLimits = field(default_factory=RecordingLimits)
    tab_limits: TabLimits = field(default_factory=TabLimits)
    agent_limits: AgentLimits = field(default_factory=AgentLimits)  # MCP and the REST API
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)  # per client
    model: ModelSettings = field(default_factory=ModelSettings)  # agent mode's, for every tab
    # Output frames say when their first byte was appended (time.monotonic()), for
    # measuring lag on this host; off, since the clock would tell the host's uptime.
    output_times: bool = False

    @property
    def data_path(self) -> Path:
        """Where what outlives a restart is kept: `data_dir`, or the user's data directory."""
        return self.data_dir or default_data_dir()

    @property
    def vendor_dir(self) -> Path:
        return self.web_dir / "node_modules"
