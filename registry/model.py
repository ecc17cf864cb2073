"""The domain's values: buckets, object versions, who-did-it, write conditions, listings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from registry.provenance import attached_provenance, parse_user_agent

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
    checksum_type: str = "FULL_OBJECT"  # or COMPOSITE (multipart checksums of checksums)
    part_sizes: tuple[int, ...] = ()  # sizes of the parts of a multipart object, in order
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def parts_count(self) -> int:
        return len(self.part_sizes)


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
            "tool": parse_user_agent(self.user_agent).as_dict(),
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
    tags: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "headers": dict(self.headers),
            "metadata": dict(self.metadata),
            "tags": dict(self.tags),
            "attached": attached_provenance(self.metadata, self.tags),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectSpec:
        return cls(data["content_type"], data["headers"], data["metadata"], data.get("tags", {}))


@dataclass(frozen=True, slots=True)
class ListingPage:
    objects: list[ObjectVersion]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str | None  # last key or common prefix returned, when truncated


@dataclass(frozen=True, slots=True)
class UploadPart:
    number: int
    size: int
    etag: str  # the part's MD5 hex
    sha256: str
    checksums: Mapping[str, str]
    backend_id: str
    last_modified: datetime


@dataclass(slots=True)
class MultipartUpload:
    """An unfinished multipart upload. `parts` grows in place as parts arrive (up to
    10,000; copying the mapping per part would make an upload quadratic)."""

    upload_id: str
    bucket: str
    key: str
    initiated: datetime
    owner: str
    spec: ObjectSpec
    checksum_algorithm: str | None
    checksum_type: str | None
    parts: dict[int, UploadPart] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UploadsPage:
    uploads: list[MultipartUpload]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


@dataclass(frozen=True, slots=True)
class CompletedPart:
    """A part as CompleteMultipartUpload names it."""

    number: int
    etag: str  # unquoted
