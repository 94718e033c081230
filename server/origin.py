"""Which `Host` and `Origin` this server answers: the defence against DNS rebinding and
cross-site requests.

A page on evil.example whose name is rebound to 127.0.0.1 reaches a developer's server
with `Host: evil.example` and `Origin: http://evil.example`; comparing the two proves
nothing, since the attacker names both. So the Host must be on an allow-list: the
loopback names on the port the request arrived at, and the names the operator gave with
`--public-host`. A browser's `Origin` must then be the origin of that same Host (a
client that is not a browser sends none and is not affected).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
DEFAULT_PORTS = (80, 443)  # a browser leaves these out of Host and Origin


def split_host(host: str) -> tuple[str, str]:
    """A Host header (or `--public-host`) as (name, port); the port is "" when absent."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]") + 1
        name, rest = host[:end], host[end:]
        return name, rest[1:] if rest.startswith(":") else ""
    name, _, port = host.partition(":")
    return name, port


class HostAllowList:
    """The loopback names on the server's port, and each public host: a bare NAME on any
    port (behind a proxy the port is the proxy's), NAME:PORT on that port only."""

    def __init__(self, public_hosts: Iterable[str], port: int) -> None:
        self.public = [split_host(h) for h in public_hosts]
        self.port = port  # when the ASGI server does not say which port a request came to

    def allows_host(self, host: str | None, port: int | None) -> bool:
        """True when `host` (a Host header) names this server; `port` is the one the
        request arrived at."""
        if not host:
            return False
        name, given = split_host(host)
        if name in LOOPBACK:
            listening = port or self.port
            return given == str(listening) or (not given and listening in DEFAULT_PORTS)
        return (name, "") in self.public or (name, given) in self.public

    @staticmethod
    def allows_origin(origin: str | None, host: str | None) -> bool:
        """True when there is no Origin, or it is the origin of `host` (checked already)."""
        if origin is None:
            return True
        parts = urlsplit(origin)
        return (
            parts.scheme in ("http", "https")
            and bool(host)
            and parts.netloc.lower() == (host or "").lower()
        )

    def patterns(self) -> tuple[list[str], list[str]]:
        """The Hosts and Origins in the MCP SDK's syntax ("name:*": the name on any port)."""
        hosts: list[str] = []
        for name, port in [*((n, "") for n in LOOPBACK), *self.public]:
            hosts += [f"{name}:{port}"] if port else [name, f"{name}:*"]
        origins = [f"{scheme}://{h}" for scheme in ("http", "https") for h in hosts]
        return hosts, origins
