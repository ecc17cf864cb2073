"""The views requests read: buckets, object versions and open uploads, from the log only.

`Namespace.apply` is the single place an event changes state; replaying the log
through it from empty rebuilds exactly what a running server holds. Keys are kept
sorted per bucket (Python str order = UTF-8 byte order = S3's listing order), each
with its versions newest first (a delete marker is a version too).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from sortedcontainers import SortedDict

from registry import listing
from registry.events import CommittedEvent, EventType
from registry.model import (
    NULL_VERSION,
    Bucket,
    DefaultRetention,
    ListingPage,
    Lock,
    LockMode,
    MultipartUpload,
    ObjectSpec,
    ObjectVersion,
    UploadPart,
    UploadsPage,
    Versioning,
    VersionsPage,
)

Versions = list[ObjectVersion]  # newest first


class Namespace:
    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}
        self._objects: dict[str, SortedDict[str, Versions]] = {}
        # Unfinished multipart uploads per bucket, ordered as ListMultipartUploads lists them.
        self._uploads: dict[str, SortedDict[tuple[str, str], MultipartUpload]] = {}
        self.uploads: dict[str, MultipartUpload] = {}  # by upload id

    def apply(self, event: CommittedEvent) -> None:
        data = event.data
        bucket, key = event.bucket, event.key or ""
        match event.type:
            case EventType.BUCKET_CREATED:
                lock = bool(data.get("object_lock"))
                self.buckets[bucket] = Bucket(
                    name=bucket,
                    owner=data["principal"],
                    region=data["region"],
                    created=event.time,
                    versioning=Versioning.ENABLED if lock else None,
                    object_lock=lock,
                )
                self._objects[bucket] = SortedDict()
                self._uploads[bucket] = SortedDict()
            case EventType.BUCKET_DELETED:
                self.buckets.pop(bucket, None)
                self._objects.pop(bucket, None)
                for upload in self._uploads.pop(bucket, {}).values():
                    del self.uploads[upload.upload_id]
            case EventType.BUCKET_VERSIONING_SET:
                self._update_bucket(bucket, versioning=Versioning(data["status"]))
            case EventType.BUCKET_LOCK_CONFIGURED:
                rule = data.get("default_retention")
                default = None
                if rule is not None:
                    default = DefaultRetention(LockMode(rule["mode"]), rule["days"], rule["years"])
                self._update_bucket(bucket, default_retention=default)
            case EventType.BUCKET_LIFECYCLE_SET:
                rules = data.get("rules")
                self._update_bucket(bucket, lifecycle=tuple(rules) if rules is not None else None)
            case EventType.OBJECT_WRITTEN | EventType.UPLOAD_COMPLETED:
                if event.type is EventType.UPLOAD_COMPLETED:
                    self._forget_upload(data["upload_id"])
                self._add_version(bucket, key, _version_from(event))
            case EventType.DELETE_MARKER_PLACED:
                self._add_version(bucket, key, _marker_from(event))
            case EventType.OBJECT_DELETED:
                self._remove_version(bucket, key, data.get("version_id", NULL_VERSION))
            case EventType.RETENTION_SET:
                until = data["retain_until"]
                self._update_version(
                    bucket,
                    key,
                    data["version_id"],
                    lock_mode=LockMode(data["mode"]) if data["mode"] else None,
                    retain_until=datetime.fromisoformat(until) if until else None,
                    retention_source="PutObjectRetention",
                )
            case EventType.LEGAL_HOLD_SET:
                self._update_version(bucket, key, data["version_id"], legal_hold=data["status"])
            case EventType.TAGS_SET:
                self._update_version(bucket, key, data["version_id"], tags=data["tags"])
            case EventType.UPLOAD_CREATED:
                upload = MultipartUpload(
                    upload_id=data["upload_id"],
                    bucket=bucket,
                    key=key,
                    initiated=event.time,
                    owner=data["principal"],
                    spec=ObjectSpec.from_dict(data),
                    checksum_algorithm=data["checksum_algorithm"],
                    checksum_type=data["checksum_type"],
                    lock=Lock.from_dict(asked) if (asked := data.get("requested_lock")) else None,
                )
                self.uploads[upload.upload_id] = upload
                self._uploads[bucket][(upload.key, upload.upload_id)] = upload
            case EventType.PART_UPLOADED:
                part = UploadPart(
                    number=data["part_number"],
                    size=data["size"],
                    etag=data["etag"],
                    sha256=data["sha256"],
                    checksums=data["checksums"],
                    backend_id=data["backend_id"],
                    last_modified=event.time,
                )
                self.uploads[data["upload_id"]].parts[part.number] = part
            case EventType.UPLOAD_ABORTED:
                self._forget_upload(data["upload_id"])
            case (
                EventType.OBJECT_READ
                | EventType.BLOBS_COLLECTED
                | EventType.BLOB_DAMAGED
                | EventType.SCRUB_PASS_COMPLETED
            ):
                pass  # recorded for audit; they change no view

    def _update_bucket(self, name: str, **changes: Any) -> None:
        self.buckets[name] = replace(self.buckets[name], **changes)

    def _add_version(self, bucket: str, key: str, version: ObjectVersion) -> None:
        versions = self._objects[bucket].setdefault(key, [])
        if version.version_id == NULL_VERSION:  # a new null version replaces the old one
            versions[:] = [v for v in versions if v.version_id != NULL_VERSION]
        versions.insert(0, version)

    def _remove_version(self, bucket: str, key: str, version_id: str) -> None:
        objects = self._objects[bucket]
        versions = [v for v in objects.get(key, []) if v.version_id != version_id]
        if versions:
            objects[key] = versions
        else:
            objects.pop(key, None)

    def _update_version(self, bucket: str, key: str, version_id: str, **changes: Any) -> None:
        versions = self._objects[bucket][key]
        for index, version in enumerate(versions):
            if version.version_id == version_id:
                versions[index] = replace(version, **changes)

    def _forget_upload(self, upload_id: str) -> None:
        upload = self.uploads.pop(upload_id)
        del self._uploads[upload.bucket][(upload.key, upload_id)]

    # -- reads ---------------------------------------------------------------------------

    def versions(self, bucket: str, key: str) -> Versions:
        objects = self._objects.get(bucket)
        return [] if objects is None else objects.get(key, [])

    def latest(self, bucket: str, key: str) -> ObjectVersion | None:
        """The newest version, which may be a delete marker."""
        versions = self.versions(bucket, key)
        return versions[0] if versions else None

    def current(self, bucket: str, key: str) -> ObjectVersion | None:
        """The object a plain GET returns: the newest version unless it is a delete marker."""
        latest = self.latest(bucket, key)
        return None if latest is None or latest.delete_marker else latest

    def version(self, bucket: str, key: str, version_id: str) -> ObjectVersion | None:
        return next((v for v in self.versions(bucket, key) if v.version_id == version_id), None)

    def object_count(self, bucket: str) -> int:
        """Keys with any version (delete markers included): a bucket with any is not empty."""
        return len(self._objects.get(bucket, ()))

    def upload_count(self, bucket: str) -> int:
        return len(self._uploads.get(bucket, ()))

    def all_versions(self, bucket: str) -> Iterator[ObjectVersion]:
        for versions in self._objects.get(bucket, SortedDict()).values():
            yield from versions

    def list_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> ListingPage:
        objects = self._objects.get(bucket, SortedDict())
        return listing.current_page(objects, prefix, delimiter, after, max_keys)

    def list_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
    ) -> VersionsPage:
        objects = self._objects.get(bucket, SortedDict())
        return listing.versions_page(
            objects, prefix, delimiter, key_marker, version_id_marker, max_keys
        )

    def list_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage:
        uploads = self._uploads.get(bucket, SortedDict())
        return listing.uploads_page(
            uploads, prefix, delimiter, key_marker, upload_id_marker, max_uploads
        )

    # -- comparison ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the views hold, as plain data (to compare live and rebuilt views)."""
        return {
            "buckets": {name: asdict(b) for name, b in sorted(self.buckets.items())},
            "objects": {
                bucket: {key: [asdict(v) for v in versions] for key, versions in objects.items()}
                for bucket, objects in sorted(self._objects.items())
            },
            "uploads": {
                upload_id: asdict(upload) for upload_id, upload in sorted(self.uploads.items())
            },
        }

    def counts(self) -> tuple[int, int]:
        """(current objects, versions including delete markers)."""
        current = versions = 0
        for objects in self._objects.values():
            for stack in objects.values():
                versions += len(stack)
                current += not stack[0].delete_marker
        return current, versions

    def fingerprint(self) -> dict[str, Any]:
        """Counts and a SHA-256 over the snapshot: equal views have equal fingerprints."""
        canonical = json.dumps(self.snapshot(), sort_keys=True, default=str).encode()
        return {
            "buckets": len(self.buckets),
            "objects": self.counts()[0],
            "versions": self.counts()[1],
            "uploads": len(self.uploads),
            "sha256": hashlib.sha256(canonical).hexdigest(),
        }


def _version_from(event: CommittedEvent) -> ObjectVersion:
    data: Mapping[str, Any] = event.data
    until = data.get("retain_until")
    mode = data.get("lock_mode")
    return ObjectVersion(
        bucket=event.bucket,
        key=event.key or "",
        version_id=data["version_id"],
        size=data["size"],
        etag=data["etag"],
        sha256=data["sha256"],
        md5=data["md5"],
        last_modified=event.time,
        content_type=data["content_type"],
        headers=data["headers"],
        metadata=data["metadata"],
        checksums=data["checksums"],
        backend_id=data["backend_id"],
        owner=data["principal"],
        seq=event.seq,
        checksum_type=data.get("checksum_type", "FULL_OBJECT"),
        part_sizes=tuple(data.get("part_sizes", ())),
        tags=data.get("tags", {}),
        lock_mode=LockMode(mode) if mode else None,
        retain_until=datetime.fromisoformat(until) if until else None,
        legal_hold=bool(data.get("legal_hold")),
        retention_source=data.get("retention_source"),
        retention_policy=data.get("retention_policy"),
    )


def _marker_from(event: CommittedEvent) -> ObjectVersion:
    return ObjectVersion(
        bucket=event.bucket,
        key=event.key or "",
        version_id=event.data["version_id"],
        size=0,
        etag="",
        sha256="",
        md5="",
        last_modified=event.time,
        content_type="",
        headers={},
        metadata={},
        checksums={},
        backend_id="",
        owner=event.data["principal"],
        seq=event.seq,
        delete_marker=True,
    )
