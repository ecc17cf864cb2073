"""Request authentication: SigV4 (Authorization header and presigned query) and SigV2.

Everything is computed from the request exactly as it arrived on the wire
(COMPATIBILITY rule 14): the raw path, the raw query string and the header values
as sent. SigV2 lives in `s3facade.sigv2`; `Authenticator` dispatches to it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote_from_bytes, unquote_to_bytes

from s3facade import sigv2
from s3facade.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
ECDSA_ALGORITHM = "AWS4-ECDSA-P256-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 604800  # seven days, AWS's limit for X-Amz-Expires

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_PRESIGN_PARAMS: tuple[str, ...] = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
)
_PRESIGN_PARAMS += ("X-Amz-SignedHeaders", "X-Amz-Expires")
# Unsigned x-amz-* headers tolerated (presigned or Authorization header): they only add
# integrity checks, or are covered by the signature some other way (the payload hash and
# the date are part of the string to sign), so they cannot change what the signer authorised.
_UNSIGNED_OK: tuple[str, ...] = (
    "x-amz-content-sha256",
    "x-amz-checksum-",
    "x-amz-sdk-checksum-algorithm",
)
_UNSIGNED_OK += ("x-amz-trailer", "x-amz-decoded-content-length", "x-amz-date")


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
_SIGNED_STREAMING = frozenset({PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER})


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
        return _sign(self.signing_key, *head, EMPTY_SHA256, chunk_sha256_hex)

    def trailer_signature(self, previous: str, canonical_trailers: bytes) -> str:
        """`canonical_trailers` is "name:value\\n" for each trailer, signature excluded."""
        head = ("AWS4-HMAC-SHA256-TRAILER", self.amz_date, self.scope, previous)
        return _sign(self.signing_key, *head, hashlib.sha256(canonical_trailers).hexdigest())


@dataclass(frozen=True)
class AuthContext:
    principal: str | None  # access key id; None for an anonymous request
    payload: PayloadMode
    expected_sha256: str | None  # for SIGNED: the hex digest the body must have
    chunk_signer: ChunkSigner | None  # for STREAMING_SIGNED*
    presigned: bool
    signature_version: str | None  # "v4", "v2" or None (anonymous)


# --- canonical forms ------------------------------------------------------------------


def _sign(key: bytes, *lines: str) -> str:
    """Hex HMAC-SHA256 of the lines joined with newlines (every SigV4 string to sign)."""
    return hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).hexdigest()


def uri_encode(raw: bytes) -> str:
    """AWS UriEncode: A-Za-z0-9-._~ kept, every other byte %XX (uppercase), '/' too."""
    return quote_from_bytes(raw, safe="")


def canonical_uri(raw_path: bytes) -> str:
    # Decode then re-encode each segment: a client that sent '(' raw and signed '%28'
    # still matches, and %2F inside a segment stays %2F. No '.'/'//' normalisation (S3).
    if not raw_path:
        return "/"
    return "/".join(uri_encode(unquote_to_bytes(seg)) for seg in raw_path.split(b"/"))


def parse_query(raw_query: bytes) -> list[tuple[bytes, bytes]]:
    """Decoded (name, value) pairs in wire order; '+' means space (rule 14)."""

    def decode(raw: bytes) -> bytes:
        return unquote_to_bytes(raw.replace(b"+", b" "))

    parts = (part.partition(b"=") for part in raw_query.split(b"&") if part)
    return [(decode(name), decode(value)) for name, _, value in parts]


def canonical_query(pairs: Sequence[tuple[bytes, bytes]], exclude: bytes | None = None) -> str:
    encoded = sorted((uri_encode(n), uri_encode(v)) for n, v in pairs if n != exclude)
    return "&".join(f"{n}={v}" for n, v in encoded)


def _trimall(value: str) -> str:
    # Only ASCII blanks: a latin-1-decoded UTF-8 value may hold \xa0 bytes that are data.
    return re.sub(r"[ \t]+", " ", value).strip(" \t")


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


def _hex_bytes(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_amz_date(value: str) -> datetime | None:
    if not _AMZ_DATE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_http_date(value: str) -> datetime | None:
    """An RFC 1123 Date header (or an ISO basic x-amz-date) as an aware datetime."""
    parsed = _parse_amz_date(value.strip())
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
                "ServerTime": _iso(now),
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
    if mode in _SIGNED_STREAMING:
        raise S3Error("InvalidRequest", f"{value} requires an AWS Signature Version 4 request.")
    return mode, digest


@dataclass(frozen=True)
class _Credential:
    access_key: str
    date: str
    region: str
    service: str
    terminator: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Authenticator:
    def __init__(
        self,
        secret_for: Callable[[str], str | None],
        region: str,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._secret_for = secret_for
        self._region = region
        self._clock = clock

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    def authenticate(self, req: RequestView, *, vhost_bucket: str | None = None) -> AuthContext:
        """Verify `req`; raises S3Error. `vhost_bucket` (virtual-hosted style) only
        matters to SigV2, whose signed resource always starts with /bucket."""
        pairs = parse_query(req.raw_query)
        names = {n for n, _ in pairs}
        v4q = bool(names & {b"X-Amz-Algorithm", b"X-Amz-Credential", b"X-Amz-Signature"})
        v2q = bool(names & {b"AWSAccessKeyId", b"Signature"})
        auth = req.headers.get("authorization", "").strip()
        if (auth and (v4q or v2q)) or (v4q and v2q):
            raise S3Error(
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be specified",
                extra={"ArgumentName": "Authorization", "ArgumentValue": auth or "(query)"},
            )
        if auth:
            scheme = auth.split(" ", 1)[0]
            if scheme == ALGORITHM:
                return self._header_v4(req, pairs, auth)
            if scheme == ECDSA_ALGORITHM:
                raise S3Error("NotImplemented", "SigV4a (AWS4-ECDSA-P256-SHA256) is not supported.")
            if scheme == "AWS":
                sent = req.headers.get("x-amz-date") or req.headers.get("date") or ""
                when = parse_http_date(sent)
                if when is None:
                    raise _no_date()
                check_skew(when, sent, self._now())
                key = sigv2.verify_header(req, pairs, auth, self._secret_for, vhost_bucket)
                return self._v2_context(key, req.headers, presigned=False)
            raise S3Error(
                "InvalidArgument",
                "Unsupported Authorization Type",
                extra={"ArgumentName": "Authorization", "ArgumentValue": auth},
            )
        if v4q:
            return self._presigned_v4(req, pairs)
        if v2q:
            key = sigv2.verify_query(req, pairs, self._secret_for, self._now(), vhost_bucket)
            return self._v2_context(key, req.headers, presigned=True)
        mode, digest = unauthenticated_payload(req.headers)
        return AuthContext(None, mode, digest, None, presigned=False, signature_version=None)

    @staticmethod
    def _v2_context(key: str, headers: Mapping[str, str], *, presigned: bool) -> AuthContext:
        mode, digest = unauthenticated_payload(headers)
        return AuthContext(key, mode, digest, None, presigned=presigned, signature_version="v2")

    # --- Authorization header ----------------------------------------------------------

    def _header_v4(
        self, req: RequestView, pairs: list[tuple[bytes, bytes]], auth: str
    ) -> AuthContext:
        def malformed(detail: str) -> S3Error:
            return S3Error(
                "AuthorizationHeaderMalformed", f"The authorization header is malformed; {detail}"
            )

        fields: dict[str, str] = {}
        for item in auth[len(ALGORITHM) :].split(","):
            name, sep, value = item.strip().partition("=")
            if not sep:
                raise malformed(f'the authorization component "{item.strip()}" is malformed.')
            fields[name.strip()] = value.strip()
        for required in ("Credential", "SignedHeaders", "Signature"):
            if required not in fields:
                raise malformed(f"the authorization header requires '{required}' component.")
        cred = self._credential(fields["Credential"], malformed)
        signed = fields["SignedHeaders"]
        signed_names = signed.split(";")
        if "host" not in signed_names:
            raise malformed("SignedHeaders must include 'host'.")
        secret = self._lookup(cred.access_key)

        amz_date = req.headers.get("x-amz-date")
        when = _parse_amz_date(amz_date) if amz_date is not None else None
        if amz_date is None and "date" in req.headers:
            amz_date = req.headers["date"]
            when = parse_http_date(amz_date)
        if when is None or amz_date is None:
            raise _no_date()
        iso_date = when.strftime("%Y%m%dT%H%M%SZ")
        if cred.date != iso_date[:8]:
            raise malformed(
                f'Invalid credential date "{cred.date}". This date is not the '
                f'same as X-Amz-Date: "{iso_date[:8]}".'
            )
        check_skew(when, amz_date, self._now())

        content_sha = req.headers.get("x-amz-content-sha256")
        if content_sha is None:
            raise S3Error(
                "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
            )
        mode, digest = classify_payload(content_sha)
        _require_signed(req.headers, signed_names)
        canonical = _Canonical(req, pairs, None, signed, iso_date, cred)
        key = canonical.verify(secret, [content_sha], fields["Signature"])
        return canonical.context(key, fields["Signature"], mode, digest, presigned=False)

    # --- presigned URL -------------------------------------------------------------------

    def _presigned_v4(self, req: RequestView, pairs: list[tuple[bytes, bytes]]) -> AuthContext:
        def bad(detail: str) -> S3Error:
            return S3Error("AuthorizationQueryParametersError", detail)

        params: dict[str, str] = {}
        for name, value in pairs:
            params.setdefault(name.decode("utf-8", "replace"), value.decode("utf-8", "replace"))
        if any(p not in params for p in _PRESIGN_PARAMS):
            raise bad(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, "
                "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
                "X-Amz-Expires parameters."
            )
        if params["X-Amz-Algorithm"] == ECDSA_ALGORITHM:
            raise S3Error("NotImplemented", "SigV4a (AWS4-ECDSA-P256-SHA256) is not supported.")
        if params["X-Amz-Algorithm"] != ALGORITHM:
            raise bad('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
        cred = self._credential(
            params["X-Amz-Credential"],
            lambda d: bad(f"Error parsing the X-Amz-Credential parameter; {d}"),
        )
        amz_date = params["X-Amz-Date"]
        when = _parse_amz_date(amz_date)
        if when is None:
            raise bad("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
        raw_expires = params["X-Amz-Expires"]
        if not raw_expires.lstrip("-").isdigit():
            raise bad("X-Amz-Expires should be a number")
        expires = int(raw_expires)
        if expires < 1:
            raise bad("X-Amz-Expires must be non-negative and at least 1 second")
        if expires > MAX_PRESIGN_EXPIRES:
            raise bad("X-Amz-Expires must be less than a week (in seconds) that is 604800")
        if cred.date != amz_date[:8]:
            raise bad(
                f'Invalid credential date "{cred.date}". This date is not the same as '
                f'X-Amz-Date: "{amz_date[:8]}".'
            )
        signed = params["X-Amz-SignedHeaders"]
        signed_names = signed.split(";")
        if "host" not in signed_names:
            raise bad("X-Amz-SignedHeaders must include 'host'.")
        secret = self._lookup(cred.access_key)

        now = self._now()
        deadline = when + timedelta(seconds=expires)
        if when > now + MAX_SKEW:
            # AWS reports X-Amz-Date here in epoch milliseconds; mirror it.
            raise S3Error(
                "AccessDenied",
                "Request is not yet valid",
                extra={
                    "X-Amz-Date": str(int(when.timestamp() * 1000)),
                    "Expires": _iso(deadline),
                    "ServerTime": _iso(now),
                },
            )
        if now > deadline:
            raise S3Error(
                "AccessDenied",
                "Request has expired",
                extra={
                    "X-Amz-Expires": raw_expires,
                    "Expires": _iso(deadline),
                    "ServerTime": _iso(now),
                },
            )
        _require_signed(req.headers, signed_names)

        # Rule 17: a pinned payload hash (query, or a signed header) is honoured. It is
        # covered by the canonical query/headers, so whichever payload line the client
        # used (the pin, or UNSIGNED-PAYLOAD as botocore does) it stays authenticated.
        pinned = params.get("X-Amz-Content-Sha256")
        if pinned is None and "x-amz-content-sha256" in signed_names:
            pinned = req.headers.get("x-amz-content-sha256")
        if pinned is not None:
            mode, digest = classify_payload(pinned)
            lines = list(dict.fromkeys([pinned, UNSIGNED_PAYLOAD]))
        else:
            # An unsigned header only adds checks (a hash the caller verifies, or chunk
            # signatures chained on this URL's signature), so it may pick the mode.
            header = req.headers.get("x-amz-content-sha256")
            mode, digest = (
                (PayloadMode.UNSIGNED, None) if header is None else (classify_payload(header))
            )
            lines = [UNSIGNED_PAYLOAD]
        canonical = _Canonical(req, pairs, b"X-Amz-Signature", signed, amz_date, cred)
        key = canonical.verify(secret, lines, params["X-Amz-Signature"])
        return canonical.context(key, params["X-Amz-Signature"], mode, digest, presigned=True)

    # --- shared --------------------------------------------------------------------------

    def _credential(self, value: str, error: Callable[[str], S3Error]) -> _Credential:
        parts = value.rsplit("/", 4)
        if len(parts) != 5 or not parts[0] or not re.fullmatch(r"\d{8}", parts[1]):
            raise error(
                "the Credential is mal-formed; expecting "
                '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
            )
        cred = _Credential(*parts)
        if cred.region != self._region:
            err = error(f"the region '{cred.region}' is wrong; expecting '{self._region}'")
            err.extra["Region"] = self._region
            raise err
        if cred.service != SERVICE:
            raise error(
                f'incorrect service "{cred.service}". This endpoint belongs to "{SERVICE}".'
            )
        if cred.terminator != TERMINATOR:
            raise error(
                f'incorrect terminal "{cred.terminator}". This endpoint uses "{TERMINATOR}".'
            )
        return cred

    def _lookup(self, access_key: str) -> str:
        secret = self._secret_for(access_key)
        if secret is None:
            raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key})
        return secret


def _require_signed(headers: Mapping[str, str], signed_names: Sequence[str]) -> None:
    """Every x-amz-* header must be signed, as AWS requires: an unsigned one could be added
    to a captured request (x-amz-bypass-governance-retention, x-amz-copy-source, lock and
    metadata headers) and change what the signer authorised."""
    unsigned = sorted(
        h
        for h in headers
        if h.startswith("x-amz-") and h not in signed_names and not h.startswith(_UNSIGNED_OK)
    )
    if unsigned:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            extra={"HeadersNotSigned": ", ".join(unsigned)},
        )


def _no_date() -> S3Error:
    return S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


@dataclass(frozen=True)
class _Canonical:
    """The parts of a canonical request fixed before the payload line is chosen."""

    req: RequestView
    pairs: Sequence[tuple[bytes, bytes]]
    exclude: bytes | None  # X-Amz-Signature, left out of a presigned canonical query
    signed: str
    amz_date: str
    cred: _Credential

    def verify(self, secret: str, payload_lines: Sequence[str], provided: str) -> bytes:
        """The signing key if the signature matches with any candidate payload line."""
        req, cred = self.req, self.cred
        headers = "".join(
            f"{name}:{_trimall(req.headers.get(name, ''))}\n" for name in self.signed.split(";")
        )
        path, query = canonical_uri(req.raw_path), canonical_query(self.pairs, self.exclude)
        prefix = f"{req.method.upper()}\n{path}\n{query}\n{headers}\n{self.signed}"
        key = signing_key(secret, cred.date, cred.region)
        wanted = provided.strip().lower().encode("utf-8", "replace")
        first: tuple[bytes, str] | None = None
        for line in payload_lines:
            text = f"{prefix}\n{line}"
            # A non-ASCII header value is signed as its wire bytes by most SDKs; botocore
            # sends it latin-1 encoded but signs its UTF-8 encoding. Either matches.
            for canonical in dict.fromkeys((to_wire(text), text.encode("utf-8"))):
                digest = hashlib.sha256(canonical).hexdigest()
                sts = "\n".join((ALGORITHM, self.amz_date, cred.scope, digest))
                if hmac.compare_digest(_sign(key, sts).encode(), wanted):
                    return key
                first = first or (canonical, sts)
        assert first is not None
        canonical, sts = first
        raise S3Error(
            "SignatureDoesNotMatch",
            extra={
                "AWSAccessKeyId": cred.access_key,
                "StringToSign": sts,
                "SignatureProvided": provided,
                "StringToSignBytes": _hex_bytes(sts.encode()),
                "CanonicalRequest": canonical.decode("latin-1"),
                "CanonicalRequestBytes": _hex_bytes(canonical),
            },
        )

    def context(
        self, key: bytes, signature: str, mode: PayloadMode, digest: str | None, *, presigned: bool
    ) -> AuthContext:
        signer = None
        if mode in _SIGNED_STREAMING:  # the request's signature seeds the chunk chain
            signer = ChunkSigner(key, self.amz_date, self.cred.scope, signature.strip().lower())
        return AuthContext(self.cred.access_key, mode, digest, signer, presigned, "v4")
