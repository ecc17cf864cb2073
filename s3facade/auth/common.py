"""What SigV4 and SigV2 share: the request as it arrived, what authentication concluded
(principal, payload mode), payload classification, dates and the secret lookup.

Everything is computed from the request exactly as it arrived on the wire
(COMPATIBILITY rule 14): the raw path, the raw query string and the header values as sent.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote_from_bytes, unquote_to_bytes

from s3facade.errors import S3Error

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = timedelta(minutes=15)
SERVICE = "s3"
TERMINATOR = "aws4_request"

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")


class PayloadMode(enum.Enum):
    SIGNED = "signed"  # x-amz-content-sha256 is the hex SHA-256 of the body
    UNSIGNED = UNSIGNED_PAYLOAD
    STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


_KEYWORDS = {m.value: m for m in PayloadMode if m is not PayloadMode.SIGNED}
_ECDSA_PAYLOADS = frozenset(
    {"STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"}
)
SIGNED_STREAMING = frozenset({PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER})


@dataclass(frozen=True)
class RequestView:
    method: str
    raw_path: bytes  # exactly as on the wire, without the query (ASGI scope["raw_path"])
    raw_query: bytes  # ASGI scope["query_string"]
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ","


@dataclass(frozen=True)
class ChunkSigner:
    """Verifies the chained chunk signatures of a STREAMING-AWS4-HMAC-SHA256-* body."""

    signing_key: bytes
    amz_date: str
    scope: str  # "20130524/us-east-1/s3/aws4_request"
    seed_signature: str

    def chunk_signature(self, previous: str, chunk_sha256_hex: str) -> str:
        head = ("AWS4-HMAC-SHA256-PAYLOAD", self.amz_date, self.scope, previous)
        return hmac_hex(self.signing_key, *head, EMPTY_SHA256, chunk_sha256_hex)

    def trailer_signature(self, previous: str, canonical_trailers: bytes) -> str:
        """`canonical_trailers` is "name:value\\n" for each trailer, signature excluded."""
        head = ("AWS4-HMAC-SHA256-TRAILER", self.amz_date, self.scope, previous)
        return hmac_hex(self.signing_key, *head, hashlib.sha256(canonical_trailers).hexdigest())


@dataclass(frozen=True)
class AuthContext:
    principal: str | None  # access key id; None for an anonymous request
    payload: PayloadMode
    expected_sha256: str | None  # for SIGNED: the hex digest the body must have
    chunk_signer: ChunkSigner | None  # for STREAMING_SIGNED*
    presigned: bool
    signature_version: str | None  # "v4", "v2" or None (anonymous)


def hmac_hex(key: bytes, *lines: str) -> str:
    """Hex HMAC-SHA256 of the lines joined with newlines (every SigV4 string to sign)."""
    return hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).hexdigest()


def uri_encode(raw: bytes) -> str:
    """AWS UriEncode: A-Za-z0-9-._~ kept, every other byte %XX (uppercase), '/' too."""
    return quote_from_bytes(raw, safe="")


def parse_query(raw_query: bytes) -> list[tuple[bytes, bytes]]:
    """Decoded (name, value) pairs in wire order; '+' means space (rule 14)."""

    def decode(raw: bytes) -> bytes:
        return unquote_to_bytes(raw.replace(b"+", b" "))

    parts = (part.partition(b"=") for part in raw_query.split(b"&") if part)
    return [(decode(name), decode(value)) for name, _, value in parts]


def to_wire(text: str) -> bytes:
    """Header text back to its wire bytes (Starlette decodes header bytes as latin-1)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_amz_date(value: str) -> datetime | None:
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_http_date(value: str) -> datetime | None:
    """An RFC 1123 Date header (or an ISO basic x-amz-date) as an aware datetime."""
    parsed = parse_amz_date(value.strip())
    if parsed is not None:
        return parsed
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def check_skew(request_time: datetime, sent: str, now: datetime) -> None:
    if abs(now - request_time) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            extra={
                "RequestTime": sent,
                "ServerTime": iso(now),
                "MaxAllowedSkewMilliseconds": str(int(MAX_SKEW.total_seconds() * 1000)),
            },
        )


def classify_payload(value: str) -> tuple[PayloadMode, str | None]:
    """The payload mode an x-amz-content-sha256 value announces, and the digest if any."""
    if _HEX64.fullmatch(value):
        return PayloadMode.SIGNED, value.lower()
    if value in _KEYWORDS:
        return _KEYWORDS[value], None
    if value in _ECDSA_PAYLOADS:
        raise S3Error("NotImplemented", "SigV4a (ECDSA) streaming payloads are not supported.")
    raise S3Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
        "or a valid sha256 value.",
        extra={"ArgumentName": "x-amz-content-sha256", "ArgumentValue": value},
    )


def unauthenticated_payload(headers: Mapping[str, str]) -> tuple[PayloadMode, str | None]:
    """Payload mode for requests whose signature cannot cover chunks (anonymous, SigV2)."""
    value = headers.get("x-amz-content-sha256")
    if value is None:
        return PayloadMode.UNSIGNED, None
    mode, digest = classify_payload(value)
    if mode in SIGNED_STREAMING:
        raise S3Error("InvalidRequest", f"{value} requires an AWS Signature Version 4 request.")
    return mode, digest


def lookup_secret(secret_for: Callable[[str], str | None], access_key: str) -> str:
    secret = secret_for(access_key)
    if secret is None:
        raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key})
    return secret


def no_date() -> S3Error:
    return S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
