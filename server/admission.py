"""Admission per client: what one visitor may take of the server, and the refusal that
says which limit was hit and when to try again.

A client is its address: the peer's, or with `--trusted-proxy` the address that proxy
says it forwarded for (the rightmost entry of X-Forwarded-For that is not itself a
trusted proxy; never a header from anyone else). An IPv6 client is its /64, since one
host is usually handed a whole /64 and could otherwise take a share per address.

Sessions count against the client that created them (`LiveSession.client`); sockets
count while they are open (`Admission.holding`). Every refusal is `Refused`: an HTTP
429 with Retry-After, or a websocket closed with 4429 and the same message.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.sessions.live import SessionError

CLOSE_REFUSED = 4429  # the websocket close code for a refusal (429's twin)


@dataclass(frozen=True)
class AdmissionLimits:
    qemu_sessions: int = 2  # running QEMU sessions one client may have
    suspended_sessions: int = 4  # and suspended ones, kept on the server's disk
    tab_sessions: int = 8  # tab sessions relayed for one client
    owner_sockets: int = 16  # terminal websockets to sessions it owns, at once
    monitor_streams: int = 4  # monitor websockets, at once
    model_sockets: int = 2  # tabs' sockets to the server's model, at once
    model_tokens_per_hour: int = 20_000  # what the model generates for one client
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks whose X-Forwarded-For counts


class Refused(SessionError):
    """A per-client limit; the message names it and says when to try again."""

    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"retry-after": str(self.retry_after)}


class Admission:
    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in limits.trusted_proxies]
        self._held: Counter[tuple[str, str]] = Counter()  # (client, what) -> open now

    def client(self, connection: HTTPConnection) -> str:
        """Who is asking, for every per-client limit."""
        peer = connection.client.host if connection.client else "unknown"
        if self._trusted(peer):
            forwarded = connection.headers.get("x-forwarded-for", "")
            for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
                if not self._trusted(hop):
                    peer = hop
                    break
        return client_key(peer)

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)

    def check(self, what: str, count: int, limit: int, advice: str, retry_after: int = 30) -> None:
        """Refuse when a client already has `count` of `limit` things of kind `what`."""
        if count >= limit:
            raise Refused(
                f"limit reached: you already have {count} {what} on this server, the most "
                f"one visitor may have at once; {advice}",
                retry_after,
            )

    @contextlib.contextmanager
    def holding(self, client: str, what: str, limit: int, advice: str) -> Iterator[None]:
        """Count one `what` (an open socket) for `client` while the block runs."""
        key = (client, what)
        self.check(what, self._held[key], limit, advice, retry_after=5)
        self._held[key] += 1
        try:
            yield
        finally:
            self._held[key] -= 1
            if not self._held[key]:
                del self._held[key]

    def held(self, client: str, what: str) -> int:
        return self._held[(client, what)]


def client_of(connection: HTTPConnection) -> str:
    """The connection's client as admission sees it (its peer address while not running)."""
    admission = admission_of(connection)
    if admission is not None:
        return admission.client(connection)
    return client_key(connection.client.host if connection.client else "unknown")


def admission_of(connection: HTTPConnection) -> Admission | None:
    """The running server's admission (the lifespan's state), or None while it is not up."""
    return getattr(connection.state, "admission", None)


@contextlib.contextmanager
def held_by(connection: HTTPConnection, what: str, limit: str, advice: str) -> Iterator[None]:
    """Count one `what` for the connection's client while the block runs; Refused when
    the client already holds as many as the AdmissionLimits field `limit` allows."""
    admission = admission_of(connection)
    if admission is None:
        yield
        return
    client = admission.client(connection)
    with admission.holding(client, what, getattr(admission.limits, limit), advice):
        yield


async def refuse(websocket: WebSocket, refused: Refused) -> None:
    """Tell an accepted websocket why it is refused, and close it with 4429."""
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.send_text(json.dumps({"type": "error", "message": str(refused)}))
        await websocket.close(code=CLOSE_REFUSED, reason=str(refused)[:120])


def client_key(address: str) -> str:
    """An IPv4 address as it is; an IPv6 one as its /64 (an IPv4-mapped one as IPv4)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
