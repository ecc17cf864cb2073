"""GetObject and HeadObject: conditional reads, ranges, parts, and the read record."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from starlette.responses import Response, StreamingResponse

from s3facade.backends import ByteRange
from s3facade.conditional import NotModified, check_read_conditions, parse_range
from s3facade.context import ServerContext
from s3facade.errors import S3Error
from s3facade.handlers.object_lock import lock_headers
from s3facade.handlers.versioning import requested_version, version_headers
from s3facade.registry import ObjectVersion
from s3facade.request import S3Request
from s3facade.responses import http_date

# GET query parameters that override a response header (signed requests only in AWS).
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}


def object_headers(version: ObjectVersion, req: S3Request, server: ServerContext) -> dict[str, str]:
    # Lower-case names throughout, so response-* overrides replace rather than duplicate.
    headers = {
        "etag": f'"{version.etag}"',
        "last-modified": http_date(version.last_modified),
        "accept-ranges": "bytes",
        "content-type": version.content_type,
    }
    headers.update(version.headers)
    for name, value in version.metadata.items():
        headers[f"x-amz-meta-{name}"] = value
    if version.tags:
        headers["x-amz-tagging-count"] = str(len(version.tags))
    headers.update(version_headers(server.registry.bucket(version.bucket), version))
    headers.update(lock_headers(version))
    if version.part_sizes and "partNumber" in req.query:
        headers["x-amz-mp-parts-count"] = str(version.parts_count)
    for param, header in RESPONSE_OVERRIDES.items():
        if param in req.query:
            headers[header] = req.query[param]
    return headers


def _checksum_headers(version: ObjectVersion, req: S3Request) -> dict[str, str]:
    # Only when asked, and never on a ranged response (rule 6).
    if req.headers.get("x-amz-checksum-mode", "").upper() != "ENABLED":
        return {}
    headers = {f"x-amz-checksum-{n.lower()}": v for n, v in version.checksums.items()}
    if headers:
        headers["x-amz-checksum-type"] = version.checksum_type
    return headers


def _read(
    req: S3Request, server: ServerContext
) -> tuple[ObjectVersion, ByteRange | None, Response | None]:
    version = server.registry.head_object(req.bucket, req.key, requested_version(req))
    try:
        check_read_conditions(req.headers, version)
    except NotModified:
        headers = {"ETag": f'"{version.etag}"', "Last-Modified": http_date(version.last_modified)}
        return version, None, Response(status_code=304, headers=headers)
    if "partNumber" in req.query:
        return version, _part_range(req.query["partNumber"], version), None
    return version, parse_range(req.headers.get("range"), version.size), None


def _part_range(text: str, version: ObjectVersion) -> ByteRange | None:
    """GET/HEAD ?partNumber=N: the bytes of part N (an object stored whole has one part)."""
    number = int(text) if text.isdigit() else 0
    sizes = version.part_sizes or (version.size,)
    if number < 1 or number > 10_000:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000")
    if number > len(sizes):
        raise S3Error("InvalidPartNumber")
    if not version.part_sizes:
        return None
    first = sum(sizes[: number - 1])
    return ByteRange(first, first + sizes[number - 1] - 1)


def _framing(
    version: ObjectVersion, byte_range: ByteRange | None, req: S3Request, server: ServerContext
) -> tuple[int, dict[str, str]]:
    headers = object_headers(version, req, server)
    if byte_range is None:
        headers.update(_checksum_headers(version, req))
        headers["content-length"] = str(version.size)
        return 200, headers
    headers["content-length"] = str(byte_range.length)
    headers["content-range"] = f"bytes {byte_range.first}-{byte_range.last}/{version.size}"
    return 206, headers


async def get_object(req: S3Request, server: ServerContext) -> Response:
    version, byte_range, not_modified = _read(req, server)
    if not_modified is not None:
        _record(req, server, version, byte_range, status=304, sent=0, completed=True)
        return not_modified
    status, headers = _framing(version, byte_range, req, server)
    stream = server.registry.read_object(
        version, req.provenance, byte_range, **_read_context(req), status=status
    )
    first = await _first_block(stream)  # so a missing blob is an error, not a cut-off 200
    if first is not None and len(first) < int(headers["content-length"]):
        return StreamingResponse(_prepend(first, stream), status_code=status, headers=headers)
    # The whole body came in one block: ending the stream now checks the whole read (damaged
    # bytes are an error before any is sent) and records it; one plain response follows.
    rest = await _first_block(stream)
    if rest is not None:  # more bytes than the version says: let the stream's checks speak
        return StreamingResponse(
            _prepend((first or b"") + rest, stream), status_code=status, headers=headers
        )
    return Response(first or b"", status_code=status, headers=headers)


async def head_object(req: S3Request, server: ServerContext) -> Response:
    version, byte_range, not_modified = _read(req, server)
    if not_modified is not None:
        _record(req, server, version, byte_range, status=304, sent=0, completed=True)
        return not_modified
    status, headers = _framing(version, byte_range, req, server)
    _record(req, server, version, byte_range, status=status, sent=0, completed=True)
    return Response(status_code=status, headers=headers)


def _record(
    req: S3Request,
    server: ServerContext,
    version: ObjectVersion,
    byte_range: ByteRange | None,
    *,
    status: int,
    sent: int,
    completed: bool,
) -> None:
    server.registry.record_read(
        version,
        req.provenance,
        range=None if byte_range is None else f"bytes={byte_range.first}-{byte_range.last}",
        bytes_sent=sent,
        status=status,
        completed=completed,
        **_read_context(req),
    )


def _read_context(req: S3Request) -> dict[str, Any]:
    return {
        "method": req.method,
        "part_number": req.query.get("partNumber"),
        "presigned": req.auth.presigned,
    }


async def _first_block(stream: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


async def _prepend(
    first: bytes | None, stream: AsyncGenerator[bytes, None]
) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            yield first
        async for block in stream:
            yield block
    finally:
        await stream.aclose()  # records the read now, whether or not the client took it all
