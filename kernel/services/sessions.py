"""SessionManager and UserSession: who a shell acts for.

A session is policy context, never authority: it selects which bundle the
AuthorityBroker mints. Login failures are rate-limited per calling
session, and a refusal never says whether the name or the password was
wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel.capobject import CallContext, KernelService
from kernel.captable import CapEntry, Origin, TransferPolicy
from kernel.lease import Lease
from kernel.services.credentials import CredentialError, CredentialStore

if TYPE_CHECKING:
    from kernel.kernel import Kernel

FREE_ATTEMPTS = 3  # wrong passwords before the delays start
MAX_DELAY_S = 60


class UserSession(KernelService):
    interface_name = "UserSession"

    def __init__(self, profile: str, username: str, session_id: bytes, chain: list[str]) -> None:
        super().__init__()
        self.profile = profile
        self.username = username
        self.session_id = session_id
        self.chain = chain
        self.lease = Lease()  # the broker binds this session's bundles to it

    def describe(self) -> str:
        return f"UserSession ({self.profile})"

    def info(self, ctx: CallContext, params: dict) -> dict:
        return {
            "info": {
                "profile": self.profile,
                "username": self.username,
                "sessionId": self.session_id,
                "delegationChain": self.chain,
            }
        }

    def logout(self, ctx: CallContext, params: dict) -> dict:
        """End the session: every cap issued under it fails from now on, wherever it is."""
        self.lease.end("logged out")
        return {}


@dataclass
class _Attempts:
    failures: int = 0
    not_before_ns: int = 0


class SessionManager(KernelService):
    interface_name = "SessionManager"

    def __init__(self, kernel: Kernel, credentials: CredentialStore) -> None:
        super().__init__()
        self.kernel = kernel
        self.credentials = credentials
        self._attempts: dict[bytes, _Attempts] = {}

    def anonymous(self, ctx: CallContext, params: dict) -> tuple[dict, list[CapEntry]]:
        return {"session": 0}, [self._session("anonymous", "", ["anonymous"])]

    def guest(self, ctx: CallContext, params: dict) -> tuple[dict, list[CapEntry]]:
        return {"result": {"session": 0}}, [self._session("guest", "", ["guest"])]

    def login(self, ctx: CallContext, params: dict) -> dict | tuple[dict, list[CapEntry]]:
        attempts = self._attempts.setdefault(ctx.caller.session.session_id, _Attempts())
        now = self.kernel.host.now_ns()
        if now < attempts.not_before_ns:
            wait = -(-(attempts.not_before_ns - now) // 10**9)
            return {"result": {"refused": f"too many failed logins: try again in {wait} s"}}
        if not self.credentials.verify(params["username"], params["password"]):
            attempts.failures += 1
            if attempts.failures >= FREE_ATTEMPTS:
                delay = min(MAX_DELAY_S, 2 ** (attempts.failures - FREE_ATTEMPTS))
                attempts.not_before_ns = now + delay * 10**9
            return {"result": {"refused": "login incorrect"}}
        attempts.failures = 0
        session = self._session("operator", params["username"], ["password-login"])
        return {"result": {"session": 0}}, [session]

    def setup(self, ctx: CallContext, params: dict) -> dict | tuple[dict, list[CapEntry]]:
        try:
            self.credentials.create(params["username"], params["password"])
        except CredentialError as exc:
            return {"result": {"refused": str(exc)}}
        session = self._session("operator", params["username"], ["setup", "password-login"])
        return {"result": {"session": 0}}, [session]

    def _session(self, profile: str, username: str, chain: list[str]) -> CapEntry:
        session = UserSession(profile, username, self.kernel.host.entropy(16), chain)
        return CapEntry(session, session.interface_id, TransferPolicy.COPY, Origin.RESULT_CAP)
