"""AWS Signature Version 4: the Authorization header and presigned query forms.

https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote_to_bytes

from s3facade.auth.common import (
    MAX_SKEW,
    SERVICE,
    SIGNED_STREAMING,
    TERMINATOR,
    UNSIGNED_PAYLOAD,
    AuthContext,
    ChunkSigner,
    PayloadMode,
    RequestView,
    check_skew,
    classify_payload,
    hmac_hex,
    iso,
    lookup_secret,
    no_date,
    parse_amz_date,
    parse_http_date,
    signing_key,
    to_wire,
    uri_encode,
)
from s3facade.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
ECDSA_ALGORITHM = "AWS4-ECDSA-P256-SHA256"
MAX_PRESIGN_EXPIRES = 604800  # seven days, AWS's limit for X-Amz-Expires

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


def canonical_uri(raw_path: bytes) -> str:
    # Decode then re-encode each segment: a client that sent '(' raw and signed '%28'
    # still matches, and %2F inside a segment stays %2F. No '.'/'//' normalisation (S3).
    if not raw_path:
        return "/"
    return "/".join(uri_encode(unquote_to_bytes(seg)) for seg in raw_path.split(b"/"))


def canonical_query(pairs: Sequence[tuple[bytes, bytes]], exclude: bytes | None = None) -> str:
    encoded = sorted((uri_encode(n), uri_encode(v)) for n, v in pairs if n != exclude)
    return "&".join(f"{n}={v}" for n, v in encoded)


def _trimall(value: str) -> str:
    # Only ASCII blanks: a latin-1-decoded UTF-8 value may hold \xa0 bytes that are data.
    return re.sub(r"[ \t]+", " ", value).strip(" \t")


def _hex_bytes(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


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


class SigV4:
    def __init__(self, secret_for: Callable[[str], str | None], region: str) -> None:
        self._secret_for = secret_for
        self._region = region

    # --- Authorization header ----------------------------------------------------------

    def header(
        self, req: RequestView, pairs: list[tuple[bytes, bytes]], auth: str, now: datetime
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
        secret = lookup_secret(self._secret_for, cred.access_key)

        amz_date = req.headers.get("x-amz-date")
        when = parse_amz_date(amz_date) if amz_date is not None else None
        if amz_date is None and "date" in req.headers:
            amz_date = req.headers["date"]
            when = parse_http_date(amz_date)
        if when is None or amz_date is None:
            raise no_date()
        iso_date = when.strftime("%Y%m%dT%H%M%SZ")
        if cred.date != iso_date[:8]:
            raise malformed(
                f'Invalid credential date "{cred.date}". This date is not the '
                f'same as X-Amz-Date: "{iso_date[:8]}".'
            )
        check_skew(when, amz_date, now)

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

    def presigned(
        self, req: RequestView, pairs: list[tuple[bytes, bytes]], now: datetime
    ) -> AuthContext:
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
        when = parse_amz_date(amz_date)
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
        secret = lookup_secret(self._secret_for, cred.access_key)

        deadline = when + timedelta(seconds=expires)
        if when > now + MAX_SKEW:
            # AWS reports X-Amz-Date here in epoch milliseconds; mirror it.
            raise S3Error(
                "AccessDenied",
                "Request is not yet valid",
                extra={
                    "X-Amz-Date": str(int(when.timestamp() * 1000)),
                    "Expires": iso(deadline),
                    "ServerTime": iso(now),
                },
            )
        if now > deadline:
            raise S3Error(
                "AccessDenied",
                "Request has expired",
                extra={
                    "X-Amz-Expires": raw_expires,
                    "Expires": iso(deadline),
                    "ServerTime": iso(now),
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
                if hmac.compare_digest(hmac_hex(key, sts).encode(), wanted):
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
        if mode in SIGNED_STREAMING:  # the request's signature seeds the chunk chain
            signer = ChunkSigner(key, self.amz_date, self.cred.scope, signature.strip().lower())
        return AuthContext(self.cred.access_key, mode, digest, signer, presigned, "v4")
