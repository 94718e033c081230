"""The `capos-playground` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kernel.hosts.jitter import DEFAULT_JITTER_US
from kernel.hosts.models.settings import add_model_options
from server.admission import AdmissionLimits
from server.settings import MIB, AgentLimits, QemuSettings, RecordingLimits, ShareLimits

RESULTS_HELP = "write the JSON here instead of bench/results/NAME.json"


def _schema_build(args: argparse.Namespace) -> int:
    from server.schemabuild import build_command

    return build_command(check=args.check)


def _begin(name: str, *uses: str) -> None:
    """Note the machine before benchmark `name` does anything (bench/figures.py)."""
    from bench.figures import begin

    begin(name, uses)


def _bench_kernel(args: argparse.Namespace) -> int:
    if args.stress:
        from bench.stress import run_benchmark as run_stress

        _begin("stress")
        return run_stress(args.stress, json_path=args.json, jitter_us=args.jitter_us)
    from bench.kernel import run_benchmark

    _begin("kernel", "pycapnp")
    return run_benchmark(json_path=args.json, quick=args.quick)


def _bench_browser(args: argparse.Namespace) -> int:
    from bench.browser import run_benchmark

    _begin("browser" if args.browser == "chromium" else f"browser-{args.browser}", "node")
    return run_benchmark(json_path=args.json, quick=args.quick, browser=args.browser)


def _bench_readme(args: argparse.Namespace) -> int:
    from bench.readme import readme_command

    return readme_command(check=args.check)


def _image_build(args: argparse.Namespace) -> int:
    from server.image import build_command

    return build_command(force=args.force)


def _bench_share(args: argparse.Namespace) -> int:
    from bench.share import run_benchmark

    _begin("share", "qemu", "redis-server", "pycapnp")
    return run_benchmark(json_path=args.json, quick=args.quick, accel=args.accel)


def _bench_pool(args: argparse.Namespace) -> int:
    from bench.pool import run_benchmark

    _begin("pool", "qemu", "zstd", "pycapnp")
    return run_benchmark(json_path=args.json, quick=args.quick, accel=args.accel)


def _bench_echo(args: argparse.Namespace) -> int:
    from bench.echo import run_benchmark

    _begin("echo", "qemu", "pycapnp")
    return run_benchmark(json_path=args.json, quick=args.quick, accel=args.accel)


def _bench_agent(args: argparse.Namespace) -> int:
    from bench.agent import run_benchmark

    _begin("agent", "qemu", "llama-cpp-python", "pycapnp")
    return run_benchmark(json_path=args.json, quick=args.quick)


def _bench_abuse(args: argparse.Namespace) -> int:
    from bench.abuse import run_benchmark

    _begin("abuse", "qemu", "pycapnp")
    return run_benchmark(json_path=args.json, quick=args.quick)


def _bench_faults(args: argparse.Namespace) -> int:
    from bench.faults import run_benchmark

    _begin("faults", "qemu", "redis-server", "pycapnp")
    return run_benchmark(json_path=args.json, quick=args.quick)


def _boot(args: argparse.Namespace) -> int:
    from kernel.hosts.models.settings import ModelSettings
    from kernel.hosts.native import boot_command

    return boot_command(
        manifest=args.manifest, overlay=args.overlay, model=ModelSettings.from_args(args)
    )


def _shell(args: argparse.Namespace) -> int:
    from kernel.hosts.models.settings import ModelSettings
    from kernel.hosts.native import shell_command

    return shell_command(
        manifest=args.manifest, overlay=args.overlay, model=ModelSettings.from_args(args)
    )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from kernel.hosts.models.openai import check_url
    from kernel.hosts.models.settings import ModelSettings
    from server.app import create_app
    from server.assets import MissingVendor
    from server.settings import WS_MAX_MESSAGE, Settings
    from server.snapshot import SnapshotFailed
    from server.tours import TourError

    model = ModelSettings.from_args(args)
    try:
        if model.url:
            check_url(model.url)  # now, not when the app starts and opens the model
    except ValueError as exc:
        print(f"capos-playground: {exc}", file=sys.stderr)
        return 2
    settings = Settings(
        host=args.host,
        port=args.port,
        public_hosts=tuple(args.public_host),
        qemu=_qemu_settings(args),
        data_dir=Path(args.data_dir) if args.data_dir else None,
        redis_url=args.redis or os.environ.get("CAPOS_REDIS_URL") or None,
        share_limits=ShareLimits(
            viewers_per_ip=args.viewers_per_ip, expired_kept_s=args.expired_links_kept
        ),
        recording_limits=recording_limits(args),
        admission=_admission_limits(args),
        agent_limits=AgentLimits(
            sessions_per_client=args.agent_sessions, calls_per_s=args.agent_calls_per_s
        ),
        model=model,
        output_times=args.output_times,
    )
    try:
        app = create_app(settings)
    except (MissingVendor, SnapshotFailed, TourError) as exc:
        print(f"capos-playground: {exc}", file=sys.stderr)
        return 1
    print(f"capOS Playground: http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", ws_max_size=WS_MAX_MESSAGE
    )
    return 0


# What one client (an address; an IPv6 /64) may take: (option, AdmissionLimits field, help).
_PER_CLIENT = (
    ("--client-sessions", "qemu_sessions", "running QEMU sessions"),
    ("--client-suspended", "suspended_sessions", "suspended QEMU sessions"),
    ("--client-tabs", "tab_sessions", "tab sessions relayed"),
    ("--client-terminals", "owner_sockets", "terminal websockets open at once"),
    ("--client-monitors", "monitor_streams", "monitor websockets open at once"),
    ("--client-model-sockets", "model_sockets", "tabs' sockets to the model at once"),
    ("--client-model-tokens", "model_tokens_per_hour", "tokens the model generates an hour"),
)


def _add_admission_options(command: argparse.ArgumentParser) -> None:
    defaults = AdmissionLimits()
    group = command.add_argument_group(
        "per client", "what one client may take; past it, 429 with Retry-After and the limit"
    )
    for option, name, what in _PER_CLIENT:
        default = getattr(defaults, name)
        group.add_argument(option, type=int, default=default, help=f"{what} (default {default})")
    group.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a reverse proxy (address or network) whose X-Forwarded-For names the client; "
        "repeatable (default: none, the peer address is the client)",
    )


def _admission_limits(args: argparse.Namespace) -> AdmissionLimits:
    limits = {name: getattr(args, option[2:].replace("-", "_")) for option, name, _ in _PER_CLIENT}
    return AdmissionLimits(**limits, trusted_proxies=tuple(args.trusted_proxy))


def recording_limits(args: argparse.Namespace) -> RecordingLimits:
    """The disk quotas and the retention `serve` was given."""
    return RecordingLimits(
        min_free_mib=args.min_free_mib,
        per_session=args.recordings_per_session,
        session_bytes=args.session_recordings_mib * MIB,
        client_bytes=args.client_recordings_mib * MIB,
        server_bytes=args.server_recordings_mib * MIB,
        retention_s=args.retention_days * 24 * 3600,
        sweep_interval_s=args.sweep_interval,
    )


def _add_retention_options(serve: argparse.ArgumentParser) -> None:
    """Quotas on the disk recordings take, and how long recordings and links are kept."""
    limits, shares = RecordingLimits(), ShareLimits()
    options: list[tuple[str, type, float, str]] = [
        ("--recordings-per-session", int, limits.per_session, "recordings one session keeps"),
        (
            "--session-recordings-mib",
            int,
            limits.session_bytes // MIB,
            "MiB one session's recordings may take",
        ),
        (
            "--client-recordings-mib",
            int,
            limits.client_bytes // MIB,
            "MiB the recordings started from one address may take",
        ),
        (
            "--server-recordings-mib",
            int,
            limits.server_bytes // MIB,
            "MiB all recordings may take (past it new ones are refused with 507)",
        ),
        (
            "--retention-days",
            float,
            limits.retention_s / (24 * 3600),
            "days a recording is kept at most (its longest expiry); then it is deleted",
        ),
        (
            "--sweep-interval",
            float,
            limits.sweep_interval_s,
            "seconds between sweeps that delete expired recordings and links",
        ),
        (
            "--expired-links-kept",
            float,
            shares.expired_kept_s,
            "seconds an expired share link answers 'expired' before it is purged",
        ),
    ]
    for flag, kind, default, what in options:
        serve.add_argument(flag, type=kind, default=default, help=f"{what} (default: %(default)s)")


def _qemu_settings(args: argparse.Namespace) -> QemuSettings | None:
    if args.max_vms <= 0:
        return None
    return QemuSettings(
        warm=args.warm,
        max_vms=max(args.max_vms, args.warm),
        memory_mib=args.memory,
        accel=args.accel,
        idle_timeout_s=args.idle_timeout,
        lifetime_s=args.lifetime,
        cpu_seconds=args.cpu_limit,
        max_sessions=args.max_sessions,
        snapshot=not args.cold_boot,
    )


def _mcp(args: argparse.Namespace) -> int:
    import asyncio

    from server.mcpstdio import bridge, embedded
    from server.settings import Settings

    if args.url:
        return asyncio.run(bridge(args.url))
    qemu = _qemu_settings(args)
    if qemu is None:
        print("capos-playground mcp: --max-vms 0 leaves no sessions to drive", file=sys.stderr)
        return 2
    return asyncio.run(embedded(Settings(port=0, qemu=qemu)))


def _tours_list(args: argparse.Namespace) -> int:
    from server.tours import TourError, load_tours

    try:
        tours = load_tours()
    except TourError as exc:
        print(f"capos-playground: {exc}", file=sys.stderr)
        return 1
    for tour in tours:
        print(tour.name)
    return 0


def _tours_verify(args: argparse.Namespace) -> int:
    from server.tourverify import BACKENDS, verify

    return verify(args.names, tuple(args.backend or BACKENDS))


def _add_manifest_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--manifest", help="boot manifest (TOML or JSON); default: the built-in one"
    )
    command.add_argument(
        "--overlay", help="overlay merged on top (default: ./system.local.toml if present)"
    )


def _add_qemu_options(command: argparse.ArgumentParser) -> None:
    qemu = QemuSettings()
    command.add_argument("--warm", type=int, default=qemu.warm, help="QEMU VMs kept booted")
    command.add_argument(
        "--max-vms",
        type=int,
        default=qemu.max_vms,
        help="QEMU VMs at once (0: no server-hosted sessions)",
    )
    command.add_argument(
        "--max-sessions",
        type=int,
        default=qemu.max_sessions,
        help="QEMU sessions at once, running and suspended, of all clients",
    )
    command.add_argument("--memory", type=int, default=qemu.memory_mib, help="MiB per VM")
    command.add_argument("--accel", choices=["auto", "kvm", "tcg"], default=qemu.accel)
    command.add_argument(
        "--idle-timeout",
        type=float,
        default=qemu.idle_timeout_s,
        help="seconds without a client before a session is suspended to disk",
    )
    command.add_argument(
        "--lifetime", type=float, default=qemu.lifetime_s, help="seconds a session may last"
    )
    command.add_argument(
        "--cpu-limit",
        type=float,
        default=qemu.cpu_seconds,
        help="CPU seconds a session's VM may use",
    )
    command.add_argument(
        "--cold-boot",
        action="store_true",
        help="boot every pool VM instead of restoring a booted snapshot",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="capos-playground",
        description="A capOS-like capability operating system playground.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    schema = sub.add_parser("schema", help="the Cap'n Proto schema bundle")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    build = schema_sub.add_parser("build", help="compile schema/*.capnp into schema/bundle.json")
    build.add_argument("--check", action="store_true", help="fail if the committed bundle is stale")
    build.set_defaults(func=_schema_build)

    image = sub.add_parser("image", help="the QEMU guest image")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    image_build = image_sub.add_parser(
        "build", help="build the guest kernel and initramfs (when missing or stale)"
    )
    image_build.add_argument("--force", action="store_true", help="rebuild even if up to date")
    image_build.set_defaults(func=_image_build)

    bench = sub.add_parser("bench", help="run a benchmark")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    readme = bench_sub.add_parser(
        "readme", help="rewrite README.md's figures tables from bench/results/ (no benchmark runs)"
    )
    readme.add_argument("--check", action="store_true", help="fail if README.md is stale")
    readme.set_defaults(func=_bench_readme)
    kernel = bench_sub.add_parser("kernel", help="ring, IPC and spawn figures, against pycapnp")
    kernel.add_argument("--json", metavar="PATH", help=RESULTS_HELP)
    kernel.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    kernel.add_argument(
        "--stress",
        type=int,
        metavar="N",
        help="instead: N checked round trips and N/40 spawns with random pauses between "
        "ring steps, looking for stalls (lost wake-ups)",
    )
    kernel.add_argument(
        "--jitter-us",
        type=int,
        default=DEFAULT_JITTER_US,
        help="with --stress: the longest pause between ring steps, in microseconds (0: none)",
    )
    kernel.set_defaults(func=_bench_kernel)
    browser = bench_sub.add_parser(
        "browser", help="the playground tab in headless Chromium or Firefox ESR"
    )
    browser.add_argument("--json", metavar="PATH", help=RESULTS_HELP)
    browser.add_argument("--quick", action="store_true", help="one run of each (smoke run)")
    browser.add_argument("--browser", choices=["chromium", "firefox"], default="chromium")
    browser.set_defaults(func=_bench_browser)
    agent = bench_sub.add_parser("agent", help="the local model's tool calls in agent mode")
    agent.add_argument("--json", metavar="PATH", help=RESULTS_HELP)
    agent.add_argument("--quick", action="store_true", help="one round of requests")
    agent.set_defaults(func=_bench_agent)

    pool = bench_sub.add_parser("pool", help="the QEMU pool: handout, echo, resume, capacity")
    pool.add_argument("--json", metavar="PATH", help=RESULTS_HELP)
    pool.add_argument("--quick", action="store_true", help="fewer samples and sessions (smoke run)")
    pool.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    pool.set_defaults(func=_bench_pool)
    echo = bench_sub.add_parser(
        "echo", help="typing into a server-hosted session in Chromium, with and without prediction"
    )
    echo.add_argument("--json", metavar="PATH", help=RESULTS_HELP)
    echo.add_argument("--quick", action="store_true", help="fewer keystrokes (smoke run)")
    echo.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="tcg")
    echo.set_defaults(func=_bench_echo)
    share = bench_sub.add_parser(
        "share", help="share-link viewers and a second replica through Redis: output lag"
    )
    share.add_argument("--json", metavar="PATH", help=RESULTS_HELP)
    share.add_argument("--quick", action="store_true", help="fewer rounds and viewers")
    share.add_argument("--accel", choices=["auto", "kvm", "tcg"], default="auto")
    share.set_defaults(func=_bench_share)
    faults = bench_sub.add_parser(
        "faults",
        help="faults injected into a live service (QEMU, guests, Redis, disk): what they cost",
    )
    faults.add_argument("--json", metavar="PATH", help=RESULTS_HELP)
    faults.add_argument("--quick", action="store_true", help="two bystander sessions, not four")
    faults.set_defaults(func=_bench_faults)
    abuse = bench_sub.add_parser(
        "abuse", help="a flood from several addresses, and an honest visitor meanwhile"
    )
    abuse.add_argument("--json", metavar="PATH", help=RESULTS_HELP)
    abuse.add_argument("--quick", action="store_true", help="fewer rounds")
    abuse.set_defaults(func=_bench_abuse)

    serve = sub.add_parser("serve", help="serve the web playground")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--public-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name this server answers to besides localhost, 127.0.0.1 and [::1] "
        "(repeatable; NAME: on any port, NAME:PORT: on that one); any other Host header "
        "is refused, which stops DNS rebinding",
    )
    _add_qemu_options(serve)
    serve.add_argument(
        "--data-dir",
        help="share links, recordings and their database (default: in the user's data directory)",
    )
    serve.add_argument(
        "--viewers-per-ip",
        type=int,
        default=ShareLimits().viewers_per_ip,
        help="share-link viewers one address may have open (raise it behind a shared NAT)",
    )
    _add_admission_options(serve)
    serve.add_argument(
        "--min-free-mib",
        type=int,
        default=RecordingLimits().min_free_mib,
        help="free disk (MiB) under the data directory below which recordings stop and "
        "new ones are refused",
    )
    _add_retention_options(serve)
    agents = AgentLimits()
    serve.add_argument(
        "--agent-sessions",
        type=int,
        default=agents.sessions_per_client,
        help="sessions one MCP client may hold at once",
    )
    serve.add_argument(
        "--agent-calls-per-s",
        type=float,
        default=agents.calls_per_s,
        help="calls a second one MCP client or REST address may make (in bursts of twice that)",
    )
    serve.add_argument(
        "--redis",
        metavar="URL",
        help="share sessions, links and live output with other replicas through this Redis "
        "(default: $CAPOS_REDIS_URL; none: this process alone)",
    )
    serve.add_argument(
        "--output-times",
        action="store_true",
        help="output frames say when the server appended them (time.monotonic()), for "
        "measuring lag on this host as `bench share` does; off: the clock tells the uptime",
    )
    add_model_options(serve)  # the model agent mode uses in every tab, run on this server
    serve.set_defaults(func=_serve)

    mcp = sub.add_parser(
        "mcp",
        help="the MCP server over stdio: sessions as typed tools for an agent",
        description="Speak MCP on stdin/stdout. With --url, through a running server's /mcp; "
        "without, start a server in this process (the QEMU pool included) and stop it when "
        "stdin closes.",
    )
    mcp.add_argument("--url", help="a running server's MCP endpoint, e.g. http://HOST:8000/mcp")
    _add_qemu_options(mcp)
    mcp.set_defaults(func=_mcp)

    tours = sub.add_parser("tours", help="the guided tours in demos/")
    tours_sub = tours.add_subparsers(dest="tours_command", required=True)
    tours_sub.add_parser("list", help="one tour name a line").set_defaults(func=_tours_list)
    verify = tours_sub.add_parser("verify", help="drive tours end to end in headless Chromium")
    verify.add_argument("names", nargs="*", metavar="NAME", help="default: every tour")
    verify.add_argument(
        "--backend",
        action="append",
        choices=["tab", "qemu"],
        help="where to run them (repeatable; default: both)",
    )
    verify.set_defaults(func=_tours_verify)

    shell = sub.add_parser("shell", help="boot natively and attach this terminal to the shell")
    _add_manifest_options(shell)
    add_model_options(shell)
    shell.set_defaults(func=_shell)

    boot = sub.add_parser("boot", help="boot natively with no terminal (services only)")
    _add_manifest_options(boot)
    add_model_options(boot)
    boot.set_defaults(func=_boot)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
