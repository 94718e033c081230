"""`capos-playground mcp --url` with nobody there: a plain error and exit 1, never a hang."""

from __future__ import annotations

import socket
import subprocess
import sys

from bench.poolserver import REPO


def test_the_stdio_bridge_says_plainly_when_the_server_is_not_there():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "mcp", "--url", f"http://127.0.0.1:{port}/mcp"],
        cwd=REPO,
        input=b"",
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert b"cannot reach" in done.stderr and b"capos-playground serve" in done.stderr
    assert b"Traceback" not in done.stderr
    assert done.stdout == b""  # stdout is for MCP only
