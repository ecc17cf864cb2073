"""The views requests read: buckets and current objects, derived from the log only.

`Namespace.apply` is the single place an event changes state; replaying the log
through it from empty rebuilds exactly what a running server holds. Keys are kept
sorted per bucket (Python str order = UTF-8 byte order = S3's listing order), so a
listing page is a bisect plus a short walk rather than a scan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sortedcontainers import SortedDict

from registry.events import CommittedEvent, EventType
from registry.model import (
    Bucket,
    ListingPage,
    MultipartUpload,
    ObjectSpec,
    ObjectVersion,
    UploadPart,
    UploadsPage,
)


class Namespace:
    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}
        self._objects: dict[str, SortedDict[str, ObjectVersion]] = {}
        # Unfinished multipart uploads per bucket, ordered as ListMultipartUploads lists them.
        self._uploads: dict[str, SortedDict[tuple[str, str], MultipartUpload]] = {}
        self.uploads: dict[str, MultipartUpload] = {}  # by upload id

    def apply(self, event: CommittedEvent) -> None:
        data = event.data
        match event.type:
            case EventType.BUCKET_CREATED:
                self.buckets[event.bucket] = Bucket(
                    name=event.bucket,
                    owner=data["principal"],
                    region=data["region"],
                    created=event.time,
                )
                self._objects[event.bucket] = SortedDict()
                self._uploads[event.bucket] = SortedDict()
            case EventType.BUCKET_DELETED:
                self.buckets.pop(event.bucket, None)
                self._objects.pop(event.bucket, None)
                for upload in self._uploads.pop(event.bucket, {}).values():
                    del self.uploads[upload.upload_id]
            case EventType.OBJECT_WRITTEN:
                assert event.key is not None
                self._objects[event.bucket][event.key] = _version_from(event)
            case EventType.OBJECT_DELETED:
                assert event.key is not None
                self._objects[event.bucket].pop(event.key, None)
            case EventType.UPLOAD_CREATED:
                assert event.key is not None
                upload = MultipartUpload(
                    upload_id=data["upload_id"],
                    bucket=event.bucket,
                    key=event.key,
                    initiated=event.time,
                    owner=data["principal"],
                    spec=ObjectSpec.from_dict(data),
                    checksum_algorithm=data["checksum_algorithm"],
                    checksum_type=data["checksum_type"],
                )
                self.uploads[upload.upload_id] = upload
                self._uploads[event.bucket][(upload.key, upload.upload_id)] = upload
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
            case EventType.UPLOAD_COMPLETED:
                assert event.key is not None
                self._forget_upload(data["upload_id"])
                self._objects[event.bucket][event.key] = _version_from(event)
            case EventType.UPLOAD_ABORTED:
                self._forget_upload(data["upload_id"])
            case EventType.OBJECT_READ:
                pass  # reads are recorded for audit; they change no view

    def snapshot(self) -> dict[str, Any]:
        """Everything the views hold, as plain data (to compare live and rebuilt views)."""
        return {
            "buckets": {name: asdict(b) for name, b in sorted(self.buckets.items())},
            "objects": {
                bucket: [asdict(v) for v in objects.values()]
                for bucket, objects in sorted(self._objects.items())
            },
            "uploads": {
                upload_id: asdict(upload) for upload_id, upload in sorted(self.uploads.items())
            },
        }

    def fingerprint(self) -> dict[str, Any]:
        """Counts and a SHA-256 over the snapshot: equal views have equal fingerprints."""
        canonical = json.dumps(self.snapshot(), sort_keys=True, default=str).encode()
        return {
            "buckets": len(self.buckets),
            "objects": sum(len(o) for o in self._objects.values()),
            "uploads": len(self.uploads),
            "sha256": hashlib.sha256(canonical).hexdigest(),
        }

    def _forget_upload(self, upload_id: str) -> None:
        upload = self.uploads.pop(upload_id)
        del self._uploads[upload.bucket][(upload.key, upload_id)]

    def upload_count(self, bucket: str) -> int:
        return len(self._uploads.get(bucket, ()))

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
        """Uploads ordered by key, then initiation (upload ids sort by time, see registry)."""
        uploads = self._uploads.get(bucket, SortedDict())
        if upload_id_marker and key_marker:
            start = uploads.bisect_right((key_marker, upload_id_marker))
        else:
            start = uploads.bisect_right((key_marker, "\U0010ffff")) if key_marker else 0
        found: list[MultipartUpload] = []
        prefixes: list[str] = []
        last_marker: tuple[str, str | None] = ("", None)
        keys = uploads.keys()
        index = max(start, uploads.bisect_left((prefix, "")))
        truncated = False
        while index < len(keys):
            key, _ = keys[index]
            if not key.startswith(prefix):
                break
            if len(found) + len(prefixes) == max_uploads:
                truncated = True
                break
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                prefixes.append(common)
                last_marker = (common, None)
                index = uploads.bisect_left((common[:-1] + chr(ord(common[-1]) + 1), ""))
                continue
            upload = uploads[keys[index]]
            found.append(upload)
            last_marker = (upload.key, upload.upload_id)
            index += 1
        return UploadsPage(
            found,
            prefixes,
            truncated,
            next_key_marker=last_marker[0] if truncated else None,
            next_upload_id_marker=last_marker[1] if truncated else None,
        )

    def current(self, bucket: str, key: str) -> ObjectVersion | None:
        objects = self._objects.get(bucket)
        return None if objects is None else objects.get(key)

    def object_count(self, bucket: str) -> int:
        return len(self._objects.get(bucket, ()))

    def list_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> ListingPage:
        """Keys (and common prefixes) after `after`, in order; max_keys counts both."""
        objects: list[ObjectVersion] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        for entry in self._walk(bucket, prefix, delimiter, after):
            if len(objects) + len(prefixes) == max_keys:
                truncated = True
                break
            if isinstance(entry, str):
                prefixes.append(entry)
                last = entry
            else:
                objects.append(entry)
                last = entry.key
        return ListingPage(objects, prefixes, truncated, last if truncated else None)

    def _walk(
        self, bucket: str, prefix: str, delimiter: str, after: str
    ) -> Iterator[ObjectVersion | str]:
        objects = self._objects.get(bucket)
        if objects is None:
            return
        start = max(prefix, after)
        index = objects.bisect_right(after) if start == after else objects.bisect_left(start)
        keys = objects.keys()
        while index < len(keys):
            key = keys[index]
            if not key.startswith(prefix):
                return
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut < 0:
                yield objects[key]
                index += 1
                continue
            common = key[: cut + len(delimiter)]
            if common > after:  # a marker inside a prefix group resumes after that group
                yield common
            # Skip every key in this group: the successor of the group's last possible key.
            index = objects.bisect_left(common[:-1] + chr(ord(common[-1]) + 1))


def _version_from(event: CommittedEvent) -> ObjectVersion:
    data: Mapping[str, Any] = event.data
    assert event.key is not None
    return ObjectVersion(
        bucket=event.bucket,
        key=event.key,
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
    )


def last_modified_second(time: datetime) -> datetime:
    """HTTP dates have second precision; conditional requests compare at that precision."""
    return time.replace(microsecond=0)
