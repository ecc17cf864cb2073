"""GetObjectAttributes: an object's ETag, checksum, parts, storage class and size in one
answer, without its bytes. https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObjectAttributes.html"""

from __future__ import annotations

from starlette.responses import Response

from s3facade.context import ServerContext
from s3facade.errors import S3Error
from s3facade.handlers.versioning import requested_version, version_headers
from s3facade.request import S3Request, int_param
from s3facade.responses import http_date, xml_response
from s3facade.xml import Document, add

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000


def _asked(req: S3Request) -> set[str]:
    """x-amz-object-attributes: a comma-separated list of ATTRIBUTES (at least one)."""
    header = req.headers.get("x-amz-object-attributes", "")
    names = {name.strip() for name in header.split(",") if name.strip()}
    if not names or not names <= set(ATTRIBUTES):
        raise S3Error(
            "InvalidArgument",
            "Invalid attribute name specified." if names else "Missing x-amz-object-attributes",
            extra={"ArgumentName": "x-amz-object-attributes", "ArgumentValue": header},
        )
    return names


async def get_object_attributes(req: S3Request, server: ServerContext) -> Response:
    asked = _asked(req)
    max_parts = int_param(req, "x-amz-max-parts", MAX_PARTS, MAX_PARTS, header=True)
    marker = int_param(req, "x-amz-part-number-marker", 0, 10_000, header=True)
    version = server.registry.head_object(req.bucket, req.key, requested_version(req))
    bucket = server.registry.bucket(req.bucket)
    doc = Document("GetObjectAttributesResponse")
    if "ETag" in asked:
        add(doc.root, "ETag", version.etag)
    if "Checksum" in asked and version.checksums:
        checksum = add(doc.root, "Checksum")
        for name, value in version.checksums.items():
            add(checksum, f"Checksum{name}", value)
        add(checksum, "ChecksumType", version.checksum_type)
    if "ObjectParts" in asked and version.part_sizes:
        parts = await server.registry.uploads.parts_of(version)
        shown = [part for part in parts if part.number > marker][:max_parts]
        element = add(doc.root, "ObjectParts")
        add(element, "PartsCount", len(parts))
        add(element, "PartNumberMarker", marker)
        add(element, "NextPartNumberMarker", shown[-1].number if shown else marker)
        add(element, "MaxParts", max_parts)
        add(element, "IsTruncated", bool(shown) and shown[-1].number < len(parts))
        for part in shown:
            entry = add(element, "Part")
            for name, value in part.checksums.items():
                add(entry, f"Checksum{name}", value)
            add(entry, "PartNumber", part.number)
            add(entry, "Size", part.size)
    if "StorageClass" in asked:
        add(doc.root, "StorageClass", "STANDARD")
    if "ObjectSize" in asked:
        add(doc.root, "ObjectSize", version.size)
    headers = {
        "Last-Modified": http_date(version.last_modified),
        **version_headers(bucket, version),
    }
    return xml_response(doc, headers=headers)
