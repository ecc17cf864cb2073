"""AWS Signature Version 2 (HMAC-SHA1) for S3: query-string (presigned) and header auth.

Still produced by the aws cli v1 `s3 presign`, boto3's `generate_presigned_url` with
signature_version "s3"/"s3-query" and s3cmd `signurl` (COMPATIBILITY rule 17).

StringToSign = METHOD\\nContent-MD5\\nContent-Type\\nDate-or-Expires\\n
               CanonicalizedAmzHeaders + CanonicalizedResource

Clients disagree on details AWS never pinned down (path quoting, decoded or raw
sub-resource values, Date line when x-amz-date is sent, Content-Type moved to the query
by botocore). Every variant is an HMAC under the caller's secret, so accepting any of a
few candidate strings costs nothing in security; the first candidate is reported on a
mismatch.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from urllib.parse import quote_from_bytes, unquote_to_bytes

from s3facade.auth.common import RequestView, iso, lookup_secret
from s3facade.errors import S3Error

# Sub-resources that belong to the CanonicalizedResource (AWS's list, plus what botocore
# and the AWS JS SDK v2 sign).
SUBRESOURCES = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "defaultObjectAcl",
        "delete",
        "inventory",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "select",
        "select-type",
        "storageClass",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)

Pairs = Sequence[tuple[bytes, bytes]]


def sign(secret: str, string_to_sign: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def canonical_amz_headers(items: Iterable[tuple[str, str]]) -> str:
    merged: dict[str, list[str]] = {}
    for name, value in items:
        lname = name.lower()
        if lname.startswith("x-amz-"):
            merged.setdefault(lname, []).append(value.strip())
    return "".join(f"{n}:{','.join(merged[n])}\n" for n in sorted(merged))


def _paths(raw_path: bytes, bucket: str | None) -> list[str]:
    """As sent (AWS's rule), decoded (old s3cmd), and AWS-UriEncoded with '/' kept; a bare
    bucket also with its trailing slash."""
    prefix = f"/{bucket}" if bucket else ""
    raw = raw_path.decode("latin-1") or "/"
    decoded = unquote_to_bytes(raw_path)
    candidates = [
        prefix + raw,
        prefix + decoded.decode("utf-8", "replace"),
        prefix + quote_from_bytes(decoded, safe="/~"),
    ]
    # A request that names only a bucket ("/bucket", path-style) is signed with AWS's
    # documented form of its resource, "/bucket/" (boto3's presigned listings do).
    candidates += [c + "/" for c in candidates if len(c) > 1 and c.count("/") == 1]
    return list(dict.fromkeys(candidates))


def _subresources(req: RequestView, pairs: Pairs) -> list[str]:
    """The signed "?a&b=v" suffix in name order: values decoded (botocore) or exactly as
    sent (AWS JS SDK v2; also keeps an explicit empty "acl=")."""
    decoded: list[tuple[str, str | None]] = []
    raw: list[tuple[str, str | None]] = []
    for name, value in pairs:
        text = name.decode("utf-8", "replace")
        if text in SUBRESOURCES:
            decoded.append((text, value.decode("utf-8", "replace") if value else None))
    for part in req.raw_query.split(b"&"):
        name, sep, value = part.partition(b"=")
        text = unquote_to_bytes(name).decode("utf-8", "replace")
        if text in SUBRESOURCES:
            raw.append((text, value.decode("latin-1") if sep else None))
    out = []
    for variant in (decoded, raw):
        items = sorted(variant, key=lambda item: item[0])
        rendered = "&".join(n if v is None else f"{n}={v}" for n, v in items)
        out.append(f"?{rendered}" if rendered else "")
    return list(dict.fromkeys(out))


def _check(
    req: RequestView,
    pairs: Pairs,
    bucket: str | None,
    access_key: str,
    secret: str,
    provided: str,
    lines: tuple[Sequence[str], Sequence[str], Sequence[str]],  # Content-MD5, -Type, Date
    amz: str,
) -> None:
    resources = [p + q for p in _paths(req.raw_path, bucket) for q in _subresources(req, pairs)]
    candidates = (
        f"{req.method.upper()}\n{md5}\n{ctype}\n{date}\n{amz}{resource}"
        for md5, ctype, date, resource in itertools.product(*lines, resources)
    )
    # base64 has no spaces: a raw '+' that query decoding turned into ' ' is restored.
    wanted = provided.strip().replace(" ", "+").encode("utf-8", "replace")
    first: str | None = None
    for sts in candidates:
        if hmac.compare_digest(sign(secret, sts).encode(), wanted):
            return
        first = sts if first is None else first
    raise signature_mismatch(access_key, first or "", provided)


def signature_mismatch(access_key: str, string_to_sign: str, provided: str) -> S3Error:
    """SignatureDoesNotMatch with the elements AWS adds to help the caller find why."""
    return S3Error(
        "SignatureDoesNotMatch",
        extra={
            "AWSAccessKeyId": access_key,
            "StringToSign": string_to_sign,
            "SignatureProvided": provided,
            "StringToSignBytes": " ".join(f"{b:02x}" for b in string_to_sign.encode("utf-8")),
        },
    )


def verify_query(
    req: RequestView,
    pairs: Pairs,
    secret_for: Callable[[str], str | None],
    now: datetime,
    bucket: str | None = None,
) -> str:
    """Verify ?AWSAccessKeyId=&Expires=&Signature=; returns the access key id."""
    params: dict[str, str] = {}
    for name, value in pairs:
        params.setdefault(name.decode("utf-8", "replace"), value.decode("utf-8", "replace"))
    if not all(p in params for p in ("AWSAccessKeyId", "Signature", "Expires")):
        raise S3Error(
            "AccessDenied",
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId "
            "parameters",
        )
    expires = params["Expires"]
    if not expires.isdigit():
        raise S3Error("AccessDenied", f"Invalid date (should be seconds since epoch): {expires}")
    if now.timestamp() > int(expires):  # no 7-day cap: AWS never had one for SigV2
        deadline = datetime.fromtimestamp(int(expires), UTC)
        extra = {"Expires": iso(deadline), "ServerTime": iso(now)}
        raise S3Error("AccessDenied", "Request has expired", extra=extra)
    access_key = params["AWSAccessKeyId"]
    secret = lookup_secret(secret_for, access_key)
    # botocore moves x-amz-*, Content-Type and Content-MD5 into the query when presigning;
    # the client following the URL may or may not send them again as headers.
    headers = req.headers
    amz_items = {k.lower(): v for k, v in params.items() if k.lower().startswith("x-amz-")}
    amz_items.update((k, v) for k, v in headers.items() if k.startswith("x-amz-"))

    def options(name: str) -> list[str]:
        return list(dict.fromkeys([headers.get(name, ""), params.get(name, "")]))

    lines = (options("content-md5"), options("content-type"), [expires])
    amz = canonical_amz_headers(amz_items.items())
    _check(req, pairs, bucket, access_key, secret, params["Signature"], lines, amz)
    return access_key


def verify_header(
    req: RequestView,
    pairs: Pairs,
    authorization: str,
    secret_for: Callable[[str], str | None],
    bucket: str | None = None,
) -> str:
    """Verify "Authorization: AWS AKID:signature"; returns the access key id.

    The caller has already checked Date/x-amz-date and the clock skew."""
    access_key, sep, provided = authorization[len("AWS ") :].strip().rpartition(":")
    if not sep or not access_key or not provided:
        raise S3Error(
            "InvalidArgument",
            "Authorization header is invalid -- one and only one ' ' (space) required",
            extra={"ArgumentName": "Authorization", "ArgumentValue": authorization},
        )
    secret = lookup_secret(secret_for, access_key)
    headers = req.headers
    # With x-amz-date, AWS ignores Date: the line is empty (AWS JS SDK v2), though
    # botocore still signs the Date header it sets.
    dates = [headers.get("date", "")]
    if "x-amz-date" in headers:
        dates = list(dict.fromkeys(["", *dates]))
    lines = ([headers.get("content-md5", "")], [headers.get("content-type", "")], dates)
    amz = canonical_amz_headers(headers.items())
    _check(req, pairs, bucket, access_key, secret, provided, lines, amz)
    return access_key
