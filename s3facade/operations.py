"""Request -> S3 operation: addressing (path-style / virtual-hosted) and the routing table.

Routing reads the raw path (COMPATIBILITY rule 14) so keys with '+', '%', '%2F',
spaces or unicode arrive exactly as the client meant them. Which operation a request
is depends on the method, whether it names a bucket or an object, the query's
sub-resource keyword and a few tell-tale headers; all of that is the table below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from urllib.parse import unquote_to_bytes

from s3facade.errors import S3Error


class Action(StrEnum):
    LIST_BUCKETS = "ListBuckets"
    CREATE_BUCKET = "CreateBucket"
    HEAD_BUCKET = "HeadBucket"
    DELETE_BUCKET = "DeleteBucket"
    GET_BUCKET_LOCATION = "GetBucketLocation"
    LIST_OBJECTS = "ListObjects"
    LIST_OBJECTS_V2 = "ListObjectsV2"
    DELETE_OBJECTS = "DeleteObjects"
    PUT_OBJECT = "PutObject"
    GET_OBJECT = "GetObject"
    HEAD_OBJECT = "HeadObject"
    DELETE_OBJECT = "DeleteObject"
    COPY_OBJECT = "CopyObject"
    CREATE_MULTIPART_UPLOAD = "CreateMultipartUpload"
    UPLOAD_PART = "UploadPart"
    UPLOAD_PART_COPY = "UploadPartCopy"
    LIST_PARTS = "ListParts"
    COMPLETE_MULTIPART_UPLOAD = "CompleteMultipartUpload"
    ABORT_MULTIPART_UPLOAD = "AbortMultipartUpload"
    LIST_MULTIPART_UPLOADS = "ListMultipartUploads"
    GET_BUCKET_LIFECYCLE_CONFIGURATION = "GetBucketLifecycleConfiguration"
    PUT_BUCKET_LIFECYCLE_CONFIGURATION = "PutBucketLifecycleConfiguration"
    DELETE_BUCKET_LIFECYCLE = "DeleteBucketLifecycle"
    GET_BUCKET_VERSIONING = "GetBucketVersioning"
    PUT_BUCKET_VERSIONING = "PutBucketVersioning"
    LIST_OBJECT_VERSIONS = "ListObjectVersions"
    GET_OBJECT_LOCK_CONFIGURATION = "GetObjectLockConfiguration"
    PUT_OBJECT_LOCK_CONFIGURATION = "PutObjectLockConfiguration"
    GET_OBJECT_RETENTION = "GetObjectRetention"
    PUT_OBJECT_RETENTION = "PutObjectRetention"
    GET_OBJECT_LEGAL_HOLD = "GetObjectLegalHold"
    PUT_OBJECT_LEGAL_HOLD = "PutObjectLegalHold"
    GET_OBJECT_TAGGING = "GetObjectTagging"
    PUT_OBJECT_TAGGING = "PutObjectTagging"
    DELETE_OBJECT_TAGGING = "DeleteObjectTagging"
    GET_BUCKET_TAGGING = "GetBucketTagging"
    PUT_BUCKET_TAGGING = "PutBucketTagging"
    DELETE_BUCKET_TAGGING = "DeleteBucketTagging"
    GET_BUCKET_ENCRYPTION = "GetBucketEncryption"
    GET_BUCKET_WEBSITE = "GetBucketWebsite"
    GET_BUCKET_REPLICATION = "GetBucketReplication"
    GET_BUCKET_LOGGING = "GetBucketLogging"
    GET_BUCKET_NOTIFICATION = "GetBucketNotificationConfiguration"
    GET_BUCKET_ACCELERATE = "GetBucketAccelerateConfiguration"
    GET_BUCKET_REQUEST_PAYMENT = "GetBucketRequestPayment"
    LIST_BUCKET_ANALYTICS = "ListBucketAnalyticsConfigurations"
    LIST_BUCKET_INVENTORY = "ListBucketInventoryConfigurations"
    LIST_BUCKET_METRICS = "ListBucketMetricsConfigurations"
    LIST_BUCKET_INTELLIGENT_TIERING = "ListBucketIntelligentTieringConfigurations"
    GET_BUCKET_ACL = "GetBucketAcl"
    PUT_BUCKET_ACL = "PutBucketAcl"
    GET_OBJECT_ACL = "GetObjectAcl"
    PUT_OBJECT_ACL = "PutObjectAcl"
    GET_BUCKET_POLICY = "GetBucketPolicy"
    PUT_BUCKET_POLICY = "PutBucketPolicy"
    DELETE_BUCKET_POLICY = "DeleteBucketPolicy"
    GET_BUCKET_POLICY_STATUS = "GetBucketPolicyStatus"
    GET_PUBLIC_ACCESS_BLOCK = "GetPublicAccessBlock"
    PUT_PUBLIC_ACCESS_BLOCK = "PutPublicAccessBlock"
    DELETE_PUBLIC_ACCESS_BLOCK = "DeletePublicAccessBlock"
    GET_BUCKET_OWNERSHIP_CONTROLS = "GetBucketOwnershipControls"
    PUT_BUCKET_OWNERSHIP_CONTROLS = "PutBucketOwnershipControls"
    DELETE_BUCKET_OWNERSHIP_CONTROLS = "DeleteBucketOwnershipControls"
    GET_BUCKET_CORS = "GetBucketCors"
    PUT_BUCKET_CORS = "PutBucketCors"
    DELETE_BUCKET_CORS = "DeleteBucketCors"
    GET_OBJECT_ATTRIBUTES = "GetObjectAttributes"
    POST_OBJECT = "PostObject"  # a browser form upload (handlers.post_object)
    PREFLIGHT = "OptionsObject"  # a CORS preflight: answered from the bucket's rules, unsigned


class Target(Enum):
    SERVICE = "service"
    BUCKET = "bucket"
    OBJECT = "object"


# Query parameters that select a sub-resource (a different operation on the same path).
# A request naming one we have no route for gets NotImplemented, never a wrong operation
# (s3cmd asks for ?acl, ?policy, ?cors; those must not be answered as a listing).
SUBRESOURCES = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "attributes",
        "cors",
        "delete",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "legal-hold",
        "lifecycle",
        "list-type",
        "location",
        "logging",
        "metadataConfiguration",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "partNumber",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "restore",
        "retention",
        "select",
        "session",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versioning",
        "versions",
        "website",
    }
)


@dataclass(frozen=True)
class Route:
    target: Target
    method: str
    action: Action
    # The IAM action authorised (registry.access.decision), on the bucket or the object the
    # request names; `versioned` replaces it when the request names a version (?versionId).
    # None: no authorisation (a CORS preflight, which is never signed).
    iam: str | None
    keyword: str | None = None  # sub-resource that must be present; None: no sub-resource
    header: str | None = None  # header that must be present
    versioned: str | None = None


ROUTES: tuple[Route, ...] = (
    Route(Target.SERVICE, "GET", Action.LIST_BUCKETS, "s3:ListAllMyBuckets"),
    Route(Target.BUCKET, "PUT", Action.CREATE_BUCKET, "s3:CreateBucket"),
    Route(Target.BUCKET, "HEAD", Action.HEAD_BUCKET, "s3:ListBucket"),
    Route(Target.BUCKET, "DELETE", Action.DELETE_BUCKET, "s3:DeleteBucket"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_LOCATION, "s3:GetBucketLocation", "location"),
    Route(Target.BUCKET, "GET", Action.LIST_OBJECTS_V2, "s3:ListBucket", "list-type"),
    Route(Target.BUCKET, "GET", Action.LIST_OBJECTS, "s3:ListBucket"),
    Route(Target.BUCKET, "POST", Action.DELETE_OBJECTS, "s3:DeleteObject", "delete"),
    Route(
        Target.BUCKET,
        "GET",
        Action.LIST_MULTIPART_UPLOADS,
        "s3:ListBucketMultipartUploads",
        "uploads",
    ),
    Route(
        Target.BUCKET,
        "GET",
        Action.GET_BUCKET_LIFECYCLE_CONFIGURATION,
        "s3:GetLifecycleConfiguration",
        "lifecycle",
    ),
    Route(
        Target.BUCKET,
        "PUT",
        Action.PUT_BUCKET_LIFECYCLE_CONFIGURATION,
        "s3:PutLifecycleConfiguration",
        "lifecycle",
    ),
    Route(
        Target.BUCKET,
        "DELETE",
        Action.DELETE_BUCKET_LIFECYCLE,
        "s3:PutLifecycleConfiguration",
        "lifecycle",
    ),
    Route(
        Target.BUCKET, "GET", Action.GET_BUCKET_VERSIONING, "s3:GetBucketVersioning", "versioning"
    ),
    Route(
        Target.BUCKET, "PUT", Action.PUT_BUCKET_VERSIONING, "s3:PutBucketVersioning", "versioning"
    ),
    Route(Target.BUCKET, "GET", Action.LIST_OBJECT_VERSIONS, "s3:ListBucketVersions", "versions"),
    Route(
        Target.BUCKET,
        "GET",
        Action.GET_OBJECT_LOCK_CONFIGURATION,
        "s3:GetBucketObjectLockConfiguration",
        "object-lock",
    ),
    Route(
        Target.BUCKET,
        "PUT",
        Action.PUT_OBJECT_LOCK_CONFIGURATION,
        "s3:PutBucketObjectLockConfiguration",
        "object-lock",
    ),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_TAGGING, "s3:GetBucketTagging", "tagging"),
    Route(Target.BUCKET, "PUT", Action.PUT_BUCKET_TAGGING, "s3:PutBucketTagging", "tagging"),
    Route(Target.BUCKET, "DELETE", Action.DELETE_BUCKET_TAGGING, "s3:PutBucketTagging", "tagging"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_ACL, "s3:GetBucketAcl", "acl"),
    Route(Target.BUCKET, "PUT", Action.PUT_BUCKET_ACL, "s3:PutBucketAcl", "acl"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_POLICY, "s3:GetBucketPolicy", "policy"),
    Route(Target.BUCKET, "PUT", Action.PUT_BUCKET_POLICY, "s3:PutBucketPolicy", "policy"),
    Route(Target.BUCKET, "DELETE", Action.DELETE_BUCKET_POLICY, "s3:DeleteBucketPolicy", "policy"),
    Route(
        Target.BUCKET,
        "GET",
        Action.GET_BUCKET_POLICY_STATUS,
        "s3:GetBucketPolicyStatus",
        "policyStatus",
    ),
    Route(
        Target.BUCKET,
        "GET",
        Action.GET_PUBLIC_ACCESS_BLOCK,
        "s3:GetBucketPublicAccessBlock",
        "publicAccessBlock",
    ),
    Route(
        Target.BUCKET,
        "PUT",
        Action.PUT_PUBLIC_ACCESS_BLOCK,
        "s3:PutBucketPublicAccessBlock",
        "publicAccessBlock",
    ),
    Route(
        Target.BUCKET,
        "DELETE",
        Action.DELETE_PUBLIC_ACCESS_BLOCK,
        "s3:PutBucketPublicAccessBlock",
        "publicAccessBlock",
    ),
    Route(
        Target.BUCKET,
        "GET",
        Action.GET_BUCKET_OWNERSHIP_CONTROLS,
        "s3:GetBucketOwnershipControls",
        "ownershipControls",
    ),
    Route(
        Target.BUCKET,
        "PUT",
        Action.PUT_BUCKET_OWNERSHIP_CONTROLS,
        "s3:PutBucketOwnershipControls",
        "ownershipControls",
    ),
    Route(
        Target.BUCKET,
        "DELETE",
        Action.DELETE_BUCKET_OWNERSHIP_CONTROLS,
        "s3:PutBucketOwnershipControls",
        "ownershipControls",
    ),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_CORS, "s3:GetBucketCORS", "cors"),
    Route(Target.BUCKET, "PUT", Action.PUT_BUCKET_CORS, "s3:PutBucketCORS", "cors"),
    Route(Target.BUCKET, "DELETE", Action.DELETE_BUCKET_CORS, "s3:PutBucketCORS", "cors"),
    # Settings s3facade does not keep, read as unconfigured (handlers.unconfigured).
    Route(
        Target.BUCKET,
        "GET",
        Action.GET_BUCKET_ENCRYPTION,
        "s3:GetEncryptionConfiguration",
        "encryption",
    ),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_WEBSITE, "s3:GetBucketWebsite", "website"),
    Route(
        Target.BUCKET,
        "GET",
        Action.GET_BUCKET_REPLICATION,
        "s3:GetReplicationConfiguration",
        "replication",
    ),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_LOGGING, "s3:GetBucketLogging", "logging"),
    Route(
        Target.BUCKET,
        "GET",
        Action.GET_BUCKET_NOTIFICATION,
        "s3:GetBucketNotification",
        "notification",
    ),
    Route(
        Target.BUCKET,
        "GET",
        Action.GET_BUCKET_ACCELERATE,
        "s3:GetAccelerateConfiguration",
        "accelerate",
    ),
    Route(
        Target.BUCKET,
        "GET",
        Action.GET_BUCKET_REQUEST_PAYMENT,
        "s3:GetBucketRequestPayment",
        "requestPayment",
    ),
    Route(
        Target.BUCKET,
        "GET",
        Action.LIST_BUCKET_ANALYTICS,
        "s3:GetAnalyticsConfiguration",
        "analytics",
    ),
    Route(
        Target.BUCKET,
        "GET",
        Action.LIST_BUCKET_INVENTORY,
        "s3:GetInventoryConfiguration",
        "inventory",
    ),
    Route(
        Target.BUCKET, "GET", Action.LIST_BUCKET_METRICS, "s3:GetMetricsConfiguration", "metrics"
    ),
    Route(
        Target.BUCKET,
        "GET",
        Action.LIST_BUCKET_INTELLIGENT_TIERING,
        "s3:GetIntelligentTieringConfiguration",
        "intelligent-tiering",
    ),
    Route(Target.OBJECT, "GET", Action.GET_OBJECT_RETENTION, "s3:GetObjectRetention", "retention"),
    Route(Target.OBJECT, "PUT", Action.PUT_OBJECT_RETENTION, "s3:PutObjectRetention", "retention"),
    Route(
        Target.OBJECT, "GET", Action.GET_OBJECT_LEGAL_HOLD, "s3:GetObjectLegalHold", "legal-hold"
    ),
    Route(
        Target.OBJECT, "PUT", Action.PUT_OBJECT_LEGAL_HOLD, "s3:PutObjectLegalHold", "legal-hold"
    ),
    Route(
        Target.OBJECT,
        "GET",
        Action.GET_OBJECT_TAGGING,
        "s3:GetObjectTagging",
        "tagging",
        versioned="s3:GetObjectVersionTagging",
    ),
    Route(
        Target.OBJECT,
        "PUT",
        Action.PUT_OBJECT_TAGGING,
        "s3:PutObjectTagging",
        "tagging",
        versioned="s3:PutObjectVersionTagging",
    ),
    Route(
        Target.OBJECT,
        "DELETE",
        Action.DELETE_OBJECT_TAGGING,
        "s3:DeleteObjectTagging",
        "tagging",
        versioned="s3:DeleteObjectVersionTagging",
    ),
    Route(
        Target.OBJECT,
        "GET",
        Action.GET_OBJECT_ACL,
        "s3:GetObjectAcl",
        "acl",
        versioned="s3:GetObjectVersionAcl",
    ),
    Route(
        Target.OBJECT,
        "PUT",
        Action.PUT_OBJECT_ACL,
        "s3:PutObjectAcl",
        "acl",
        versioned="s3:PutObjectVersionAcl",
    ),
    Route(
        Target.OBJECT,
        "GET",
        Action.GET_OBJECT_ATTRIBUTES,
        "s3:GetObjectAttributes",
        "attributes",
        versioned="s3:GetObjectVersionAttributes",
    ),
    Route(
        Target.OBJECT,
        "PUT",
        Action.UPLOAD_PART_COPY,
        "s3:PutObject",
        "uploadId",
        header="x-amz-copy-source",
    ),
    Route(Target.OBJECT, "PUT", Action.UPLOAD_PART, "s3:PutObject", "uploadId"),
    Route(Target.OBJECT, "PUT", Action.COPY_OBJECT, "s3:PutObject", header="x-amz-copy-source"),
    Route(Target.OBJECT, "PUT", Action.PUT_OBJECT, "s3:PutObject"),
    Route(Target.OBJECT, "GET", Action.LIST_PARTS, "s3:ListMultipartUploadParts", "uploadId"),
    Route(Target.OBJECT, "GET", Action.GET_OBJECT, "s3:GetObject", versioned="s3:GetObjectVersion"),
    Route(
        Target.OBJECT, "HEAD", Action.HEAD_OBJECT, "s3:GetObject", versioned="s3:GetObjectVersion"
    ),
    Route(Target.OBJECT, "POST", Action.CREATE_MULTIPART_UPLOAD, "s3:PutObject", "uploads"),
    Route(Target.OBJECT, "POST", Action.COMPLETE_MULTIPART_UPLOAD, "s3:PutObject", "uploadId"),
    Route(
        Target.OBJECT,
        "DELETE",
        Action.ABORT_MULTIPART_UPLOAD,
        "s3:AbortMultipartUpload",
        "uploadId",
    ),
    Route(
        Target.OBJECT,
        "DELETE",
        Action.DELETE_OBJECT,
        "s3:DeleteObject",
        versioned="s3:DeleteObjectVersion",
    ),
    Route(Target.BUCKET, "POST", Action.POST_OBJECT, "s3:PutObject"),
    Route(Target.BUCKET, "OPTIONS", Action.PREFLIGHT, None),
    Route(Target.OBJECT, "OPTIONS", Action.PREFLIGHT, None),
)

# Sub-resources that qualify an object operation instead of selecting another one.
_OBJECT_QUALIFIERS = frozenset({"partNumber"})


@dataclass(frozen=True)
class Operation:
    action: Action
    bucket: str | None
    key: str | None
    permission: str | None = None  # the IAM action to authorise (Route.iam / versioned)

    @property
    def resource(self) -> str:
        """The Resource element of error bodies: /bucket/key as the client named it."""
        if self.bucket is None:
            return "/"
        return f"/{self.bucket}" + (f"/{self.key}" if self.key is not None else "")


@dataclass(frozen=True)
class Address:
    bucket: str | None
    key: str | None

    @property
    def target(self) -> Target:
        if self.bucket is None:
            return Target.SERVICE
        return Target.BUCKET if self.key is None else Target.OBJECT


def resolve_address(raw_path: bytes, host: str, base_domain: str | None) -> Address:
    """Bucket and key from a raw request path and Host header."""
    path = _decode_path(raw_path)
    if not path.startswith("/"):
        raise S3Error("InvalidURI")
    hostname = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
    if base_domain and hostname.endswith("." + base_domain):
        bucket = hostname[: -len(base_domain) - 1]
        key = path[1:]
        return Address(bucket, key or None)
    rest = path[1:]
    if not rest:
        return Address(None, None)
    bucket, slash, key = rest.partition("/")
    return Address(bucket, key if slash and key else None)


def _decode_path(raw_path: bytes) -> str:
    try:
        return unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI") from None


def parse_operation(
    method: str, address: Address, query: Mapping[str, str], headers: Mapping[str, str]
) -> Operation:
    target = address.target
    keywords = {k for k in query if k in SUBRESOURCES}
    if target is Target.OBJECT:
        keywords -= _OBJECT_QUALIFIERS
    for route in ROUTES:
        if route.target is not target or route.method != method:
            continue
        if route.keyword is None and keywords:
            continue
        if route.keyword is not None and keywords != {route.keyword}:
            continue
        if route.header is not None and route.header not in headers:
            continue
        permission = route.iam
        if route.versioned is not None and "versionId" in query:
            permission = route.versioned
        return Operation(route.action, address.bucket, address.key, permission)
    if keywords:
        raise S3Error(
            "NotImplemented",
            f"The sub-resource '{sorted(keywords)[0]}' is not implemented.",
        )
    raise S3Error("MethodNotAllowed")
