"""AWS Signature Version 4 for requests we send upstream (the header form only).

The verifier in s3facade/ checks what clients send us; this is its mirror image for the
upstream backend, kept here because backends/ imports nothing from the protocol layer.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = ["EMPTY_SHA256", "UNSIGNED_PAYLOAD", "Signer", "canonical_query", "uri_encode"]

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_ALGORITHM = "AWS4-HMAC-SHA256"


def uri_encode(text: str, *, keep_slash: bool = False) -> str:
    """RFC 3986 encoding as SigV4 wants it: only A-Z a-z 0-9 - _ . ~ stay literal."""
    return quote(text, safe="-_.~/" if keep_slash else "-_.~")


def canonical_query(params: Sequence[tuple[str, str]]) -> str:
    """The query string, encoded and sorted; we send exactly this string."""
    encoded = sorted((uri_encode(k), uri_encode(v)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


@dataclass
class Signer:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str
    service: str = "s3"
    _keys: dict[str, bytes] = field(default_factory=dict, repr=False)

    def signing_key(self, day: str) -> bytes:
        key = self._keys.get(day)
        if key is None:  # derived once per day, not per request
            key = _hmac(("AWS4" + self.secret_access_key).encode(), day)
            for part in (self.region, self.service, "aws4_request"):
                key = _hmac(key, part)
            self._keys = {day: key}
        return key

    def sign(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        payload_hash: str,
        now: datetime | None = None,
    ) -> dict[str, str]:
        """Headers to send: `headers` (must hold `host`) plus x-amz-date,
        x-amz-content-sha256 and Authorization. `path` is already URI-encoded, `query`
        already canonical; every given header is signed."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
        signed["x-amz-date"] = stamp
        signed["x-amz-content-sha256"] = payload_hash
        names = sorted(signed)
        canonical = "\n".join(
            [
                method,
                path,
                query,
                "".join(f"{name}:{signed[name]}\n" for name in names),
                ";".join(names),
                payload_hash,
            ]
        )
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(
            [_ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        signature = hmac.new(self.signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        signed["authorization"] = (
            f"{_ALGORITHM} Credential={self.access_key_id}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return signed
