"""Request authentication: which scheme a request uses (SigV4 header or query, SigV2 header
or query, none) and what it concludes. The schemes themselves live in `sigv4` and `sigv2`,
which share only `common`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from s3facade.auth import sigv2
from s3facade.auth.common import (
    AuthContext,
    RequestView,
    check_skew,
    no_date,
    parse_http_date,
    parse_query,
    unauthenticated_payload,
)
from s3facade.auth.sigv4 import ALGORITHM, ECDSA_ALGORITHM, SigV4
from s3facade.errors import S3Error


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
        self._v4 = SigV4(secret_for, region)

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
                return self._v4.header(req, pairs, auth, self._now())
            if scheme == ECDSA_ALGORITHM:
                raise S3Error("NotImplemented", "SigV4a (AWS4-ECDSA-P256-SHA256) is not supported.")
            if scheme == "AWS":
                sent = req.headers.get("x-amz-date") or req.headers.get("date") or ""
                when = parse_http_date(sent)
                if when is None:
                    raise no_date()
                check_skew(when, sent, self._now())
                key = sigv2.verify_header(req, pairs, auth, self._secret_for, vhost_bucket)
                return self._v2_context(key, req.headers, presigned=False)
            raise S3Error(
                "InvalidArgument",
                "Unsupported Authorization Type",
                extra={"ArgumentName": "Authorization", "ArgumentValue": auth},
            )
        if v4q:
            return self._v4.presigned(req, pairs, self._now())
        if v2q:
            key = sigv2.verify_query(req, pairs, self._secret_for, self._now(), vhost_bucket)
            return self._v2_context(key, req.headers, presigned=True)
        mode, digest = unauthenticated_payload(req.headers)
        return AuthContext(None, mode, digest, None, presigned=False, signature_version=None)

    @staticmethod
    def _v2_context(key: str, headers: Mapping[str, str], *, presigned: bool) -> AuthContext:
        mode, digest = unauthenticated_payload(headers)
        return AuthContext(key, mode, digest, None, presigned=presigned, signature_version="v2")
