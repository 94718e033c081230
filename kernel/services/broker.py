"""AuthorityBroker and BrokerAdmin: the bundle a session's shell may hold.

Init offers caps for named profiles (from the manifest's `bundles`); a
shell presents its UserSession and receives a copy of that session plus
every cap offered to its profile, each bound to the session's lease, so
logging out revokes them wherever they were copied. The broker checks the
session is one the SessionManager issued and still live: holding the
object is the proof, as everywhere.
"""

from __future__ import annotations

from kernel import abi
from kernel.capobject import CallContext, KernelService
from kernel.captable import CapEntry, Origin, TransferPolicy
from kernel.errors import CapError
from kernel.services.sessions import UserSession

PROFILES = ("anonymous", "guest", "operator")


class AuthorityBroker(KernelService):
    interface_name = "AuthorityBroker"

    def __init__(self) -> None:
        super().__init__()
        self.offers: dict[str, tuple[CapEntry, frozenset[str]]] = {}

    def shellBundle(self, ctx: CallContext, params: dict) -> tuple[dict, list[CapEntry]]:
        session = ctx.param_cap(params["session"]).obj
        if not isinstance(session, UserSession):
            raise CapError.invalid_argument("that is not a session the SessionManager issued")
        if not session.lease.live:
            raise CapError.disconnected(f"that session has ended: it {session.lease.ended}")
        lease = session.lease  # every cap issued here, and each copy of it, ends with it
        names = ["session"]
        caps = [
            CapEntry(
                session, session.interface_id, TransferPolicy.COPY, Origin.RESULT_CAP, lease=lease
            )
        ]
        for name, (entry, profiles) in self.offers.items():
            if session.profile in profiles:
                names.append(name)
                caps.append(
                    CapEntry(
                        entry.obj, entry.interface_id, entry.policy, Origin.RESULT_CAP, lease=lease
                    )
                )
        ctx.require_result_room(
            {"caps": [{"name": n, "cap": i} for i, n in enumerate(names)]}, len(caps)
        )
        return {"caps": [{"name": n, "cap": i} for i, n in enumerate(names)]}, caps


class BrokerAdmin(KernelService):
    interface_name = "BrokerAdmin"

    def __init__(self, broker: AuthorityBroker) -> None:
        super().__init__()
        self.broker = broker

    def offer(self, ctx: CallContext, params: dict) -> dict:
        name = params["name"]
        if not name or len(name.encode()) > abi.CAPSET_NAME_MAX or name == "session":
            raise CapError.invalid_argument(f"bundle name {name!r} is not usable")
        unknown = set(params["profiles"]) - set(PROFILES)
        if unknown:
            raise CapError.invalid_argument(
                f"unknown profiles {sorted(unknown)}; use {', '.join(PROFILES)}"
            )
        entry = ctx.param_cap(params["cap"])
        if entry.policy is TransferPolicy.NON_TRANSFERABLE:
            raise CapError.invalid_argument(f"a {entry.obj.describe()} cannot be offered")
        self.broker.offers[name] = (entry, frozenset(params["profiles"]))
        return {}
