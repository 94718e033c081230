"""A restart keeps share links and recordings: the real server as a process, killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.asciicast import read_v3

pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")


def start_server(data_dir: Path, port: int, *options: str) -> subprocess.Popen:
    """`capos-playground serve` with no QEMU pool, and `options`, once it answers."""
    command = [sys.executable, "-m", "server.cli", "serve", "--max-vms", "0"]
    command += ["--port", str(port), "--data-dir", str(data_dir), *options]
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_links_and_a_recording_cut_short_by_a_crash_survive_a_restart(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    try:
        tab = httpx.post(base + "/api/tabs").json()
        relay = connect(f"ws://127.0.0.1:{port}{tab['relay']}")
        relay.recv(5)
        share = httpx.post(f"{base}/api/sessions/{tab['id']}/shares", json={"mode": "view"}).json()
        recording = httpx.post(f"{base}/api/sessions/{tab['id']}/recordings", json={}).json()
        relay.send(json.dumps({"type": "output", "offset": 0, "data": "kept\r\n"}))
        cast = tmp_path / "recordings" / f"{recording['id']}.cast"
        deadline = time.monotonic() + 10
        while "kept" not in cast.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
    with cast.open("a") as file:  # a write torn by the crash
        file.write('[1.5, "o", "torn')
    server = start_server(tmp_path, port)
    try:
        page = httpx.get(share["url"])
        assert page.status_code == 410 and "has ended" in page.text  # known, not 404
        listed = httpx.get(f"{base}/api/sessions/{tab['id']}/shares").json()["shares"]
        assert [s["id"] for s in listed] == [share["id"]]
        [info] = httpx.get(f"{base}/api/sessions/{tab['id']}/recordings").json()["recordings"]
        assert info["recording"] is False and "restarted while recording" in info["reason"]
        _, events = read_v3(httpx.get(base + recording["cast"]).text)  # the torn line gone
        assert [e[1:] for e in events] == [("o", "kept\r\n")]
        assert httpx.get(base + recording["url"]).status_code == 200
        delete = httpx.delete(f"{base}/api/sessions/{tab['id']}/recordings/{recording['id']}")
        assert delete.status_code == 204 and not cast.exists()
    finally:
        server.terminate()
        server.wait(10)
