"""A real redis-server (Debian's package) on a free port, for as long as the block runs.

`RedisProcess` can also be killed and started again on the same port, as the fault
tests do to a live service.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

REDIS = "/usr/bin/redis-server"


class RedisProcess:
    def __init__(self) -> None:
        if shutil.which(REDIS) is None:
            raise RuntimeError(f"{REDIS} is missing: run 'sudo apt-get install redis-server'")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it (empty: nothing is saved) and wait until it accepts connections."""
        command = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: gone at once, with everything it held."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@contextlib.contextmanager
def redis_process() -> Iterator[RedisProcess]:
    redis = RedisProcess()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    with redis_process() as redis:
        yield redis.url
