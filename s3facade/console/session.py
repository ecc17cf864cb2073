"""Console sessions: a signed cookie naming the user, its expiry and a nonce.

The cookie is `<payload>.<mac>`: the payload is base64url JSON {"k": access key id, "e":
expiry (Unix seconds), "n": nonce}; the mac is HMAC-SHA256 over the payload with a key
made at random when the process starts, so a server restart signs everybody out and no
key is kept anywhere. Signing out revokes the nonce (in memory, until it would expire).
Secrets are compared in constant time; an unknown access key costs the same comparison.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

COOKIE = "s3facade_console"
COOKIE_PATH = "/-/console"
LIFETIME_SECONDS = 12 * 3600
_MAX_COOKIE = 4096
_DUMMY_SECRET = secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Session:
    access_key: str
    expires: int  # Unix seconds
    nonce: str


def secret_matches(credentials: Mapping[str, str], access_key: str, secret: str) -> bool:
    """Constant time in the secret, and the same work for an unknown access key."""
    stored = credentials.get(access_key)
    expected = (stored if stored is not None else _DUMMY_SECRET).encode()
    same = hmac.compare_digest(hashlib.sha256(expected).digest(), _sha(secret))
    return stored is not None and same


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class SessionSigner:
    def __init__(
        self,
        lifetime: int = LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
        key: bytes | None = None,
    ) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self.lifetime = lifetime
        self._clock = clock
        self._revoked: dict[str, int] = {}  # nonce -> expiry

    def issue(self, access_key: str) -> tuple[str, Session]:
        session = Session(access_key, int(self._clock()) + self.lifetime, secrets.token_hex(16))
        fields = {"k": session.access_key, "e": session.expires, "n": session.nonce}
        payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}", session

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie carries; None if absent, forged, expired or revoked."""
        if not cookie or len(cookie) > _MAX_COOKIE or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(self._mac(payload), mac):
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(str(fields["k"]), int(fields["e"]), str(fields["n"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        now = int(self._clock())
        if session.expires <= now or session.nonce in self._revoked:
            return None
        return session

    def revoke(self, session: Session) -> None:
        now = int(self._clock())
        self._revoked = {n: e for n, e in self._revoked.items() if e > now}
        self._revoked[session.nonce] = session.expires

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii", "replace"), "sha256").digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
