"""The views' tables in SQLite, and the conversion between their rows and the domain values.

Times are stored as integer microseconds since the epoch (naive UTC, as events keep them);
mappings and lists as compact JSON. Keys compare with SQLite's BINARY collation: UTF-8 byte
order, which is code point order, which is S3's listing order and Python's str order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from s3facade.registry.events import to_microseconds
from s3facade.registry.model import (
    Bucket,
    DefaultRetention,
    ListedObject,
    Lock,
    LockMode,
    MultipartUpload,
    ObjectSpec,
    ObjectVersion,
    UploadPart,
    Versioning,
)

SCHEMA_VERSION = "1"
EPOCH = datetime(1970, 1, 1)

VERSION_COLUMNS = (
    "bucket, key, seq, version_id, delete_marker, size, etag, sha256, md5, last_modified, "
    "content_type, backend_id, owner, checksum_type, lock_mode, retain_until, legal_hold, "
    "retention_source, retention_policy, headers, metadata, checksums, part_sizes, tags"
)
BUCKET_COLUMNS = (
    "name, owner, region, created, versioning, object_lock, default_retention, lifecycle"
)
UPLOAD_COLUMNS = (
    "upload_id, bucket, key, initiated, owner, spec, checksum_algorithm, checksum_type, lock"
)
PART_COLUMNS = "upload_id, number, size, etag, sha256, checksums, backend_id, last_modified"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
-- A bucket's tags (BucketTagsSet); a table of its own, so older views files gain it empty.
CREATE TABLE IF NOT EXISTS bucket_tags (bucket TEXT PRIMARY KEY, tags TEXT NOT NULL)
    WITHOUT ROWID;
-- A bucket's access settings (BucketAccessSet): policy, acl, cors, public_access_block,
-- ownership; each as recorded (JSON).
CREATE TABLE IF NOT EXISTS bucket_access (
    bucket TEXT NOT NULL, setting TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (bucket, setting)
) WITHOUT ROWID;
-- Object ACLs other than the default (the writer's FULL_CONTROL): ObjectAclSet, or asked
-- for at write.
CREATE TABLE IF NOT EXISTS object_acls (
    bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL, acl TEXT NOT NULL,
    PRIMARY KEY (bucket, key, version_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, region TEXT NOT NULL, created INTEGER NOT NULL,
    versioning TEXT, object_lock INTEGER NOT NULL, default_retention TEXT, lifecycle TEXT,
    keys INTEGER NOT NULL DEFAULT 0, objects INTEGER NOT NULL DEFAULT 0,
    versions INTEGER NOT NULL DEFAULT 0, uploads INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- Every version and delete marker, each key's newest first.
CREATE TABLE IF NOT EXISTS versions (
    bucket TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, version_id TEXT NOT NULL,
    delete_marker INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
    sha256 TEXT NOT NULL, md5 TEXT, last_modified INTEGER NOT NULL, content_type TEXT NOT NULL,
    backend_id TEXT NOT NULL, owner TEXT NOT NULL, checksum_type TEXT NOT NULL,
    lock_mode TEXT, retain_until INTEGER, legal_hold INTEGER NOT NULL, retention_source TEXT,
    retention_policy TEXT, headers TEXT NOT NULL, metadata TEXT NOT NULL,
    checksums TEXT NOT NULL, part_sizes TEXT NOT NULL, tags TEXT NOT NULL,
    PRIMARY KEY (bucket, key, seq DESC)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS versions_by_id ON versions (bucket, key, version_id);
CREATE INDEX IF NOT EXISTS versions_by_blob ON versions (backend_id, sha256);
-- The keys a plain GET or ListObjects shows: newest version not a delete marker.
CREATE TABLE IF NOT EXISTS current (
    bucket TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL,
    initiated INTEGER NOT NULL, owner TEXT NOT NULL, spec TEXT NOT NULL,
    checksum_algorithm TEXT, checksum_type TEXT, lock TEXT
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key, upload_id);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL, number INTEGER NOT NULL, size INTEGER NOT NULL,
    etag TEXT NOT NULL, sha256 TEXT NOT NULL, checksums TEXT NOT NULL,
    backend_id TEXT NOT NULL, last_modified INTEGER NOT NULL,
    PRIMARY KEY (upload_id, number)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS parts_by_blob ON parts (backend_id, sha256);
"""

# Every table, in the order (and with the ordering) the fingerprint reads them.
FINGERPRINT_QUERIES = (
    f"SELECT {BUCKET_COLUMNS}, keys, objects, versions, uploads FROM buckets ORDER BY name",
    "SELECT bucket, tags FROM bucket_tags ORDER BY bucket",
    "SELECT bucket, setting, value FROM bucket_access ORDER BY bucket, setting",
    "SELECT bucket, key, version_id, acl FROM object_acls ORDER BY bucket, key, version_id",
    f"SELECT {VERSION_COLUMNS} FROM versions ORDER BY bucket, key, seq DESC",
    "SELECT bucket, key, seq FROM current ORDER BY bucket, key",
    f"SELECT {UPLOAD_COLUMNS} FROM uploads ORDER BY upload_id",
    f"SELECT {PART_COLUMNS} FROM parts ORDER BY upload_id, number",
)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_us(time: datetime | None) -> int | None:
    return None if time is None else to_microseconds(time)


def from_us(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(microseconds=value)


def _time(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def version_row(version: ObjectVersion) -> tuple[Any, ...]:
    return (
        version.bucket,
        version.key,
        version.seq,
        version.version_id,
        int(version.delete_marker),
        version.size,
        version.etag,
        version.sha256,
        version.md5,
        to_us(version.last_modified),
        version.content_type,
        version.backend_id,
        version.owner,
        version.checksum_type,
        version.lock_mode.value if version.lock_mode else None,
        to_us(version.retain_until),
        int(version.legal_hold),
        version.retention_source,
        version.retention_policy,
        dumps(dict(version.headers)),
        dumps(dict(version.metadata)),
        dumps(dict(version.checksums)),
        dumps(list(version.part_sizes)),
        dumps(dict(version.tags)),
    )


def _loads(text: str) -> Any:
    """JSON, with the empty mapping and list (most rows' headers, metadata, tags, parts)
    decoded without the parser: listing pages decode thousands of them."""
    if text == "{}":
        return {}
    if text == "[]":
        return []
    return json.loads(text)


LISTED_COLUMNS = "key, last_modified, etag, size, checksums, owner"


def listed_from_row(row: Sequence[Any]) -> ListedObject:
    key, modified, etag, size, checksums, owner = row
    return ListedObject(key, _time(modified), etag, size, _loads(checksums), owner)


def version_from_row(row: Sequence[Any]) -> ObjectVersion:
    (bucket, key, seq, version_id, marker, size, etag, sha256, md5, modified, content_type,
     backend_id, owner, checksum_type, lock_mode, until, hold, source, policy, headers,
     metadata, checksums, part_sizes, tags) = row  # fmt: skip
    return ObjectVersion(
        bucket=bucket,
        key=key,
        version_id=version_id,
        size=size,
        etag=etag,
        sha256=sha256,
        md5=md5,
        last_modified=_time(modified),
        content_type=content_type,
        headers=_loads(headers),
        metadata=_loads(metadata),
        checksums=_loads(checksums),
        backend_id=backend_id,
        owner=owner,
        seq=seq,
        checksum_type=checksum_type,
        part_sizes=tuple(_loads(part_sizes)),
        tags=_loads(tags),
        delete_marker=bool(marker),
        lock_mode=LockMode(lock_mode) if lock_mode else None,
        retain_until=from_us(until),
        legal_hold=bool(hold),
        retention_source=source,
        retention_policy=policy,
    )


def bucket_row(bucket: Bucket) -> tuple[Any, ...]:
    retention = bucket.default_retention
    return (
        bucket.name,
        bucket.owner,
        bucket.region,
        to_us(bucket.created),
        bucket.versioning.value if bucket.versioning else None,
        int(bucket.object_lock),
        dumps(retention.as_dict()) if retention else None,
        dumps(list(bucket.lifecycle)) if bucket.lifecycle is not None else None,
    )


def bucket_from_row(row: Sequence[Any]) -> Bucket:
    name, owner, region, created, versioning, lock, retention, lifecycle = row[:8]
    default = None
    if retention is not None:
        rule = json.loads(retention)
        default = DefaultRetention(LockMode(rule["mode"]), rule["days"], rule["years"])
    return Bucket(
        name=name,
        owner=owner,
        region=region,
        created=_time(created),
        versioning=Versioning(versioning) if versioning else None,
        object_lock=bool(lock),
        default_retention=default,
        lifecycle=tuple(json.loads(lifecycle)) if lifecycle is not None else None,
    )


def upload_row(upload: MultipartUpload) -> tuple[Any, ...]:
    spec = upload.spec
    return (
        upload.upload_id,
        upload.bucket,
        upload.key,
        to_us(upload.initiated),
        upload.owner,
        dumps(
            {
                "content_type": spec.content_type,
                "headers": dict(spec.headers),
                "metadata": dict(spec.metadata),
                "tags": dict(spec.tags),
            }
            | ({"acl": dict(spec.acl)} if spec.acl is not None else {})
        ),
        upload.checksum_algorithm,
        upload.checksum_type,
        dumps(upload.lock.as_dict()) if upload.lock is not None else None,
    )


def upload_from_row(row: Sequence[Any], parts: Mapping[int, UploadPart]) -> MultipartUpload:
    upload_id, bucket, key, initiated, owner, spec, algorithm, checksum_type, lock = row
    return MultipartUpload(
        upload_id=upload_id,
        bucket=bucket,
        key=key,
        initiated=_time(initiated),
        owner=owner,
        spec=ObjectSpec.from_dict(json.loads(spec)),
        checksum_algorithm=algorithm,
        checksum_type=checksum_type,
        parts=dict(parts),
        lock=Lock.from_dict(json.loads(lock)) if lock is not None else None,
    )


def part_row(upload_id: str, part: UploadPart) -> tuple[Any, ...]:
    return (
        upload_id,
        part.number,
        part.size,
        part.etag,
        part.sha256,
        dumps(dict(part.checksums)),
        part.backend_id,
        to_us(part.last_modified),
    )


def part_from_row(row: Sequence[Any]) -> UploadPart:
    _, number, size, etag, sha256, checksums, backend_id, modified = row
    return UploadPart(
        number=number,
        size=size,
        etag=etag,
        sha256=sha256,
        checksums=json.loads(checksums),
        backend_id=backend_id,
        last_modified=_time(modified),
    )
