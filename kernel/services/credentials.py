"""CredentialStore: password verifiers, volatile (they end when the system halts).

Verifiers are scrypt hashes (memory-hard); a lookup of an unknown account
still spends a hash, so timing does not tell which part of a login was
wrong. Pyodide's Python has no OpenSSL, hence no scrypt: a tab's kernel
uses PBKDF2-HMAC-SHA256 on the built-in SHA-256 instead (its accounts live
and die in that tab).
"""

from __future__ import annotations

import re

from kernel.capobject import CallContext, KernelService

USERNAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MIN_PASSWORD = 4
MAX_PASSWORD = 256
_SCRYPT = {"n": 2**12, "r": 8, "p": 1, "dklen": 32}
PBKDF2_ITERATIONS = 20_000  # about 0.2 s in a browser's WebAssembly Python


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
        import hmac  # as hashlib in _hash: it imports hashlib

        return hmac.compare_digest(actual, expected) and bool(expected)


def _hash(password: str, salt: bytes) -> bytes:
    import hashlib  # here, not at boot: it loads OpenSSL, and only a password needs it

    if hasattr(hashlib, "scrypt"):
        return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return pbkdf2_sha256(password.encode(), salt, PBKDF2_ITERATIONS)


def pbkdf2_sha256(password: bytes, salt: bytes, iterations: int) -> bytes:
    """RFC 8018 PBKDF2 with HMAC-SHA256, one 32-byte block, for Pythons without OpenSSL.

    The HMAC pads are hashed once and copied per iteration, the usual trick
    that halves the work of calling `hmac.new` each time.
    """
    import hashlib  # as in _hash

    if len(password) > 64:
        password = hashlib.sha256(password).digest()
    key = password.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def prf(data: bytes) -> bytes:
        first = inner.copy()
        first.update(data)
        second = outer.copy()
        second.update(first.digest())
        return second.digest()

    block = prf(salt + b"\x00\x00\x00\x01")
    result = int.from_bytes(block, "big")
    for _ in range(iterations - 1):
        block = prf(block)
        result ^= int.from_bytes(block, "big")
    return result.to_bytes(32, "big")
