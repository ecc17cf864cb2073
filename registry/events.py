"""Events: every state change is one, chained by hash so the log is tamper-evident.

The canonical encoding is compact JSON with sorted keys; an event's hash is
SHA-256 over its predecessor's hash and that encoding, so editing, removing or
reordering any event breaks every hash after it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

GENESIS_HASH = "0" * 64


class EventType(StrEnum):
    BUCKET_CREATED = "BucketCreated"
    BUCKET_DELETED = "BucketDeleted"
    OBJECT_WRITTEN = "ObjectWritten"
    OBJECT_IMPORTED = "ObjectImported"
    OBJECT_DELETED = "ObjectDeleted"
    UPLOAD_CREATED = "MultipartUploadCreated"
    PART_UPLOADED = "PartUploaded"
    UPLOAD_COMPLETED = "MultipartUploadCompleted"
    UPLOAD_ABORTED = "MultipartUploadAborted"
    OBJECT_READ = "ObjectRead"
    BUCKET_VERSIONING_SET = "BucketVersioningSet"
    BUCKET_LOCK_CONFIGURED = "BucketObjectLockConfigured"
    BUCKET_LIFECYCLE_SET = "BucketLifecycleSet"
    BUCKET_TAGS_SET = "BucketTagsSet"
    BUCKET_ACCESS_SET = "BucketAccessSet"
    OBJECT_ACL_SET = "ObjectAclSet"
    ACCESS_DENIED = "AccessDenied"
    DELETE_MARKER_PLACED = "DeleteMarkerPlaced"
    RETENTION_SET = "ObjectRetentionSet"
    LEGAL_HOLD_SET = "ObjectLegalHoldSet"
    TAGS_SET = "ObjectTagsSet"
    BLOBS_COLLECTED = "BlobsCollected"
    BLOB_DAMAGED = "BlobDamaged"
    SCRUB_PASS_COMPLETED = "ScrubPassCompleted"
    # The log's own history (registry.log_check, registry.heads): the views ignore them.
    LOG_ANCHOR_CREATED = "LogAnchorCreated"
    LOG_LOSS_ACCEPTED = "LogLossAccepted"
    LOG_HEAD_SIGNED = "LogHeadSigned"
    VIEWS_REBUILT = "ViewsRebuilt"


@dataclass(frozen=True, slots=True)
class Event:
    """An event before it is committed: no sequence number or hash yet."""

    type: EventType
    bucket: str
    key: str | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CommittedEvent:
    seq: int
    time: datetime  # naive UTC, microsecond precision (as DuckDB's TIMESTAMP keeps it)
    type: EventType
    bucket: str
    key: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def canonical(self) -> bytes:
        return canonical_encoding(self.seq, self.time, self.type, self.bucket, self.key, self.data)


def canonical_encoding(
    seq: int,
    time: datetime,
    type_: str,
    bucket: str,
    key: str | None,
    data: dict[str, Any],
) -> bytes:
    body = {
        "seq": seq,
        "time_us": to_microseconds(time),
        "type": str(type_),
        "bucket": bucket,
        "key": key,
        "data": data,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical).hexdigest()


def seal(event: Event, seq: int, time: datetime, prev_hash: str) -> CommittedEvent:
    digest = chain_hash(
        prev_hash, canonical_encoding(seq, time, event.type, event.bucket, event.key, event.data)
    )
    return CommittedEvent(
        seq, time, event.type, event.bucket, event.key, event.data, prev_hash, digest
    )


def utc_now() -> datetime:
    """Naive UTC with microseconds: the form DuckDB TIMESTAMP round-trips exactly."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_microseconds(time: datetime) -> int:
    delta = time - datetime(1970, 1, 1)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
