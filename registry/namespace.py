"""The views requests read: buckets and current objects, derived from the log only.

`Namespace.apply` is the single place an event changes state; replaying the log
through it from empty rebuilds exactly what a running server holds. Keys are kept
sorted per bucket (Python str order = UTF-8 byte order = S3's listing order), so a
listing page is a bisect plus a short walk rather than a scan.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sortedcontainers import SortedDict

from registry.events import CommittedEvent, EventType
from registry.model import Bucket, ListingPage, ObjectVersion


class Namespace:
    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}
        self._objects: dict[str, SortedDict[str, ObjectVersion]] = {}

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
            case EventType.BUCKET_DELETED:
                self.buckets.pop(event.bucket, None)
                self._objects.pop(event.bucket, None)
            case EventType.OBJECT_WRITTEN:
                assert event.key is not None
                self._objects[event.bucket][event.key] = _version_from(event)
            case EventType.OBJECT_DELETED:
                assert event.key is not None
                self._objects[event.bucket].pop(event.key, None)

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
    )


def last_modified_second(time: datetime) -> datetime:
    """HTTP dates have second precision; conditional requests compare at that precision."""
    return time.replace(microsecond=0)
