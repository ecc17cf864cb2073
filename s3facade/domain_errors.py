"""Domain refusals -> the S3 error AWS sends for them (one table)."""

from __future__ import annotations

from collections.abc import Mapping

from registry import errors as domain
from s3facade.errors import S3Error

S3_CODES: Mapping[type[domain.RegistryError], str] = {
    domain.NoSuchBucket: "NoSuchBucket",
    domain.BucketAlreadyExists: "BucketAlreadyExists",
    domain.BucketAlreadyOwnedByYou: "BucketAlreadyOwnedByYou",
    domain.BucketNotEmpty: "BucketNotEmpty",
    domain.NoSuchKey: "NoSuchKey",
    domain.PreconditionFailed: "PreconditionFailed",
    domain.ConditionalRequestConflict: "ConditionalRequestConflict",
    domain.StorageUnavailable: "ServiceUnavailable",
    domain.StorageFull: "InternalError",
    domain.NoSuchUpload: "NoSuchUpload",
    domain.InvalidPart: "InvalidPart",
    domain.InvalidPartOrder: "InvalidPartOrder",
    domain.EntityTooSmall: "EntityTooSmall",
}


def s3_error_for(exc: domain.RegistryError) -> S3Error:
    for cls in type(exc).__mro__:
        code = S3_CODES.get(cls)
        if code is not None:
            return S3Error(code)
    return S3Error("InternalError")
