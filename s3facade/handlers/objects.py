"""PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import Response, StreamingResponse

from backends import ByteRange
from registry import ObjectSpec, ObjectVersion, WriteCondition
from registry.errors import RegistryError
from s3facade.conditional import NotModified, check_read_conditions, parse_range, unquote_etag
from s3facade.context import ServerContext
from s3facade.domain_errors import s3_error_for
from s3facade.errors import S3Error
from s3facade.integrity import UploadIntegrity
from s3facade.request import S3Request
from s3facade.responses import http_date, xml_response
from s3facade.xml import Document, add, child_text, children, parse

MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2 * 1024
MAX_DELETE_KEYS = 1000

# Representation headers stored with the object and returned on GET/HEAD.
STORED_HEADERS = (
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
)
# GET query parameters that override a response header (signed requests only in AWS).
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}
STORAGE_CLASSES = frozenset(
    {
        "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
        "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "OUTPOSTS", "SNOW", "EXPRESS_ONEZONE",
    }
)  # fmt: skip


def check_key(key: str) -> None:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise S3Error(
            "KeyTooLongError", extra={"Size": str(len(key.encode())), "MaxSizeAllowed": "1024"}
        )


def object_spec(headers: Headers) -> ObjectSpec:
    stored = {name: headers[name] for name in STORED_HEADERS if name in headers}
    if "content-encoding" in stored:
        # The aws-chunked framing is the transfer's, not the object's (rule 8).
        encodings = [
            e.strip() for e in stored["content-encoding"].split(",") if e.strip() != "aws-chunked"
        ]
        if encodings:
            stored["content-encoding"] = ",".join(encodings)
        else:
            del stored["content-encoding"]
    metadata = {
        name.removeprefix("x-amz-meta-"): value
        for name, value in headers.items()
        if name.startswith("x-amz-meta-")
    }
    if sum(len(k) + len(v.encode()) for k, v in metadata.items()) > MAX_METADATA_BYTES:
        raise S3Error("MetadataTooLarge", extra={"MaxSizeAllowed": str(MAX_METADATA_BYTES)})
    storage_class = headers.get("x-amz-storage-class")
    if storage_class is not None and storage_class not in STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass", extra={"StorageClassRequested": storage_class})
    return ObjectSpec(
        content_type=headers.get("content-type") or "binary/octet-stream",
        headers=stored,
        metadata=metadata,
        tags=parse_tagging(headers),
    )


MAX_TAGS = 10


def parse_tagging(headers: Headers) -> dict[str, str]:
    """`x-amz-tagging: k1=v1&k2=v2` (URL-encoded) as AWS validates it."""
    value = headers.get("x-amz-tagging")
    if not value:
        return {}
    pairs = parse_qsl(value, keep_blank_values=True)
    tags = dict(pairs)
    if len(tags) != len(pairs):
        raise S3Error("InvalidArgument", "Cannot provide multiple Tags with the same key")
    if len(tags) > MAX_TAGS:
        raise S3Error("BadRequest", "Object tags cannot be greater than 10")
    for key, tag_value in tags.items():
        if not 1 <= len(key) <= 128 or len(tag_value) > 256:
            raise S3Error("InvalidTag", "The TagKey or TagValue you have provided is invalid")
    return tags


def write_condition(headers: Headers) -> WriteCondition:
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise S3Error("NotImplemented", "If-None-Match on writes supports only '*'.")
    if_match = headers.get("if-match")
    return WriteCondition(
        must_not_exist=if_none_match is not None,
        if_match=unquote_etag(if_match) if if_match is not None else None,
    )


async def put_object(req: S3Request, server: ServerContext) -> Response:
    check_key(req.key)
    req.body.require_length()
    spec = object_spec(req.headers)
    condition = write_condition(req.headers)
    integrity = UploadIntegrity.of(req.body)
    version = await server.registry.put_object(
        req.bucket,
        req.key,
        req.body.stream(),
        spec=spec,
        provenance=req.provenance,
        condition=condition,
        hashers=integrity.hashers,
        check=integrity.check,
    )
    headers = {"ETag": f'"{version.etag}"'}
    for name, value in version.checksums.items():
        headers[f"x-amz-checksum-{name.lower()}"] = value
        headers["x-amz-checksum-type"] = "FULL_OBJECT"
    return Response(status_code=200, headers=headers)


def object_headers(version: ObjectVersion, req: S3Request) -> dict[str, str]:
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
    version = server.registry.head_object(req.bucket, req.key)
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
    version: ObjectVersion, byte_range: ByteRange | None, req: S3Request
) -> tuple[int, dict[str, str]]:
    headers = object_headers(version, req)
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
        return not_modified
    status, headers = _framing(version, byte_range, req)
    stream = server.registry.open_object(version, byte_range)
    first = await _first_block(stream)  # so a missing blob is an error, not a cut-off 200
    return StreamingResponse(_prepend(first, stream), status_code=status, headers=headers)


async def head_object(req: S3Request, server: ServerContext) -> Response:
    version, byte_range, not_modified = _read(req, server)
    if not_modified is not None:
        return not_modified
    status, headers = _framing(version, byte_range, req)
    return Response(status_code=status, headers=headers)


async def _first_block(stream: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


async def _prepend(first: bytes | None, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first is not None:
        yield first
    async for block in stream:
        yield block


async def delete_object(req: S3Request, server: ServerContext) -> Response:
    condition = WriteCondition(
        if_match=unquote_etag(req.headers["if-match"]) if "if-match" in req.headers else None
    )
    await server.registry.delete_object(req.bucket, req.key, req.provenance, condition)
    return Response(status_code=204)


async def delete_objects(req: S3Request, server: ServerContext) -> Response:
    integrity = UploadIntegrity.of(req.body)
    if integrity.content_md5 is None and integrity.expected is None and integrity.trailer is None:
        raise S3Error("InvalidRequest", "Missing required header for this request: Content-MD5")
    body = await req.body.read(2 * 1024 * 1024)
    integrity.verify_bytes(body)
    root = parse(body, "Delete")
    quiet = (child_text(root, "Quiet") or "").strip().lower() == "true"
    entries = list(children(root, "Object"))
    if not entries or len(entries) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML")
    server.registry.bucket(req.bucket)
    doc = Document("DeleteResult")
    for entry in entries:
        key = child_text(entry, "Key")
        if key is None:
            raise S3Error("MalformedXML")
        try:
            check_key(key)
            await server.registry.delete_object(req.bucket, key, req.provenance)
        except (S3Error, RegistryError) as exc:
            error = exc if isinstance(exc, S3Error) else s3_error_for(exc)
            result = add(doc.root, "Error")
            add(result, "Key", key)
            add(result, "Code", error.code)
            add(result, "Message", error.message)
            continue
        if not quiet:
            add(add(doc.root, "Deleted"), "Key", key)
    return xml_response(doc)
