"""HTTP semantics of reads: conditional headers (AWS's precedence) and byte ranges."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from starlette.datastructures import Headers

from s3facade.backends import ByteRange
from s3facade.errors import S3Error
from s3facade.registry import ObjectVersion


class NotModified(Exception):
    """304: the client's copy is current."""


def check_read_conditions(headers: Headers, version: ObjectVersion, prefix: str = "") -> None:
    """If-Match / If-Unmodified-Since -> 412; If-None-Match / If-Modified-Since -> 304.

    As RFC 7232 and AWS: a date condition is ignored when its ETag counterpart is sent.
    `prefix` "x-amz-copy-source-" reads CopyObject's conditions on its source instead.
    """
    modified = version.last_modified.replace(microsecond=0)
    if_match = headers.get(prefix + "if-match")
    if if_match is not None:
        if not etag_matches(if_match, version.etag):
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Match"})
    else:
        since = _http_date(headers.get(prefix + "if-unmodified-since"))
        if since is not None and modified > since:
            raise S3Error("PreconditionFailed", extra={"Condition": "If-Unmodified-Since"})
    if_none_match = headers.get(prefix + "if-none-match")
    if if_none_match is not None:
        if etag_matches(if_none_match, version.etag):
            raise NotModified()
    else:
        since = _http_date(headers.get(prefix + "if-modified-since"))
        if since is not None and modified <= since:
            raise NotModified()


def etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip() for c in header.split(",")]
    return any(c == "*" or unquote_etag(c) == etag for c in candidates)


def unquote_etag(value: str) -> str:
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def _http_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # an unparseable date is ignored, as HTTP says
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """`bytes=a-b`, `bytes=a-`, `bytes=-n` resolved against `size`.

    None means serve the whole object (no header, or one S3 ignores: malformed or
    multi-range). An unsatisfiable range raises InvalidRange (416).
    """
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_text == "":
            suffix = int(last_text)
            if suffix <= 0 or size == 0:
                raise _unsatisfiable(header, size)
            return ByteRange(max(0, size - suffix), size - 1)
        first = int(first_text)
        last = int(last_text) if last_text != "" else None
    except ValueError:
        return None
    if first < 0 or (last is not None and last < first):
        return None
    if first >= size:
        raise _unsatisfiable(header, size)
    return ByteRange(first, size - 1 if last is None else min(last, size - 1))


def _unsatisfiable(header: str, size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        extra={"RangeRequested": header, "ActualObjectSize": str(size)},
        headers={"Content-Range": f"bytes */{size}"},
    )
