"""ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation."""

from __future__ import annotations

from lxml import etree
from starlette.responses import Response

from s3facade.acl_xml import acl_from_headers
from s3facade.context import ServerContext
from s3facade.continuation import decode_token, encode_token
from s3facade.errors import S3Error
from s3facade.registry.access.acl import private_acl
from s3facade.registry.access.principals import canonical_user_id
from s3facade.registry.access.settings import BucketSetting, ObjectOwnership
from s3facade.registry.errors import BucketAlreadyOwnedByYou
from s3facade.registry.names import check_bucket_name
from s3facade.request import S3Request, int_param
from s3facade.responses import xml_response
from s3facade.xml import Document, add, child_text, iso8601, parse

MAX_BUCKETS = 10_000  # AWS's limit of max-buckets (and of buckets per account)


def add_owner(
    parent: etree._Element, principal: str, name: str, element: str | None = "Owner"
) -> None:
    """Owner (or, with element=None, the ID and DisplayName directly in `parent`)."""
    owner = add(parent, element) if element is not None else parent
    add(owner, "ID", canonical_user_id(principal) if principal else "")
    add(owner, "DisplayName", name)


def parse_ownership(text: str | None) -> ObjectOwnership:
    """An ObjectOwnership value (x-amz-object-ownership, OwnershipControls)."""
    try:
        return ObjectOwnership((text or "").strip())
    except ValueError:
        raise S3Error("MalformedXML") from None


async def list_buckets(req: S3Request, server: ServerContext) -> Response:
    """The caller's buckets by name; paginated when max-buckets is given, filtered by
    prefix and bucket-region. https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListBuckets.html"""
    principal = req.provenance.principal
    prefix = req.query.get("prefix", "")
    region = req.query.get("bucket-region")
    limit = int_param(req, "max-buckets", MAX_BUCKETS, MAX_BUCKETS, minimum=1)
    token = req.query.get("continuation-token")
    after = decode_token(token) if token else ""
    chosen = [
        bucket
        for bucket in server.registry.list_buckets(owner=principal)
        if bucket.name.startswith(prefix)
        and bucket.name > after
        and (region is None or bucket.region == region)
    ]
    page = chosen[:limit]
    doc = Document("ListAllMyBucketsResult")
    add_owner(doc.root, principal, server.display_name(principal))
    buckets = add(doc.root, "Buckets")
    for bucket in page:
        entry = add(buckets, "Bucket")
        add(entry, "Name", bucket.name)
        add(entry, "CreationDate", iso8601(bucket.created))
        add(entry, "BucketRegion", bucket.region)
    if len(chosen) > limit:  # the next page's token (AWS names it ContinuationToken here)
        add(doc.root, "ContinuationToken", encode_token(page[-1].name))
    if prefix:
        add(doc.root, "Prefix", prefix)
    return xml_response(doc)


async def create_bucket(req: S3Request, server: ServerContext) -> Response:
    check_bucket_name(req.bucket)
    body = await req.body.read(64 * 1024)
    if body.strip():
        constraint = child_text(parse(body, "CreateBucketConfiguration"), "LocationConstraint")
        # us-east-1 is implied by an empty constraint; naming it is an error in AWS.
        if constraint is not None and (constraint != server.region or constraint == "us-east-1"):
            raise S3Error(
                "InvalidLocationConstraint",
                f"The specified location-constraint is not valid: {constraint!r}; this "
                f"endpoint serves {server.region!r}.",
            )
    lock = req.headers.get("x-amz-bucket-object-lock-enabled", "").strip().lower() == "true"
    ownership_header = req.headers.get("x-amz-object-ownership")
    ownership = parse_ownership(ownership_header) if ownership_header is not None else None
    owner = req.provenance.principal
    acl = acl_from_headers(req.headers, canonical_user_id(owner), None, server.known_user)
    if acl is not None and acl.grants == private_acl(acl.owner).grants:
        acl = None  # the default: nothing to record
    if ownership is ObjectOwnership.BUCKET_OWNER_ENFORCED and acl is not None:
        raise S3Error("InvalidBucketAclWithObjectOwnership")
    try:
        await server.registry.create_bucket(
            req.bucket, server.region, req.provenance, object_lock=lock
        )
    except BucketAlreadyOwnedByYou:
        # AWS's legacy behaviour in us-east-1: creating a bucket you own again succeeds and
        # changes nothing (its ACL included); every other region answers 409.
        # https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html
        if server.region != "us-east-1":
            raise
        return Response(status_code=200, headers={"Location": f"/{req.bucket}"})
    # Recorded after the bucket: a crash between leaves it private, never more open.
    if ownership is not None:
        await server.registry.put_bucket_access(
            req.bucket, BucketSetting.OWNERSHIP, ownership.value, req.provenance
        )
    if acl is not None:
        await server.registry.put_bucket_access(
            req.bucket, BucketSetting.ACL, acl.as_dict(), req.provenance
        )
    return Response(status_code=200, headers={"Location": f"/{req.bucket}"})


async def head_bucket(req: S3Request, server: ServerContext) -> Response:
    bucket = server.registry.bucket(req.bucket)
    return Response(
        status_code=200,
        headers={"x-amz-bucket-region": bucket.region, "x-amz-access-point-alias": "false"},
    )


async def delete_bucket(req: S3Request, server: ServerContext) -> Response:
    await server.registry.delete_bucket(req.bucket, req.provenance)
    return Response(status_code=204)


async def get_bucket_location(req: S3Request, server: ServerContext) -> Response:
    bucket = server.registry.bucket(req.bucket)
    doc = Document("LocationConstraint")
    if bucket.region != "us-east-1":  # AWS answers an empty element for us-east-1
        doc.root.text = bucket.region
    return xml_response(doc)
