"""PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import Response

from s3facade.conditional import unquote_etag
from s3facade.context import ServerContext
from s3facade.domain_errors import s3_error_for
from s3facade.errors import S3Error
from s3facade.handlers.access import requested_acl
from s3facade.handlers.object_lock import lock_request
from s3facade.handlers.versioning import new_version_headers, requested_version
from s3facade.integrity import UploadIntegrity, require_integrity
from s3facade.registry import Bucket, ObjectSpec, ObjectVersion, WriteCondition
from s3facade.registry.errors import RegistryError
from s3facade.registry.model import DeleteOutcome, stored_headers
from s3facade.registry.names import check_key
from s3facade.request import S3Request
from s3facade.responses import xml_response
from s3facade.xml import Document, add, child_text, children, parse

MAX_METADATA_BYTES = 2 * 1024
MAX_DELETE_KEYS = 1000

STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "GLACIER_IR",
        "OUTPOSTS",
        "SNOW",
        "EXPRESS_ONEZONE",
    }
)


def object_spec(headers: Headers) -> ObjectSpec:
    stored = stored_headers(headers)
    if "content-encoding" in stored:
        # The aws-chunked framing is the transfer's, not the object's (rule 8).
        # The rest is kept as sent ("deflate, gzip" stays so).
        sent = stored["content-encoding"].split(",")
        encodings = [e for e in sent if e.strip() != "aws-chunked"]
        if not encodings:
            del stored["content-encoding"]
        elif len(encodings) < len(sent):
            stored["content-encoding"] = ",".join(encodings).strip()
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
        raise S3Error("InvalidTag", "Object tags cannot be greater than 10")
    for key, tag_value in tags.items():
        check_tag(key, tag_value)
    return tags


def check_tag(key: str, value: str) -> None:
    if not 1 <= len(key) <= 128 or len(value) > 256:
        raise S3Error("InvalidTag", "The TagKey or TagValue you have provided is invalid")


def write_headers(bucket: Bucket, version: ObjectVersion) -> dict[str, str]:
    """What PutObject (and CompleteMultipartUpload, CopyObject) answer in headers."""
    headers = {"ETag": f'"{version.etag}"', **new_version_headers(bucket, version)}
    for name, value in version.checksums.items():
        headers[f"x-amz-checksum-{name.lower()}"] = value
        headers["x-amz-checksum-type"] = version.checksum_type
    return headers


def write_condition(headers: Headers) -> WriteCondition:
    """If-Match and If-None-Match on PutObject and CompleteMultipartUpload: `*` or an ETag,
    checked before the body is read and again, atomically, at the commit."""
    if_none_match = headers.get("if-none-match")
    if_match = headers.get("if-match")
    none_match = None if if_none_match is None else if_none_match.strip()
    return WriteCondition(
        must_not_exist=none_match == "*",
        if_match=unquote_etag(if_match) if if_match is not None else None,
        if_none_match=unquote_etag(none_match) if none_match not in (None, "*") else None,
    )


async def put_object(req: S3Request, server: ServerContext) -> Response:
    check_key(req.key)
    req.body.require_length()
    spec = replace(
        object_spec(req.headers),
        acl=requested_acl(server, req.bucket, req.headers, req.provenance.principal),
    )
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
        lock=lock_request(req.headers),
    )
    bucket = server.registry.bucket(req.bucket)
    return Response(status_code=200, headers=write_headers(bucket, version))


def delete_headers(outcome: DeleteOutcome) -> dict[str, str]:
    headers = {}
    if outcome.version_id is not None:
        headers["x-amz-version-id"] = outcome.version_id
    if outcome.delete_marker:
        headers["x-amz-delete-marker"] = "true"
    return headers


async def delete_object(req: S3Request, server: ServerContext) -> Response:
    condition = WriteCondition(
        if_match=unquote_etag(req.headers["if-match"]) if "if-match" in req.headers else None
    )
    outcome = await server.registry.delete_object(
        req.bucket,
        req.key,
        req.provenance,
        condition,
        version_id=requested_version(req),
        bypass_governance=server.may_bypass(req),
    )
    return Response(status_code=204, headers=delete_headers(outcome))


async def delete_objects(req: S3Request, server: ServerContext) -> Response:
    body = await require_integrity(req.body)
    root = parse(body, "Delete")
    quiet = (child_text(root, "Quiet") or "").strip().lower() == "true"
    entries = [
        (child_text(entry, "Key"), child_text(entry, "VersionId") or None)
        for entry in children(root, "Object")
    ]
    if not entries or len(entries) > MAX_DELETE_KEYS or any(k is None for k, _ in entries):
        raise S3Error("MalformedXML")  # before any key is deleted
    server.registry.bucket(req.bucket)

    async def delete(key: str, version_id: str | None) -> DeleteOutcome | S3Error:
        try:
            check_key(key)
            # Each key is authorised on its own, as AWS does: a refusal is that key's Error.
            permission = "s3:DeleteObjectVersion" if version_id else "s3:DeleteObject"
            await server.access.require(
                req.user, permission, req.bucket, key, req.facts, req.provenance, version_id
            )
            return await server.registry.delete_object(
                req.bucket,
                key,
                req.provenance,
                version_id=version_id,
                bypass_governance=server.may_bypass(req, key),
            )
        except (S3Error, RegistryError) as exc:
            return exc if isinstance(exc, S3Error) else s3_error_for(exc)

    # All at once: each delete keeps its own checks and event, and the log commits them
    # together (group commit) instead of one transaction per key.
    outcomes = await asyncio.gather(*(delete(str(key), version) for key, version in entries))
    doc = Document("DeleteResult")
    for (key, version_id), outcome in zip(entries, outcomes, strict=True):
        if isinstance(outcome, S3Error):
            result = add(doc.root, "Error")
            add(result, "Key", key)
            if version_id is not None:
                add(result, "VersionId", version_id)
            add(result, "Code", outcome.code)
            add(result, "Message", outcome.message)
        elif not quiet:
            deleted = add(doc.root, "Deleted")
            add(deleted, "Key", key)
            if version_id is not None:
                add(deleted, "VersionId", version_id)
            if outcome.delete_marker:
                add(deleted, "DeleteMarker", True)
                if outcome.version_id is not None and version_id is None:
                    add(deleted, "DeleteMarkerVersionId", outcome.version_id)
    return xml_response(doc)
