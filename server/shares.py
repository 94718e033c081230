"""Share links: unguessable, scoped (view, drive or agent), expiring, revocable links to a session.

Who owns a session: whoever holds its id, which is itself an unguessable
token (128 bits from `secrets`) handed only to its creator. The owner
creates links; a link's token (256 bits) is the only thing a viewer holds.
The token is handed out once, when the link is made, and never kept: the
server keeps its SHA-256 digest (in memory, SQLite and Redis), so a copy of
the database opens no link. Tokens are looked up by digest and the digests
then compared in constant time, so neither the lookup nor the comparison
tells a guesser how close they came.

An agent link (tab sessions only) is a credential for an outside agent: the
MCP tools and the REST API take its token (or its address) as the session
(server/agents.py). Its page and terminal are a drive link's.

A viewer is one connection through a link. Revoking a link, its expiry,
or the owner ending a viewer sets the viewer's `ended` event, which the
connection serving it waits on, so it is cut off at once; revoking also
sets the link's `cut` event, which an agent's call in flight waits on.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from server.settings import ShareLimits

MODES = ("view", "drive", "agent")
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)


class ShareError(Exception):
    """A share request cannot be met; the message says why, `status` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class Viewer:
    """One connection through a link; `ended` fires when it must be cut off, `reason` says why."""

    id: str
    share: Share
    ip: str
    agent: str
    since: float = field(default_factory=time.time)
    reason: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def end(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.ended.set()

    def info(self) -> dict:
        return {
            "id": self.id,
            "share_id": self.share.id,
            "mode": self.share.mode,
            "ip": self.ip,
            "agent": self.agent,
            "since": self.since,
        }


@dataclass(eq=False)
class Share:
    id: str
    token_digest: str  # hex SHA-256 of the token; the token itself is never kept
    session_id: str
    mode: str  # "view" | "drive" | "agent"
    created: float
    expires_at: float
    creator_ip: str
    revoked_at: float | None = None
    viewers: dict[str, Viewer] = field(default_factory=dict)
    cut: asyncio.Event = field(default_factory=asyncio.Event)  # set once revoked

    def gone(self, now: float | None = None) -> str | None:
        """Why the link no longer works, or None while it does."""
        if self.revoked_at is not None:
            return "this share link was revoked by the session's owner"
        if (now or time.time()) >= self.expires_at:
            return "this share link has expired"
        return None

    def info(self) -> dict:
        return {
            "id": self.id,
            "mode": self.mode,
            "created": self.created,
            "expires_at": self.expires_at,
            "revoked": self.revoked_at is not None,
            "viewers": [v.info() for v in self.viewers.values()],
        }

    def row(self) -> dict:
        """What the store keeps (viewers are live connections: not kept)."""
        return {
            "id": self.id,
            "token_digest": self.token_digest,
            "session_id": self.session_id,
            "mode": self.mode,
            "created": self.created,
            "expires_at": self.expires_at,
            "creator_ip": self.creator_ip,
            "revoked_at": self.revoked_at,
        }


def digest(token: str) -> str:
    """What is kept of a token (a share link's or a replay link's): its hex SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


Saver = Callable[[Share], Awaitable[None]]


async def _no_store(share: Share) -> None:
    return None


class ShareRegistry:
    """Every link this server knows, by session and by token digest."""

    def __init__(self, limits: ShareLimits | None = None, save: Saver = _no_store) -> None:
        self.limits = limits or ShareLimits()
        self._save = save  # persists a share after every change
        self._by_digest: dict[str, Share] = {}
        self._by_session: dict[str, dict[str, Share]] = {}
        self._ip_viewers: Counter[str] = Counter()  # open viewer connections by address

    def load(self, shares: list[Share]) -> None:
        """Links kept by the store from before a restart."""
        for share in shares:
            self._add(share)

    def _add(self, share: Share) -> None:
        self._by_digest[share.token_digest] = share
        self._by_session.setdefault(share.session_id, {})[share.id] = share

    def forget(self, share: Share) -> None:
        """Drop a purged link (server/retention.py): it answers 404 from now on."""
        self._by_digest.pop(share.token_digest, None)
        links = self._by_session.get(share.session_id, {})
        links.pop(share.id, None)
        if not links:
            self._by_session.pop(share.session_id, None)

    async def create(
        self, session_id: str, mode: object, expires_in: object, creator_ip: str
    ) -> tuple[Share, str]:
        """A new link and its token, which the caller hands out once: it is not kept."""
        if mode not in MODES:
            raise ShareError(f'"mode" must be "view", "drive" or "agent", not {mode!r}', 400)
        limit = self.limits.max_expires_in
        if expires_in is None:
            expires_in = self.limits.default_expires_in
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, int | float)
            or not 0 < expires_in <= limit
        ):
            raise ShareError(f'"expires_in" must be a number of seconds, 1 to {limit:.0f}', 400)
        now = time.time()
        live = [s for s in self.of_session(session_id) if s.gone(now) is None]
        if len(live) >= self.limits.links_per_session:
            raise ShareError(
                f"this session already has {len(live)} live share links, the most allowed; "
                "revoke one first",
                429,
            )
        mine = sum(
            1
            for s in self._by_digest.values()
            if s.creator_ip == creator_ip and s.gone(now) is None
        )
        if mine >= self.limits.links_per_ip:
            raise ShareError(
                f"your address already created {mine} live share links, the most allowed; "
                "revoke some or wait for them to expire",
                429,
            )
        token = secrets.token_urlsafe(32)
        share = Share(
            id=secrets.token_urlsafe(9),
            token_digest=digest(token),
            session_id=session_id,
            mode=mode,
            created=now,
            expires_at=now + float(expires_in),
            creator_ip=creator_ip,
        )
        self._add(share)
        await self._save(share)
        return share, token

    def of_session(self, session_id: str) -> list[Share]:
        return list(self._by_session.get(session_id, {}).values())

    def get(self, session_id: str, share_id: str) -> Share | None:
        return self._by_session.get(session_id, {}).get(share_id)

    def find(self, token: str) -> Share | None:
        """The share a token opens, or None; compared in constant time."""
        if not TOKEN_RE.fullmatch(token):
            return None
        wanted = digest(token)
        share = self._by_digest.get(wanted)
        if share is None or not hmac.compare_digest(share.token_digest, wanted):
            return None
        return share

    def adopt(self, share: Share) -> Share:
        """A link as the shared store has it now: the known object, brought up to date."""
        known = self.get(share.session_id, share.id)
        if known is None:
            self._add(share)
            return share
        known.expires_at = share.expires_at
        if share.revoked_at is not None:  # a revocation wins over any older copy
            self.revoke_here(known)
        return known

    def all(self) -> list[Share]:
        return list(self._by_digest.values())

    def purgeable(self, now: float) -> list[Share]:
        """Links that expired more than `expired_kept_s` ago: the retention sweep drops them."""
        cutoff = now - self.limits.expired_kept_s
        return [share for share in self._by_digest.values() if share.expires_at <= cutoff]

    async def revoke(self, share: Share) -> None:
        """Revoke here first (its viewers here are cut off even if saving fails), then save."""
        self.revoke_here(share)
        await self._save(share)

    def revoke_here(self, share: Share) -> None:
        share.revoked_at = share.revoked_at or time.time()
        self.cut_off(share)

    def cut_off(self, share: Share) -> None:
        """End every viewer of a revoked link, and its agent's calls in flight."""
        share.cut.set()
        for viewer in list(share.viewers.values()):
            viewer.end("the session's owner revoked this share link")

    def viewers(self, session_id: str) -> list[Viewer]:
        return [v for s in self.of_session(session_id) for v in s.viewers.values()]

    def join(self, share: Share, ip: str, agent: str) -> Viewer:
        """A new viewer through `share`; ShareError when the link is gone or a limit is hit."""
        why = share.gone()
        if why is not None:
            raise ShareError(why, 410)
        on_session = len(self.viewers(share.session_id))
        if on_session >= self.limits.viewers_per_session:
            raise ShareError(
                f"this session already has {on_session} viewers, the most allowed; "
                "try again when someone leaves",
                429,
            )
        from_ip = self._ip_viewers[ip]
        if from_ip >= self.limits.viewers_per_ip:
            raise ShareError(
                f"your address already has {from_ip} viewers open, the most allowed; "
                "close some first",
                429,
            )
        viewer = Viewer(id=secrets.token_urlsafe(6), share=share, ip=ip, agent=agent[:120])
        share.viewers[viewer.id] = viewer
        self._ip_viewers[ip] += 1
        return viewer

    def leave(self, viewer: Viewer) -> None:
        if viewer.share.viewers.pop(viewer.id, None) is not None:
            self._ip_viewers[viewer.ip] -= 1
            if not self._ip_viewers[viewer.ip]:
                del self._ip_viewers[viewer.ip]
