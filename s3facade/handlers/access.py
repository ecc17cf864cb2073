"""Get/PutBucketAcl, Get/PutObjectAcl, Get/Put/DeleteBucketPolicy, GetBucketPolicyStatus,
Get/Put/DeletePublicAccessBlock and Get/Put/DeleteBucketOwnershipControls, and the ACL a
write asks for with x-amz-acl or x-amz-grant-* headers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.responses import Response

from s3facade.acl_xml import acl_from_headers, parse_access_control_policy
from s3facade.acl_xml import render_access_control_policy as render_acl
from s3facade.context import ServerContext
from s3facade.errors import S3Error
from s3facade.handlers.buckets import parse_ownership
from s3facade.handlers.versioning import requested_version, version_headers
from s3facade.integrity import require_integrity
from s3facade.registry.access.acl import AccessControlList, private_acl
from s3facade.registry.access.principals import canonical_user_id
from s3facade.registry.access.settings import BucketSetting, PublicAccessBlock
from s3facade.request import S3Request
from s3facade.responses import xml_response
from s3facade.xml import Document, add, child_text, children, parse

# Read past the policy's 20 KiB limit, so that a larger one gets AWS's MalformedPolicy
# ("Policy exceeds the maximum allowed document size") from the policy's own check.
MAX_POLICY_BODY = 64 * 1024
_PUBLIC_ACCESS_BLOCK = (
    ("BlockPublicAcls", "block_public_acls"),
    ("IgnorePublicAcls", "ignore_public_acls"),
    ("BlockPublicPolicy", "block_public_policy"),
    ("RestrictPublicBuckets", "restrict_public_buckets"),
)


def _display_name(server: ServerContext) -> Callable[[str], str]:
    def name(canonical_id: str) -> str:
        user = server.users.by_canonical_id(canonical_id)
        return user.name if user is not None else ""

    return name


def requested_acl(
    server: ServerContext, bucket: str, headers: Mapping[str, str], owner: str
) -> dict[str, Any] | None:
    """The ACL a write's x-amz-acl / x-amz-grant-* headers (or a POST form's fields) ask for,
    as recorded; None for none or the default (the writer's FULL_CONTROL). Refused as the
    bucket's public access block and object ownership say. `owner`: the writer."""
    bucket_owner = server.registry.bucket(bucket).owner
    acl = acl_from_headers(
        headers,
        canonical_user_id(owner),
        canonical_user_id(bucket_owner),
        server.known_user,
    )
    if acl is None or acl == private_acl(acl.owner):
        return None
    server.registry.check_acl(bucket, acl)
    return acl.as_dict()


async def _acl_from_request(
    req: S3Request, server: ServerContext, owner: str, bucket_owner: str
) -> AccessControlList:
    """PutBucketAcl / PutObjectAcl: the headers' ACL, or the AccessControlPolicy body."""
    owner_id = canonical_user_id(owner)
    acl = acl_from_headers(
        req.headers, owner_id, canonical_user_id(bucket_owner), server.known_user
    )
    body = await require_integrity(req.body)
    if acl is not None:
        if body.strip():
            raise S3Error("UnexpectedContent", "This request does not support content")
        return acl
    if not body.strip():
        raise S3Error("MissingSecurityHeader", extra={"MissingHeaderName": "x-amz-acl"})
    acl = parse_access_control_policy(body, server.known_user)
    if acl.owner != owner_id:  # an ACL cannot hand the resource to someone else
        raise S3Error("AccessDenied")
    return acl


async def get_bucket_acl(req: S3Request, server: ServerContext) -> Response:
    access = server.registry.bucket_access(req.bucket)
    return xml_response(render_acl(access.acl, _display_name(server)))


async def put_bucket_acl(req: S3Request, server: ServerContext) -> Response:
    owner = server.registry.bucket(req.bucket).owner
    acl = await _acl_from_request(req, server, owner, owner)
    await server.registry.put_bucket_access(
        req.bucket, BucketSetting.ACL, acl.as_dict(), req.provenance
    )
    return Response(status_code=200)


async def get_object_acl(req: S3Request, server: ServerContext) -> Response:
    version = server.registry.head_object(req.bucket, req.key, requested_version(req))
    bucket = server.registry.bucket(req.bucket)
    acl = server.registry.object_acl(version)
    doc = render_acl(acl, _display_name(server))
    return xml_response(doc, headers=version_headers(bucket, version))


async def put_object_acl(req: S3Request, server: ServerContext) -> Response:
    bucket = server.registry.bucket(req.bucket)
    version = server.registry.head_object(req.bucket, req.key, requested_version(req))
    acl = await _acl_from_request(req, server, version.owner, bucket.owner)
    changed = await server.registry.put_object_acl(
        req.bucket, req.key, version.version_id, acl, req.provenance
    )
    return Response(status_code=200, headers=version_headers(bucket, changed))


# -- bucket policy ---------------------------------------------------------------------------


async def get_bucket_policy(req: S3Request, server: ServerContext) -> Response:
    policy = server.registry.bucket_access(req.bucket).policy
    if policy is None:
        raise S3Error("NoSuchBucketPolicy", extra={"BucketName": req.bucket})
    return Response(policy.text, media_type="application/json")


async def put_bucket_policy(req: S3Request, server: ServerContext) -> Response:
    server.registry.bucket(req.bucket)  # NoSuchBucket before any complaint about the body
    body = await req.body.read(MAX_POLICY_BODY)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("MalformedPolicy") from None
    await server.registry.put_bucket_access(req.bucket, BucketSetting.POLICY, text, req.provenance)
    return Response(status_code=204)


async def delete_bucket_policy(req: S3Request, server: ServerContext) -> Response:
    await server.registry.put_bucket_access(req.bucket, BucketSetting.POLICY, None, req.provenance)
    return Response(status_code=204)


async def get_bucket_policy_status(req: S3Request, server: ServerContext) -> Response:
    access = server.registry.bucket_access(req.bucket)
    if access.policy is None:
        raise S3Error("NoSuchBucketPolicy", extra={"BucketName": req.bucket})
    doc = Document("PolicyStatus")
    add(doc.root, "IsPublic", access.is_public)
    return xml_response(doc)


# -- public access block ---------------------------------------------------------------------


async def get_public_access_block(req: S3Request, server: ServerContext) -> Response:
    block = server.registry.bucket_access(req.bucket).public_access_block
    if block is None:
        raise S3Error("NoSuchPublicAccessBlockConfiguration", extra={"BucketName": req.bucket})
    doc = Document("PublicAccessBlockConfiguration")
    values = block.as_dict()
    for element, name in _PUBLIC_ACCESS_BLOCK:
        add(doc.root, element, values[name])
    return xml_response(doc)


async def put_public_access_block(req: S3Request, server: ServerContext) -> Response:
    server.registry.bucket(req.bucket)
    root = parse(await require_integrity(req.body), "PublicAccessBlockConfiguration")
    values: dict[str, bool] = {}
    for element, name in _PUBLIC_ACCESS_BLOCK:
        text = child_text(root, element)
        if text is not None and text.strip().lower() not in ("true", "false"):
            raise S3Error("MalformedXML")
        values[name] = text is not None and text.strip().lower() == "true"
    block = PublicAccessBlock(**values)
    await server.registry.put_bucket_access(
        req.bucket, BucketSetting.PUBLIC_ACCESS_BLOCK, block.as_dict(), req.provenance
    )
    return Response(status_code=200)


async def delete_public_access_block(req: S3Request, server: ServerContext) -> Response:
    await server.registry.put_bucket_access(
        req.bucket, BucketSetting.PUBLIC_ACCESS_BLOCK, None, req.provenance
    )
    return Response(status_code=204)


# -- object ownership ------------------------------------------------------------------------


async def get_bucket_ownership_controls(req: S3Request, server: ServerContext) -> Response:
    ownership = server.registry.bucket_access(req.bucket).ownership
    if ownership is None:
        raise S3Error("OwnershipControlsNotFoundError", extra={"BucketName": req.bucket})
    doc = Document("OwnershipControls")
    add(add(doc.root, "Rule"), "ObjectOwnership", ownership.value)
    return xml_response(doc)


async def put_bucket_ownership_controls(req: S3Request, server: ServerContext) -> Response:
    server.registry.bucket(req.bucket)
    root = parse(await require_integrity(req.body), "OwnershipControls")
    rules = list(children(root, "Rule"))
    if len(rules) != 1:
        raise S3Error("MalformedXML")
    ownership = parse_ownership(child_text(rules[0], "ObjectOwnership"))
    await server.registry.put_bucket_access(
        req.bucket, BucketSetting.OWNERSHIP, ownership.value, req.provenance
    )
    return Response(status_code=200)


async def delete_bucket_ownership_controls(req: S3Request, server: ServerContext) -> Response:
    await server.registry.put_bucket_access(
        req.bucket, BucketSetting.OWNERSHIP, None, req.provenance
    )
    return Response(status_code=204)
