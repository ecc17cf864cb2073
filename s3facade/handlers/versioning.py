"""Get/PutBucketVersioning and ListObjectVersions, and the version headers of responses."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

from lxml import etree
from starlette.responses import Response

from s3facade.context import ServerContext
from s3facade.errors import S3Error
from s3facade.handlers.buckets import add_owner
from s3facade.handlers.listing import encoder, max_keys_param
from s3facade.integrity import require_integrity
from s3facade.registry import Bucket, ObjectVersion
from s3facade.registry.access.principals import canonical_user_id
from s3facade.registry.model import Versioning
from s3facade.request import S3Request
from s3facade.responses import xml_response
from s3facade.xml import S3_NS, Document, add, child_text, iso8601, parse, set_text


def version_headers(bucket: Bucket, version: ObjectVersion) -> dict[str, str]:
    """x-amz-version-id, sent once versioning was ever configured on the bucket."""
    if bucket.versioning is None:
        return {}
    return {"x-amz-version-id": version.version_id}


def new_version_headers(bucket: Bucket, version: ObjectVersion) -> dict[str, str]:
    """x-amz-version-id of a write (PutObject, CopyObject, CompleteMultipartUpload): only
    while versioning is Enabled. AWS does not name the "null" version a write makes in an
    unversioned or Suspended bucket."""
    if bucket.versioning is not Versioning.ENABLED:
        return {}
    return {"x-amz-version-id": version.version_id}


def requested_version(req: S3Request) -> str | None:
    version_id = req.query.get("versionId")
    if version_id is not None and not version_id:
        raise S3Error(
            "InvalidArgument",
            "Version id cannot be the empty string",
            extra={"ArgumentName": "versionId"},
        )
    return version_id


async def get_bucket_versioning(req: S3Request, server: ServerContext) -> Response:
    bucket = server.registry.bucket(req.bucket)
    doc = Document("VersioningConfiguration")
    if bucket.versioning is not None:  # never enabled: an empty document, as AWS answers
        add(doc.root, "Status", bucket.versioning.value)
    return xml_response(doc)


async def put_bucket_versioning(req: S3Request, server: ServerContext) -> Response:
    body = await require_integrity(req.body)
    status = child_text(parse(body, "VersioningConfiguration"), "Status")
    try:
        versioning = Versioning(status or "")
    except ValueError:
        raise S3Error("MalformedXML") from None
    await server.registry.put_bucket_versioning(req.bucket, versioning, req.provenance)
    return Response(status_code=200)


async def list_object_versions(req: S3Request, server: ServerContext) -> Response:
    limit = max_keys_param(req)
    encode = encoder(req)
    key_marker = req.query.get("key-marker", "")
    version_id_marker = req.query.get("version-id-marker", "")
    if version_id_marker and not key_marker:
        raise S3Error(
            "InvalidArgument",
            "A version-id marker cannot be specified without a key marker.",
            extra={"ArgumentName": "version-id-marker"},
        )
    page = server.registry.list_versions(
        req.bucket,
        prefix=req.query.get("prefix", ""),
        delimiter=req.query.get("delimiter", ""),
        key_marker=key_marker,
        version_id_marker=version_id_marker,
        max_keys=limit,
    )
    doc = Document("ListVersionsResult")
    add(doc.root, "Name", req.bucket)
    add(doc.root, "Prefix", encode(req.query.get("prefix", "")))
    add(doc.root, "KeyMarker", encode(key_marker))
    add(doc.root, "VersionIdMarker", version_id_marker)
    if page.next_key_marker is not None:
        add(doc.root, "NextKeyMarker", encode(page.next_key_marker))
        if page.next_version_id_marker is not None:
            add(doc.root, "NextVersionIdMarker", page.next_version_id_marker)
    add(doc.root, "MaxKeys", limit)
    if req.query.get("delimiter"):  # an empty delimiter is no delimiter
        add(doc.root, "Delimiter", encode(req.query["delimiter"]))
    add(doc.root, "IsTruncated", page.is_truncated)
    if "encoding-type" in req.query:
        add(doc.root, "EncodingType", "url")
    for version, latest in page.versions:
        doc.root.append(_entry(version, latest, encode, server.display_name))
    for prefix in page.common_prefixes:
        add(add(doc.root, "CommonPrefixes"), "Prefix", encode(prefix))
    return xml_response(doc)


def _entry(
    version: ObjectVersion,
    latest: bool,
    encode: Callable[[str], str],
    display_name: Callable[[str], str],
) -> etree._Element:
    """A Version or DeleteMarker element: a copy of a prepared one (a page makes up to a
    thousand; see handlers.listing) with its texts filled in, in AWS's order."""
    algorithms = () if version.delete_marker else tuple(version.checksums)
    entry = copy.copy(_entry_template(version.delete_marker, algorithms))
    set_text(entry[0], encode(version.key))
    entry[1].text = version.version_id
    entry[2].text = "true" if latest else "false"
    entry[3].text = iso8601(version.last_modified)
    if not version.delete_marker:
        entry[4].text = f'"{version.etag}"'
        entry[5 + len(algorithms)].text = str(version.size)
    owner_id, name = entry[-1]
    owner_id.text = canonical_user_id(version.owner)
    name.text = display_name(version.owner)
    return entry


@functools.lru_cache(maxsize=64)
def _entry_template(delete_marker: bool, algorithms: tuple[str, ...]) -> etree._Element:
    entry = etree.Element(f"{{{S3_NS}}}{'DeleteMarker' if delete_marker else 'Version'}")
    for name in ("Key", "VersionId", "IsLatest", "LastModified"):
        add(entry, name)
    if not delete_marker:
        add(entry, "ETag")
        for algorithm in algorithms:
            add(entry, "ChecksumAlgorithm", algorithm)
        add(entry, "Size")
        add(entry, "StorageClass", "STANDARD")
    add_owner(entry, "", "")
    return entry
