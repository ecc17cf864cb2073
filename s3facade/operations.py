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


class Target(Enum):
    SERVICE = "service"
    BUCKET = "bucket"
    OBJECT = "object"


# Query parameters that select a sub-resource (a different operation on the same path).
# A request naming one we have no route for gets NotImplemented, never a wrong operation
# (s3cmd asks for ?acl, ?policy, ?cors; those must not be answered as a listing).
SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption",
        "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "list-type", "location",
        "logging", "metadataConfiguration", "metrics", "notification", "object-lock",
        "ownershipControls", "partNumber", "policy", "policyStatus", "publicAccessBlock",
        "replication", "requestPayment", "restore", "retention", "select", "session",
        "tagging", "torrent", "uploadId", "uploads", "versioning", "versions", "website",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Route:
    target: Target
    method: str
    action: Action
    keyword: str | None = None  # sub-resource that must be present; None: no sub-resource
    header: str | None = None  # header that must be present


ROUTES: tuple[Route, ...] = (
    Route(Target.SERVICE, "GET", Action.LIST_BUCKETS),
    Route(Target.BUCKET, "PUT", Action.CREATE_BUCKET),
    Route(Target.BUCKET, "HEAD", Action.HEAD_BUCKET),
    Route(Target.BUCKET, "DELETE", Action.DELETE_BUCKET),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_LOCATION, keyword="location"),
    Route(Target.BUCKET, "GET", Action.LIST_OBJECTS_V2, keyword="list-type"),
    Route(Target.BUCKET, "GET", Action.LIST_OBJECTS),
    Route(Target.BUCKET, "POST", Action.DELETE_OBJECTS, keyword="delete"),
    Route(Target.BUCKET, "GET", Action.LIST_MULTIPART_UPLOADS, keyword="uploads"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_LIFECYCLE_CONFIGURATION, keyword="lifecycle"),
    Route(Target.BUCKET, "PUT", Action.PUT_BUCKET_LIFECYCLE_CONFIGURATION, keyword="lifecycle"),
    Route(Target.BUCKET, "DELETE", Action.DELETE_BUCKET_LIFECYCLE, keyword="lifecycle"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_VERSIONING, keyword="versioning"),
    Route(Target.BUCKET, "PUT", Action.PUT_BUCKET_VERSIONING, keyword="versioning"),
    Route(Target.BUCKET, "GET", Action.LIST_OBJECT_VERSIONS, keyword="versions"),
    Route(Target.BUCKET, "GET", Action.GET_OBJECT_LOCK_CONFIGURATION, keyword="object-lock"),
    Route(Target.BUCKET, "PUT", Action.PUT_OBJECT_LOCK_CONFIGURATION, keyword="object-lock"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_TAGGING, keyword="tagging"),
    Route(Target.BUCKET, "PUT", Action.PUT_BUCKET_TAGGING, keyword="tagging"),
    Route(Target.BUCKET, "DELETE", Action.DELETE_BUCKET_TAGGING, keyword="tagging"),
    # Settings s3facade does not keep, read as unconfigured (handlers.unconfigured).
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_ENCRYPTION, keyword="encryption"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_WEBSITE, keyword="website"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_REPLICATION, keyword="replication"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_LOGGING, keyword="logging"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_NOTIFICATION, keyword="notification"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_ACCELERATE, keyword="accelerate"),
    Route(Target.BUCKET, "GET", Action.GET_BUCKET_REQUEST_PAYMENT, keyword="requestPayment"),
    Route(Target.BUCKET, "GET", Action.LIST_BUCKET_ANALYTICS, keyword="analytics"),
    Route(Target.BUCKET, "GET", Action.LIST_BUCKET_INVENTORY, keyword="inventory"),
    Route(Target.BUCKET, "GET", Action.LIST_BUCKET_METRICS, keyword="metrics"),
    Route(
        Target.BUCKET, "GET", Action.LIST_BUCKET_INTELLIGENT_TIERING, keyword="intelligent-tiering"
    ),
    Route(Target.OBJECT, "GET", Action.GET_OBJECT_RETENTION, keyword="retention"),
    Route(Target.OBJECT, "PUT", Action.PUT_OBJECT_RETENTION, keyword="retention"),
    Route(Target.OBJECT, "GET", Action.GET_OBJECT_LEGAL_HOLD, keyword="legal-hold"),
    Route(Target.OBJECT, "PUT", Action.PUT_OBJECT_LEGAL_HOLD, keyword="legal-hold"),
    Route(Target.OBJECT, "GET", Action.GET_OBJECT_TAGGING, keyword="tagging"),
    Route(Target.OBJECT, "PUT", Action.PUT_OBJECT_TAGGING, keyword="tagging"),
    Route(Target.OBJECT, "DELETE", Action.DELETE_OBJECT_TAGGING, keyword="tagging"),
    Route(Target.OBJECT, "PUT", Action.UPLOAD_PART_COPY, "uploadId", "x-amz-copy-source"),
    Route(Target.OBJECT, "PUT", Action.UPLOAD_PART, keyword="uploadId"),
    Route(Target.OBJECT, "PUT", Action.COPY_OBJECT, header="x-amz-copy-source"),
    Route(Target.OBJECT, "PUT", Action.PUT_OBJECT),
    Route(Target.OBJECT, "GET", Action.LIST_PARTS, keyword="uploadId"),
    Route(Target.OBJECT, "GET", Action.GET_OBJECT),
    Route(Target.OBJECT, "HEAD", Action.HEAD_OBJECT),
    Route(Target.OBJECT, "POST", Action.CREATE_MULTIPART_UPLOAD, keyword="uploads"),
    Route(Target.OBJECT, "POST", Action.COMPLETE_MULTIPART_UPLOAD, keyword="uploadId"),
    Route(Target.OBJECT, "DELETE", Action.ABORT_MULTIPART_UPLOAD, keyword="uploadId"),
    Route(Target.OBJECT, "DELETE", Action.DELETE_OBJECT),
)

# Sub-resources that qualify an object operation instead of selecting another one.
_OBJECT_QUALIFIERS = frozenset({"partNumber"})


@dataclass(frozen=True)
class Operation:
    action: Action
    bucket: str | None
    key: str | None

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
        return Operation(route.action, address.bucket, address.key)
    if keywords:
        raise S3Error(
            "NotImplemented",
            f"The sub-resource '{sorted(keywords)[0]}' is not implemented.",
        )
    raise S3Error("MethodNotAllowed")
