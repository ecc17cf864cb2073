"""Multipart uploads: create, upload (and copy) parts, list, complete, abort."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import replace

from starlette.responses import Response, StreamingResponse

from s3facade.backends import BlobReceipt
from s3facade.checksums import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    ChecksumAlgorithm,
    RunningChecksum,
    algorithm_named,
    b64,
)
from s3facade.conditional import parse_range, unquote_etag
from s3facade.context import ServerContext
from s3facade.domain_errors import s3_error_for
from s3facade.errors import S3Error
from s3facade.handlers.access import requested_acl
from s3facade.handlers.buckets import add_owner
from s3facade.handlers.copy import copy_source
from s3facade.handlers.listing import encoder
from s3facade.handlers.object_lock import lock_request
from s3facade.handlers.objects import object_spec, write_condition
from s3facade.handlers.versioning import new_version_headers
from s3facade.integrity import UploadIntegrity
from s3facade.registry import CompletedPart, MultipartUpload, ObjectVersion, UploadPart
from s3facade.registry.errors import NoSuchUpload, RegistryError
from s3facade.registry.names import check_key
from s3facade.request import S3Request, int_param
from s3facade.responses import error_xml, xml_response
from s3facade.xml import Document, add, child_text, children, iso8601, parse

MAX_PART_NUMBER = 10_000
MAX_PART_SIZE = 5 * 1024**3
# Completions that take longer than this answer 200 at once and keep the connection
# alive with whitespace; the outcome (result or error) comes at the end, as AWS does.
COMPLETE_PATIENCE_SECONDS = 2.0
KEEPALIVE_SECONDS = 5.0
_COMPLETIONS: set[asyncio.Task[ObjectVersion]] = set()


def _background(completion: Coroutine[None, None, ObjectVersion]) -> asyncio.Task[ObjectVersion]:
    task = asyncio.create_task(completion)
    _COMPLETIONS.add(task)
    task.add_done_callback(_COMPLETIONS.discard)
    return task


# Which checksum types each algorithm may use in a multipart upload (rule 5).
_CHECKSUM_TYPES = {
    "CRC32": ("COMPOSITE", "FULL_OBJECT"),
    "CRC32C": ("COMPOSITE", "FULL_OBJECT"),
    "CRC64NVME": ("FULL_OBJECT",),
    "SHA1": ("COMPOSITE",),
    "SHA256": ("COMPOSITE",),
}


def _upload_algorithm(upload: MultipartUpload) -> ChecksumAlgorithm:
    if upload.checksum_algorithm is None:
        return DEFAULT_ALGORITHM
    return ALGORITHMS[upload.checksum_algorithm]


def _checksum_headers(upload: MultipartUpload) -> dict[str, str]:
    if upload.checksum_algorithm is None:
        return {}
    return {
        "x-amz-checksum-algorithm": upload.checksum_algorithm,
        "x-amz-checksum-type": upload.checksum_type or "COMPOSITE",
    }


async def create_multipart_upload(req: S3Request, server: ServerContext) -> Response:
    check_key(req.key)
    spec = replace(
        object_spec(req.headers),
        acl=requested_acl(server, req.bucket, req.headers, req.provenance.principal),
    )
    algorithm_name = req.headers.get("x-amz-checksum-algorithm")
    checksum_type = req.headers.get("x-amz-checksum-type")
    algorithm = algorithm_named(algorithm_name).name if algorithm_name else None
    if checksum_type is not None:
        checksum_type = checksum_type.upper()
        if algorithm is None or checksum_type not in _CHECKSUM_TYPES[algorithm]:
            raise S3Error(
                "InvalidRequest",
                f"The {checksum_type} checksum type cannot be used with the "
                f"{algorithm or 'missing'} checksum algorithm.",
            )
    elif algorithm is not None:
        checksum_type = _CHECKSUM_TYPES[algorithm][0]
    upload = await server.registry.uploads.create(
        req.bucket,
        req.key,
        spec=spec,
        provenance=req.provenance,
        checksum_algorithm=algorithm,
        checksum_type=checksum_type,
        lock=lock_request(req.headers),
    )
    doc = Document("InitiateMultipartUploadResult")
    add(doc.root, "Bucket", req.bucket)
    add(doc.root, "Key", req.key)
    add(doc.root, "UploadId", upload.upload_id)
    return xml_response(doc, headers=_checksum_headers(upload))


def _part_number(req: S3Request) -> int:
    text = req.query.get("partNumber", "")
    number = int(text) if text.isdigit() else 0
    if not 1 <= number <= MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
            extra={"ArgumentName": "partNumber", "ArgumentValue": text},
        )
    return number


def _part_response_headers(part: UploadPart) -> dict[str, str]:
    headers = {"ETag": f'"{part.etag}"'}
    for name, value in part.checksums.items():
        headers[f"x-amz-checksum-{name.lower()}"] = value
    return headers


async def upload_part(req: S3Request, server: ServerContext) -> Response:
    number = _part_number(req)
    upload = server.registry.uploads.get(req.bucket, req.key, req.query["uploadId"])
    length = req.body.require_length()
    if length is not None and length > MAX_PART_SIZE:
        raise S3Error("EntityTooLarge")
    integrity = UploadIntegrity.of(req.body, default=_upload_algorithm(upload))
    if upload.checksum_algorithm and integrity.algorithm.name != upload.checksum_algorithm:
        raise S3Error(
            "InvalidRequest",
            f"Checksum Type mismatch occurred, expected checksum Type: "
            f"{upload.checksum_algorithm.lower()}, actual checksum Type: "
            f"{integrity.algorithm.name.lower()}",
        )
    part = await server.registry.uploads.upload_part(
        req.bucket,
        req.key,
        upload.upload_id,
        number,
        req.body.stream(),
        provenance=req.provenance,
        hashers=integrity.hashers,
        check=integrity.check,
    )
    return Response(status_code=200, headers=_part_response_headers(part))


async def upload_part_copy(req: S3Request, server: ServerContext) -> Response:
    number = _part_number(req)
    upload = server.registry.uploads.get(req.bucket, req.key, req.query["uploadId"])
    source = copy_source(req, server)
    range_header = req.headers.get("x-amz-copy-source-range")
    byte_range = None
    if range_header is not None:
        byte_range = parse_range(range_header, source.size)
        if byte_range is None or not range_header.startswith("bytes=") or "-" not in range_header:
            raise S3Error(
                "InvalidArgument",
                "The x-amz-copy-source-range value must be of the "
                "form bytes=first-last where first and last are the zero-based offsets "
                "of the first and last bytes to copy",
            )
        last = range_header.partition("-")[2].strip()
        if last.isdigit() and int(last) >= source.size:  # a GET would clamp; a copy refuses
            raise S3Error("InvalidRange", extra={"ActualObjectSize": str(source.size)})
    size = byte_range.length if byte_range is not None else source.size
    if size > MAX_PART_SIZE:
        raise S3Error("EntityTooLarge")
    algorithm = _upload_algorithm(upload)
    hasher = algorithm.new()

    def checksums(receipt: BlobReceipt, md5: bytes) -> dict[str, str]:
        return {algorithm.name: b64(hasher.digest())}

    part = await server.registry.uploads.upload_part_copy(
        req.bucket,
        req.key,
        upload.upload_id,
        number,
        source,
        byte_range,
        provenance=req.provenance,
        hashers=[hasher],
        check=checksums,
        range_text=range_header or "",
    )
    doc = Document("CopyPartResult")
    add(doc.root, "LastModified", iso8601(part.last_modified))
    add(doc.root, "ETag", f'"{part.etag}"')
    for name, value in part.checksums.items():
        add(doc.root, f"Checksum{name}", value)
    return xml_response(doc)


async def list_parts(req: S3Request, server: ServerContext) -> Response:
    upload = server.registry.uploads.get(req.bucket, req.key, req.query["uploadId"])
    max_parts = int_param(req, "max-parts", 1000, 1000)
    marker = int_param(req, "part-number-marker", 0, MAX_PART_NUMBER)
    numbers = sorted(n for n in upload.parts if n > marker)
    shown, truncated = numbers[:max_parts], len(numbers) > max_parts
    doc = Document("ListPartsResult")
    add(doc.root, "Bucket", req.bucket)
    add(doc.root, "Key", req.key)
    add(doc.root, "UploadId", upload.upload_id)
    add(doc.root, "PartNumberMarker", marker)
    if shown:
        add(doc.root, "NextPartNumberMarker", shown[-1])
    add(doc.root, "MaxParts", max_parts)
    add(doc.root, "IsTruncated", truncated)
    for number in shown:
        part = upload.parts[number]
        entry = add(doc.root, "Part")
        add(entry, "PartNumber", number)
        add(entry, "LastModified", iso8601(part.last_modified))
        add(entry, "ETag", f'"{part.etag}"')
        add(entry, "Size", part.size)
        for name, value in part.checksums.items():
            add(entry, f"Checksum{name}", value)
    name = server.display_name(upload.owner)
    add_owner(add(doc.root, "Initiator"), upload.owner, name, element=None)
    add_owner(doc.root, upload.owner, name)
    add(doc.root, "StorageClass", "STANDARD")
    if upload.checksum_algorithm:
        add(doc.root, "ChecksumAlgorithm", upload.checksum_algorithm)
        add(doc.root, "ChecksumType", upload.checksum_type or "COMPOSITE")
    return xml_response(doc)


async def list_multipart_uploads(req: S3Request, server: ServerContext) -> Response:
    encode = encoder(req)
    max_uploads = int_param(req, "max-uploads", 1000, 1000)
    key_marker = req.query.get("key-marker", "")
    upload_id_marker = req.query.get("upload-id-marker", "")
    page = server.registry.uploads.list(
        req.bucket,
        prefix=req.query.get("prefix", ""),
        delimiter=req.query.get("delimiter", ""),
        key_marker=key_marker,
        upload_id_marker=upload_id_marker,
        max_uploads=max_uploads,
    )
    doc = Document("ListMultipartUploadsResult")
    add(doc.root, "Bucket", req.bucket)
    add(doc.root, "KeyMarker", encode(key_marker))
    add(doc.root, "UploadIdMarker", upload_id_marker)
    if page.next_key_marker is not None:
        add(doc.root, "NextKeyMarker", encode(page.next_key_marker))
        add(doc.root, "NextUploadIdMarker", page.next_upload_id_marker or "")
    if req.query.get("delimiter"):  # an empty delimiter is no delimiter
        add(doc.root, "Delimiter", encode(req.query["delimiter"]))
    add(doc.root, "Prefix", encode(req.query.get("prefix", "")))
    add(doc.root, "MaxUploads", max_uploads)
    add(doc.root, "IsTruncated", page.is_truncated)
    if "encoding-type" in req.query:
        add(doc.root, "EncodingType", "url")
    for upload in page.uploads:
        entry = add(doc.root, "Upload")
        add(entry, "Key", encode(upload.key))
        add(entry, "UploadId", upload.upload_id)
        name = server.display_name(upload.owner)
        add_owner(add(entry, "Initiator"), upload.owner, name, element=None)
        add_owner(entry, upload.owner, name)
        add(entry, "StorageClass", "STANDARD")
        add(entry, "Initiated", iso8601(upload.initiated))
        if upload.checksum_algorithm:
            add(entry, "ChecksumAlgorithm", upload.checksum_algorithm)
            add(entry, "ChecksumType", upload.checksum_type or "COMPOSITE")
    for prefix in page.common_prefixes:
        add(add(doc.root, "CommonPrefixes"), "Prefix", encode(prefix))
    return xml_response(doc)


def _completed_parts(body: bytes) -> list[tuple[CompletedPart, dict[str, str]]]:
    root = parse(body, "CompleteMultipartUpload")
    parts = []
    for element in children(root, "Part"):
        number_text = child_text(element, "PartNumber") or ""
        etag = child_text(element, "ETag")
        if not number_text.strip().isdigit() or etag is None:
            raise S3Error("MalformedXML")
        declared = {
            name: value.strip()
            for name in ALGORITHMS
            if (value := child_text(element, f"Checksum{name}")) is not None
        }
        parts.append((CompletedPart(int(number_text), unquote_etag(etag)), declared))
    if not parts:
        raise S3Error("MalformedXML")
    return parts


class _CompletionChecksum:
    """The object checksum of a completion: composite from the parts' checksums, or
    computed over the whole while the parts are concatenated (FULL_OBJECT)."""

    def __init__(self, upload: MultipartUpload, req: S3Request) -> None:
        self.algorithm = _upload_algorithm(upload)
        self.composite = (upload.checksum_type or "") == "COMPOSITE"
        self.hasher = self.algorithm.new()
        self.expected = req.headers.get(self.algorithm.header)

    @property
    def hashers(self) -> list[RunningChecksum]:
        return [] if self.composite else [self.hasher]

    def __call__(self, receipt: BlobReceipt, parts: Sequence[UploadPart]) -> dict[str, str]:
        if self.composite:
            combined = self.algorithm.new()
            for part in parts:
                combined.update(base64.b64decode(part.checksums[self.algorithm.name]))
            value = f"{b64(combined.digest())}-{len(parts)}"
        else:
            value = b64(self.hasher.digest())
        if self.expected is not None and self.expected.strip() != value:
            raise S3Error(
                "BadDigest",
                f"The {self.algorithm.name} you specified did not match the calculated checksum.",
            )
        return {self.algorithm.name: value}


def _check_declared_checksums(
    upload: MultipartUpload, parts: list[tuple[CompletedPart, dict[str, str]]]
) -> None:
    for named, declared in parts:
        stored = upload.parts.get(named.number)
        for name, value in declared.items():
            if stored is not None and stored.checksums.get(name) not in (None, value):
                raise S3Error(
                    "InvalidPart",
                    f"The checksum of part {named.number} does not match the uploaded part.",
                )


def _complete_result(req: S3Request, version: ObjectVersion) -> Document:
    doc = Document("CompleteMultipartUploadResult")
    add(doc.root, "Location", f"/{req.bucket}/{req.key}")
    add(doc.root, "Bucket", req.bucket)
    add(doc.root, "Key", req.key)
    add(doc.root, "ETag", f'"{version.etag}"')
    for name, value in version.checksums.items():
        add(doc.root, f"Checksum{name}", value)
        add(doc.root, "ChecksumType", version.checksum_type)
    return doc


async def complete_multipart_upload(req: S3Request, server: ServerContext) -> Response:
    uploads = server.registry.uploads
    try:
        upload = uploads.get(req.bucket, req.key, req.query["uploadId"])
    except NoSuchUpload:
        completed = await uploads.completed_into(req.bucket, req.key, req.query["uploadId"])
        if completed is None:
            raise
        bucket = server.registry.bucket(req.bucket)  # a retry: the first answer again
        return xml_response(
            _complete_result(req, completed), headers=new_version_headers(bucket, completed)
        )
    condition = write_condition(req.headers)
    body = await req.body.read(2 * 1024 * 1024)
    parts = _completed_parts(body)
    _check_declared_checksums(upload, parts)
    checksum = _CompletionChecksum(upload, req)
    completion = server.registry.uploads.complete(
        req.bucket,
        req.key,
        upload.upload_id,
        [named for named, _ in parts],
        provenance=req.provenance,
        condition=condition,
        hashers=checksum.hashers,
        check=checksum,
    )
    # The task runs to the end even if the client hangs up: a completion either happens
    # whole or not at all. Held in a set so it is not garbage-collected mid-way.
    task = _background(completion)
    done, _ = await asyncio.wait({task}, timeout=COMPLETE_PATIENCE_SECONDS)
    if done:
        version = task.result()
        bucket = server.registry.bucket(req.bucket)
        return xml_response(
            _complete_result(req, version), headers=new_version_headers(bucket, version)
        )
    return StreamingResponse(
        _keepalive_then_outcome(req, task), status_code=200, media_type="application/xml"
    )


async def _keepalive_then_outcome(
    req: S3Request, task: asyncio.Task[ObjectVersion]
) -> AsyncIterator[bytes]:
    yield b'<?xml version="1.0" encoding="UTF-8"?>\n'
    while True:
        done, _ = await asyncio.wait({task}, timeout=KEEPALIVE_SECONDS)
        if done:
            break
        yield b" "
    try:
        version = task.result()
    except (S3Error, RegistryError) as exc:
        error = exc if isinstance(exc, S3Error) else s3_error_for(exc)
        yield error_xml(error, req.request_id, req.operation.resource, declaration=False)
        return
    except Exception:
        yield error_xml(
            S3Error("InternalError"), req.request_id, req.operation.resource, declaration=False
        )
        raise
    yield _complete_result(req, version).to_bytes(declaration=False)


async def abort_multipart_upload(req: S3Request, server: ServerContext) -> Response:
    await server.registry.uploads.abort(req.bucket, req.key, req.query["uploadId"], req.provenance)
    return Response(status_code=204)
