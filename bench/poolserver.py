"""The real server with a QEMU pool, as a subprocess, and a terminal client for it.

Shared by the QEMU tests and `bench pool`: both drive sessions the way a
visitor or agent does, over HTTP and the terminal websocket.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from websockets.sync.client import connect

REPO = Path(__file__).resolve().parents[1]
PROMPT = "capos> "


class PoolServer:
    def __init__(self, process: subprocess.Popen | None, port: int) -> None:
        """`process`: the server's, or None for one running in this process."""
        self.process, self.port = process, port
        self.base = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.base, timeout=30)

    def ws(self, session: dict):
        return connect(f"ws://127.0.0.1:{self.port}{session['terminal']}", open_timeout=30)

    def new_session(self, timeout: float = 240) -> dict:
        """POST until the pool has a VM (honouring Retry-After), as a client should."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.http.post("/api/sessions", json={"backend": "qemu"})
            if response.status_code == 201:
                return response.json()
            if response.status_code != 503 or time.monotonic() > deadline:
                raise RuntimeError(f"no session: {response.status_code} {response.text}")
            time.sleep(min(1.0, float(response.headers["retry-after"])))

    def pool(self) -> dict:
        return self.http.get("/api/pool").json()

    def state(self, session: dict) -> str:
        return self.http.get(f"/api/sessions/{session['id']}").json()["state"]

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def pool_server(*options: str) -> Iterator[PoolServer]:
    """`capos-playground serve` with these options on a free port, stopped (SIGINT) after;
    without --data-dir, on a data directory of its own that goes with it (a stopping
    server keeps its sessions there)."""
    with contextlib.ExitStack() as stack:
        if "--data-dir" not in options:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="capos-data-"))
            options = (*options, "--data-dir", scratch)
        yield stack.enter_context(_serving(options))


@contextlib.contextmanager
def _serving(options: tuple[str, ...]) -> Iterator[PoolServer]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port), *options], cwd=REPO
    )
    served = PoolServer(process, port)
    try:
        served.wait_for(lambda: _answers(served), "the server to start", timeout=120)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _answers(server: PoolServer) -> bool:
    if server.process is not None and server.process.poll() is not None:
        raise RuntimeError(f"the server exited with status {server.process.returncode}")
    try:
        return server.http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


class TerminalClient:
    """A websocket client that keeps what it saw and checks each offset follows the last."""

    def __init__(self, server: PoolServer, session: dict, offset: int = 0) -> None:
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(server.ws(session))
        self.ws.send(json.dumps({"type": "resume", "offset": offset}))
        self.offset = offset
        self.text = ""
        self.exit: str | None = None

    def send(self, **frame: object) -> None:
        self.ws.send(json.dumps(frame))

    def next_frame(self, timeout: float = 30) -> dict:
        frame = json.loads(self.ws.recv(timeout=timeout))
        if frame["type"] == "output":
            if frame["offset"] != self.offset:
                raise AssertionError(f"a byte was lost or repeated at {self.offset}: {frame}")
            self.text += frame["data"]
            self.offset += len(frame["data"].encode())
        elif frame["type"] == "reset":  # a fresh screen from the oldest byte kept
            self.offset, self.text = frame["offset"], ""
        elif frame["type"] == "exit":
            self.exit = frame["reason"]
        return frame

    def read_until(self, done: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or self.exit is not None:
                raise AssertionError(f"no {what}; saw {self.text[-300:]!r} (exit: {self.exit})")
            self.next_frame(timeout=left)

    def read_prompt(self, timeout: float = 60) -> None:
        self.read_until(lambda: self.text.endswith(PROMPT), "prompt", timeout)

    def command(self, line: str) -> str:
        """Type a line; the output up to the next prompt."""
        start = len(self.text) + len(line)
        self.send(type="input", data=line + "\r")
        self.read_until(lambda: PROMPT in self.text[start:], f"prompt after {line!r}")
        return self.text[start:]

    def read_exit(self, timeout: float = 60) -> str:
        self.read_until(lambda: self.exit is not None, "exit", timeout)
        return self.exit

    def close(self) -> None:
        self._stack.close()
