"""The domain: events, the log, views, provenance. Knows nothing of HTTP or how bytes are kept."""

from s3facade.registry.core import UploadCheck
from s3facade.registry.model import (
    NULL_VERSION,
    Bucket,
    CompletedPart,
    ListingPage,
    MultipartUpload,
    ObjectSpec,
    ObjectVersion,
    Provenance,
    UploadPart,
    WriteCondition,
)
from s3facade.registry.registry import Registry

__all__ = [
    "NULL_VERSION",
    "Bucket",
    "CompletedPart",
    "ListingPage",
    "MultipartUpload",
    "ObjectSpec",
    "ObjectVersion",
    "Provenance",
    "Registry",
    "UploadCheck",
    "UploadPart",
    "WriteCondition",
]
