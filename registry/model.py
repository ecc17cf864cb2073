"""The domain's values: buckets, object versions, who-did-it, write conditions, listings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# S3's version id of every object in a bucket that never had versioning enabled.
NULL_VERSION = "null"


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    owner: str
    region: str
    created: datetime


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    bucket: str
    key: str
    version_id: str
    size: int
    etag: str  # without quotes: MD5 hex, or "<hex>-N" for multipart
    sha256: str
    md5: str
    last_modified: datetime
    content_type: str
    headers: Mapping[str, str]  # stored representation headers: content-encoding, cache-control...
    metadata: Mapping[str, str]  # x-amz-meta-* without the prefix, lower-case names
    checksums: Mapping[str, str]  # algorithm name (CRC32...) -> base64 value
    backend_id: str
    owner: str
    seq: int  # the event that wrote it


@dataclass(frozen=True, slots=True)
class Provenance:
    """Who asked, from where, with what tool: recorded in every event a request causes."""

    principal: str
    client_address: str
    user_agent: str
    request_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "client_address": self.client_address,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
        }


@dataclass(frozen=True, slots=True)
class WriteCondition:
    """If-None-Match: * (must_not_exist) and If-Match (etag) on a write."""

    must_not_exist: bool = False
    if_match: str | None = None  # unquoted ETag, or "*"

    @property
    def is_unconditional(self) -> bool:
        return not self.must_not_exist and self.if_match is None


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """What the client asked to store alongside the bytes."""

    content_type: str = "binary/octet-stream"
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListingPage:
    objects: list[ObjectVersion]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str | None  # last key or common prefix returned, when truncated
