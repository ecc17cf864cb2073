"""Domain refusals -> the S3 error AWS sends for them (one table)."""

from __future__ import annotations

from collections.abc import Mapping

from s3facade.errors import S3Error
from s3facade.registry import ObjectVersion, lifecycle
from s3facade.registry import errors as domain
from s3facade.registry.access.acl import InvalidCannedAcl
from s3facade.registry.access.bucket_settings import AclInForce, AclsDisabled, PublicAccessBlocked
from s3facade.registry.access.cors import InvalidCorsConfiguration
from s3facade.registry.access.policy import MalformedPolicy
from s3facade.responses import http_date

# error class -> (S3 code, message or None for the table's default)
S3_CODES: Mapping[type[domain.RegistryError], tuple[str, str | None]] = {
    domain.NoSuchBucket: ("NoSuchBucket", None),
    domain.InvalidBucketName: ("InvalidBucketName", None),
    domain.KeyTooLong: ("KeyTooLongError", None),
    domain.BucketAlreadyExists: ("BucketAlreadyExists", None),
    domain.BucketAlreadyOwnedByYou: ("BucketAlreadyOwnedByYou", None),
    domain.BucketNotEmpty: ("BucketNotEmpty", None),
    domain.NoSuchKey: ("NoSuchKey", None),
    domain.NoSuchVersion: ("NoSuchVersion", None),
    domain.DeleteMarkerFound: ("MethodNotAllowed", None),
    domain.PreconditionFailed: ("PreconditionFailed", None),
    domain.ConditionalRequestConflict: ("ConditionalRequestConflict", None),
    domain.StorageUnavailable: ("ServiceUnavailable", None),
    domain.LogUnavailable: ("ServiceUnavailable", None),
    domain.StaleDecision: ("SlowDown", None),  # every SDK retries it, with backoff
    domain.BytesCollected: ("SlowDown", None),
    # Retryable, as clients treat every 503: space may be freed (deletes, gc) meanwhile.
    domain.StorageFull: (
        "ServiceUnavailable",
        "The store is full: writes are refused until space is freed. Deletes still work.",
    ),
    domain.StoredBytesDamaged: (
        "InternalError",
        "The stored bytes of this object are missing or damaged.",
    ),
    domain.NoSuchUpload: ("NoSuchUpload", None),
    domain.InvalidPart: ("InvalidPart", None),
    domain.InvalidPartOrder: ("InvalidPartOrder", None),
    domain.EntityTooSmall: ("EntityTooSmall", None),
    domain.ObjectLocked: ("AccessDenied", "Access Denied because object protected by object lock."),
    domain.RetentionDenied: (
        "AccessDenied",
        "Access Denied: shortening or removing retention needs "
        "x-amz-bypass-governance-retention and the right to bypass (never for COMPLIANCE).",
    ),
    domain.ObjectLockNotEnabled: ("InvalidRequest", "Bucket is missing Object Lock Configuration"),
    domain.InvalidBucketState: ("InvalidBucketState", None),
    # The lifecycle handler renders these with the domain's explanation as the message.
    lifecycle.MalformedLifecycle: ("MalformedXML", None),
    lifecycle.InvalidLifecycleArgument: ("InvalidArgument", None),
    lifecycle.InvalidLifecycleRequest: ("InvalidRequest", None),
    lifecycle.InvalidLifecycleTag: ("InvalidTag", None),
    # Access control (registry.access): the policy and CORS errors carry AWS's message.
    MalformedPolicy: ("MalformedPolicy", None),
    InvalidCorsConfiguration: ("InvalidRequest", None),
    InvalidCannedAcl: ("InvalidArgument", None),
    PublicAccessBlocked: ("AccessDenied", None),
    AclsDisabled: ("AccessControlListNotSupported", None),
    AclInForce: ("InvalidBucketAclWithObjectOwnership", None),
}


def s3_error_for(exc: domain.RegistryError) -> S3Error:
    for cls in type(exc).__mro__:
        entry = S3_CODES.get(cls)
        if entry is not None:
            code, message = entry
            message = message or getattr(exc, "message", None)  # the domain's own wording
            return S3Error(code, message, extra=_details(exc), headers=_marker_headers(exc))
    return S3Error("InternalError")


def _details(exc: domain.RegistryError) -> dict[str, str]:
    """Elements AWS adds to these errors' XML."""
    if isinstance(exc, domain.InvalidBucketName):
        return {"BucketName": exc.name}
    if isinstance(exc, domain.KeyTooLong):
        return {"Size": str(exc.size), "MaxSizeAllowed": str(exc.limit)}
    return {}


def _marker_headers(exc: domain.RegistryError) -> dict[str, str]:
    """A delete marker in the way is announced in headers, as AWS does."""
    marker: ObjectVersion | None = None
    if isinstance(exc, domain.NoSuchKey | domain.DeleteMarkerFound):
        marker = exc.marker
    if marker is None:
        return {}
    headers = {"x-amz-delete-marker": "true", "x-amz-version-id": marker.version_id}
    if isinstance(exc, domain.DeleteMarkerFound):
        headers["Last-Modified"] = http_date(marker.last_modified)
    return headers
