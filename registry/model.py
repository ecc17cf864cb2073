"""The domain's values: buckets, object versions, who-did-it, write conditions, listings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from s3facade.registry.provenance import attached_provenance, parse_user_agent

# S3's version id of every object in a bucket that never had versioning enabled.
NULL_VERSION = "null"


class Versioning(StrEnum):
    ENABLED = "Enabled"
    SUSPENDED = "Suspended"


class LockMode(StrEnum):
    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


@dataclass(frozen=True, slots=True)
class DefaultRetention:
    """A bucket's Object Lock default: applied to every new version without its own."""

    mode: LockMode
    days: int | None = None
    years: int | None = None

    def until(self, now: datetime) -> datetime:
        return now + timedelta(days=self.days if self.days is not None else 365 * (self.years or 0))

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "days": self.days, "years": self.years}


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    owner: str
    region: str
    created: datetime
    versioning: Versioning | None = None  # None: never enabled
    object_lock: bool = False
    default_retention: DefaultRetention | None = None
    lifecycle: tuple[Mapping[str, Any], ...] | None = None  # rules as recorded; see lifecycle

    @property
    def versioned(self) -> bool:
        """New versions get their own id (otherwise they are the "null" version)."""
        return self.versioning is Versioning.ENABLED


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
    delete_marker: bool = False
    lock_mode: LockMode | None = None
    retain_until: datetime | None = None
    legal_hold: bool = False
    retention_source: str | None = None  # what set the retention: request, bucket default...
    retention_policy: str | None = None  # the configured policy the write matched, if any

    @property
    def parts_count(self) -> int:
        return len(self.part_sizes)

    def protected(self, now: datetime) -> bool:
        """Under legal hold or unexpired retention: the version may not be removed."""
        return self.legal_hold or (self.retain_until is not None and self.retain_until > now)

    def removable(self, now: datetime, *, bypass_governance: bool) -> bool:
        if self.legal_hold:
            return False
        if self.retain_until is None or self.retain_until <= now:
            return True
        return self.lock_mode is LockMode.GOVERNANCE and bypass_governance

    def derivation(self) -> dict[str, str]:
        """What a copy of this version is derived from, as recorded in the copy's event."""
        return {
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "sha256": self.sha256,
        }


@dataclass(frozen=True, slots=True)
class Lock:
    """Object Lock settings a write asks for (or inherits)."""

    mode: LockMode | None = None
    retain_until: datetime | None = None
    legal_hold: bool = False
    source: str | None = None
    policy: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lock:
        until = data.get("retain_until")
        return cls(
            LockMode(data["lock_mode"]) if data.get("lock_mode") else None,
            datetime.fromisoformat(until) if until else None,
            bool(data.get("legal_hold")),
            data.get("retention_source"),
            data.get("retention_policy"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "lock_mode": self.mode.value if self.mode else None,
            "retain_until": self.retain_until.isoformat() if self.retain_until else None,
            "legal_hold": self.legal_hold,
            "retention_source": self.source,
            "retention_policy": self.policy,
        }


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
    """If-None-Match (`*`: must_not_exist; an ETag: if_none_match) and If-Match on a write."""

    must_not_exist: bool = False
    if_match: str | None = None  # unquoted ETag, or "*"
    if_none_match: str | None = None  # unquoted ETag the current object must not have

    @property
    def is_unconditional(self) -> bool:
        return not self.must_not_exist and self.if_match is None and self.if_none_match is None


# Representation headers a version stores with its bytes and returns on GET and HEAD.
STORED_HEADERS = (
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
)


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Of a request's or a response's (lower-case) headers, those a version stores."""
    return {name: headers[name] for name in STORED_HEADERS if name in headers}


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """What the client asked to store alongside the bytes."""

    content_type: str = "binary/octet-stream"
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    acl: Mapping[str, Any] | None = None  # an ACL other than the writer's FULL_CONTROL

    def as_dict(self) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "headers": dict(self.headers),
            "metadata": dict(self.metadata),
            "tags": dict(self.tags),
            "attached": attached_provenance(self.metadata, self.tags),
            "acl": dict(self.acl) if self.acl is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectSpec:
        return cls(
            data["content_type"],
            data["headers"],
            data["metadata"],
            data.get("tags", {}),
            data.get("acl"),
        )


class ListedObject(NamedTuple):
    """A key as ListObjects shows it: only what the listing answers with, read without the
    rest of the version (a page reads a thousand of these)."""

    key: str
    last_modified: datetime
    etag: str
    size: int
    checksums: Mapping[str, str]
    owner: str


@dataclass(frozen=True, slots=True)
class ListingPage:
    objects: list[ListedObject]
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


@dataclass(frozen=True, slots=True)
class ObjectPart:
    """One part of a multipart object, as GetObjectAttributes lists it."""

    number: int
    size: int
    checksums: Mapping[str, str]  # algorithm -> base64; empty when the part had none


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
    lock: Lock | None = None  # what CreateMultipartUpload asked for


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


@dataclass(frozen=True, slots=True)
class VersionsPage:
    """ListObjectVersions: versions and delete markers, newest first within a key."""

    versions: list[tuple[ObjectVersion, bool]]  # (version, is latest)
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_version_id_marker: str | None


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    """What a DeleteObject did: removed a version, placed a marker, or nothing."""

    version_id: str | None
    delete_marker: bool
