"""CopyObject, and the copy source that UploadPartCopy shares with it."""

from __future__ import annotations

from dataclasses import replace

from starlette.responses import Response

from s3facade.conditional import NotModified, check_read_conditions
from s3facade.context import ServerContext
from s3facade.errors import S3Error
from s3facade.handlers.access import requested_acl
from s3facade.handlers.object_lock import lock_request
from s3facade.handlers.objects import object_spec, parse_tagging, write_condition
from s3facade.handlers.versioning import new_version_headers
from s3facade.registry import ObjectSpec, ObjectVersion
from s3facade.registry.names import check_key
from s3facade.request import S3Request, parse_copy_source
from s3facade.responses import xml_response
from s3facade.xml import Document, add, iso8601

MAX_COPY_SOURCE_SIZE = 5 * 1024**3  # larger sources need UploadPartCopy

_SELF_COPY = (
    "This copy request is illegal because it is trying to copy an object to itself without "
    "changing the object's metadata, storage class, website redirect location or encryption "
    "attributes."
)


def copy_source(req: S3Request, server: ServerContext) -> ObjectVersion:
    """The version `x-amz-copy-source` names ("bucket/key" or "/bucket/key", URL-encoded,
    optionally "?versionId=..."), checked against the x-amz-copy-source-if-* conditions."""
    bucket, key, version_id = parse_copy_source(req.headers["x-amz-copy-source"])
    source = server.registry.head_object(bucket, key, version_id)
    try:
        check_read_conditions(req.headers, source, prefix="x-amz-copy-source-")
    except NotModified:
        # For a copy every failed source condition is 412, never 304.
        raise S3Error("PreconditionFailed") from None
    return source


def copied_spec(req: S3Request, source: ObjectVersion) -> ObjectSpec:
    metadata_directive = req.headers.get("x-amz-metadata-directive", "COPY").upper()
    tagging_directive = req.headers.get("x-amz-tagging-directive", "COPY").upper()
    for name, value in (("metadata", metadata_directive), ("tagging", tagging_directive)):
        if value not in ("COPY", "REPLACE"):
            raise S3Error("InvalidArgument", f"Unknown {name} directive.")
    if metadata_directive == "REPLACE":
        spec = object_spec(req.headers)
    else:
        spec = ObjectSpec(source.content_type, source.headers, source.metadata)
    tags = parse_tagging(req.headers) if tagging_directive == "REPLACE" else source.tags
    return ObjectSpec(spec.content_type, spec.headers, spec.metadata, tags)


async def copy_object(req: S3Request, server: ServerContext) -> Response:
    check_key(req.key)
    source = copy_source(req, server)
    if source.size > MAX_COPY_SOURCE_SIZE:
        raise S3Error(
            "InvalidRequest",
            "The specified copy source is larger than the maximum "
            f"allowable size for a copy source: {MAX_COPY_SOURCE_SIZE}",
        )
    replacing = any(
        req.headers.get(h, "COPY").upper() == "REPLACE"
        for h in ("x-amz-metadata-directive", "x-amz-tagging-directive")
    )
    if (source.bucket, source.key) == (req.bucket, req.key) and not replacing:
        raise S3Error("InvalidRequest", _SELF_COPY)
    version = await server.registry.copy_object(
        source,
        req.bucket,
        req.key,
        spec=replace(
            copied_spec(req, source),
            acl=requested_acl(server, req.bucket, req.headers, req.provenance.principal),
        ),
        provenance=req.provenance,
        condition=write_condition(req.headers),
        lock=lock_request(req.headers),
    )
    doc = Document("CopyObjectResult")
    add(doc.root, "LastModified", iso8601(version.last_modified))
    add(doc.root, "ETag", f'"{version.etag}"')
    for name, value in version.checksums.items():
        add(doc.root, "ChecksumType", version.checksum_type)
        add(doc.root, f"Checksum{name}", value)
    headers = new_version_headers(server.registry.bucket(req.bucket), version)
    source_bucket = server.registry.bucket(source.bucket)
    if source_bucket.versioning is not None:
        headers["x-amz-copy-source-version-id"] = source.version_id
    return xml_response(doc, headers=headers)
