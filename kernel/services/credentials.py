"""CredentialStore: password verifiers, volatile (they end when the system halts).

Verifiers are scrypt hashes (memory-hard); a lookup of an unknown account
still spends a hash, so timing does not tell which part of a login was
wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from kernel.capobject import CallContext, KernelService

USERNAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MIN_PASSWORD = 4
MAX_PASSWORD = 256
_SCRYPT = {"n": 2**12, "r": 8, "p": 1, "dklen": 32}


class CredentialError(ValueError):
    """A username or password the store will not accept; the message says why."""


class CredentialStore(KernelService):
    interface_name = "CredentialStore"

    def __init__(self, entropy) -> None:
        super().__init__()
        self._entropy = entropy
        self._verifiers: dict[str, tuple[bytes, bytes]] = {}  # username -> (salt, hash)
        self._dummy_salt = entropy(16)

    def hasAccount(self, ctx: CallContext, params: dict) -> dict:
        return {"exists": params["username"] in self._verifiers}

    # --- for the SessionManager ------------------------------------------------------

    def create(self, username: str, password: str) -> None:
        if not USERNAME_RE.match(username):
            raise CredentialError("a username is 1-32 of a-z 0-9 _ -, starting with a letter")
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise CredentialError(f"a password is {MIN_PASSWORD}-{MAX_PASSWORD} characters")
        if username in self._verifiers:
            raise CredentialError(f"account {username!r} already exists: use `login`")
        salt = self._entropy(16)
        self._verifiers[username] = (salt, _hash(password, salt))

    def verify(self, username: str, password: str) -> bool:
        salt, expected = self._verifiers.get(username, (self._dummy_salt, b""))
        actual = _hash(password[:MAX_PASSWORD], salt)
        return hmac.compare_digest(actual, expected) and bool(expected)


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
