"""Get/Put/DeleteObjectTagging and Get/Put/DeleteBucketTagging."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

from s3facade.context import ServerContext
from s3facade.errors import S3Error
from s3facade.handlers.objects import MAX_TAGS, check_tag
from s3facade.handlers.versioning import requested_version, version_headers
from s3facade.integrity import require_integrity
from s3facade.request import S3Request
from s3facade.responses import xml_response
from s3facade.xml import Document, add, child_text, children, parse

MAX_BUCKET_TAGS = 50  # AWS's limit of a bucket's tags (an object's is 10)


def _tagging_document(tags: Mapping[str, str]) -> Document:
    doc = Document("Tagging")
    tag_set = add(doc.root, "TagSet")
    for key, value in tags.items():
        tag = add(tag_set, "Tag")
        add(tag, "Key", key)
        add(tag, "Value", value)
    return doc


async def _tags_from_body(req: S3Request, limit: int, what: str) -> dict[str, str]:
    return tags_from_document(await require_integrity(req.body), limit, what)


def tags_from_document(body: bytes, limit: int = MAX_TAGS, what: str = "Object") -> dict[str, str]:
    """A Tagging document's tag set, checked as AWS checks it."""
    root = parse(body, "Tagging")
    tags: dict[str, str] = {}
    for tag_set in children(root, "TagSet"):
        for tag in children(tag_set, "Tag"):
            key, value = child_text(tag, "Key"), child_text(tag, "Value")
            if key is None or value is None:
                raise S3Error("MalformedXML")
            if key in tags:
                raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key")
            check_tag(key, value)
            tags[key] = value
    if len(tags) > limit:
        raise S3Error("InvalidTag", f"{what} tags cannot be greater than {limit}")
    return tags


async def get_object_tagging(req: S3Request, server: ServerContext) -> Response:
    version = server.registry.head_object(req.bucket, req.key, requested_version(req))
    bucket = server.registry.bucket(req.bucket)
    doc = _tagging_document(version.tags)
    return xml_response(doc, headers=version_headers(bucket, version))


async def put_object_tagging(req: S3Request, server: ServerContext) -> Response:
    tags = await _tags_from_body(req, MAX_TAGS, "Object")
    version = await server.registry.put_object_tagging(
        req.bucket, req.key, requested_version(req), tags, req.provenance
    )
    bucket = server.registry.bucket(req.bucket)
    return Response(status_code=200, headers=version_headers(bucket, version))


async def delete_object_tagging(req: S3Request, server: ServerContext) -> Response:
    version = await server.registry.put_object_tagging(
        req.bucket, req.key, requested_version(req), {}, req.provenance
    )
    bucket = server.registry.bucket(req.bucket)
    return Response(status_code=204, headers=version_headers(bucket, version))


async def get_bucket_tagging(req: S3Request, server: ServerContext) -> Response:
    tags = server.registry.bucket_tags(req.bucket)
    if tags is None:
        raise S3Error("NoSuchTagSet", extra={"BucketName": req.bucket})
    return xml_response(_tagging_document(tags))


async def put_bucket_tagging(req: S3Request, server: ServerContext) -> Response:
    server.registry.bucket(req.bucket)  # NoSuchBucket before any complaint about the body
    tags = await _tags_from_body(req, MAX_BUCKET_TAGS, "Bucket")
    await server.registry.put_bucket_tagging(req.bucket, tags, req.provenance)
    return Response(status_code=204)


async def delete_bucket_tagging(req: S3Request, server: ServerContext) -> Response:
    await server.registry.put_bucket_tagging(req.bucket, None, req.provenance)
    return Response(status_code=204)
