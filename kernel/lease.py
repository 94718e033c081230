"""Lease: the session epoch a broker-issued hold edge belongs to.

capOS binds broker-issued bundle caps to the session they were issued for,
and a session that has ended fails closed. Here each UserSession carries
one lease; the broker stamps it on every bundle cap it issues, and every
copy of such a hold edge (a spawn grant, an IPC transfer) carries it on.
Ending the lease (logout) is one store: every CALL through any of those
edges, in the shell or in the children it granted them to, then fails with
`disconnected`, without the kernel finding and clearing each copy.
"""

from __future__ import annotations


class Lease:
    __slots__ = ("ended",)

    def __init__(self) -> None:
        self.ended = ""  # why the session ended; empty while it lives

    @property
    def live(self) -> bool:
        return not self.ended

    def end(self, reason: str) -> None:
        self.ended = self.ended or reason
