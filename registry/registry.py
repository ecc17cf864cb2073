"""The registry: the domain API that the server and the CLI call, usable without HTTP.

Open one on a data dir, create buckets, put, get, list and delete objects; every
state change goes through the event log and only then into the views.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from backends import (
    BackendSet,
    BlobReceipt,
    ByteRange,
    Hasher,
    StorageBackend,
)
from registry.errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    ConditionalRequestConflict,
    CorruptLog,
    LogInUse,
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
)
from registry.events import Event, EventType, utc_now
from registry.locks import LockTable, SharedLockTable
from registry.log import MAX_BATCH, EventLog
from registry.model import (
    NULL_VERSION,
    Bucket,
    ListingPage,
    ObjectSpec,
    ObjectVersion,
    Provenance,
    WriteCondition,
)
from registry.multipart import MultipartUploads
from registry.namespace import Namespace
from registry.staging import store_blob

LOG_FILE = "registry.duckdb"
UNCONDITIONAL = WriteCondition()

# Called once the bytes are staged, before they become visible: the protocol layer
# checks what the client declared (Content-MD5, checksums, payload hash) and returns
# the checksums to record. Raising refuses the upload; nothing is stored.
UploadCheck = Callable[[BlobReceipt, bytes], Mapping[str, str]]


class Registry:
    def __init__(self, log: EventLog, backends: BackendSet) -> None:
        self._log = log
        self._backends = backends
        self.namespace = replay(log)
        log.set_on_commit(self.namespace.apply)
        self._bucket_locks = SharedLockTable()
        self.uploads = MultipartUploads(self)
        self._key_locks = LockTable()

    @classmethod
    def open(
        cls,
        data_dir: Path,
        backends: BackendSet,
        *,
        clock: Callable[[], datetime] = utc_now,
        read_only: bool = False,
        max_batch: int = MAX_BATCH,
    ) -> Registry:
        """`read_only` for offline tools: the log file must exist and is not changed."""
        if not read_only:
            data_dir.mkdir(parents=True, exist_ok=True)
        elif not (data_dir / LOG_FILE).exists():
            raise FileNotFoundError(data_dir / LOG_FILE)
        try:
            log = EventLog(
                data_dir / LOG_FILE, clock=clock, read_only=read_only, max_batch=max_batch
            )
        except duckdb.IOException as exc:  # DuckDB: one process holds a database file
            raise LogInUse(str(exc)) from exc
        return cls(log, backends)

    def rebuild(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Replace the views with a fresh replay of the log; returns the fingerprints of the
        views before and after, taken at the same sequence number (equal when consistent).

        Runs on the event loop without awaiting, so no commit lands in between."""
        fresh = replay(self._log)
        before, after = self.namespace.fingerprint(), fresh.fingerprint()
        self.namespace = fresh
        self._log.set_on_commit(fresh.apply)
        return before, after

    @property
    def log(self) -> EventLog:
        return self._log

    @property
    def backends(self) -> BackendSet:
        return self._backends

    async def close(self) -> None:
        await self._log.close()

    # -- buckets ---------------------------------------------------------------------------

    def bucket(self, name: str) -> Bucket:
        bucket = self.namespace.buckets.get(name)
        if bucket is None:
            raise NoSuchBucket(name)
        return bucket

    def list_buckets(self, owner: str | None = None) -> list[Bucket]:
        buckets = self.namespace.buckets.values()
        return sorted(
            (b for b in buckets if owner is None or b.owner == owner), key=lambda b: b.name
        )

    async def create_bucket(self, name: str, region: str, provenance: Provenance) -> Bucket:
        async with self._bucket_locks[name].exclusive():
            existing = self.namespace.buckets.get(name)
            if existing is not None:
                if existing.owner == provenance.principal:
                    raise BucketAlreadyOwnedByYou(name)
                raise BucketAlreadyExists(name)
            data = {**provenance.as_dict(), "region": region}
            await self._log.append([Event(EventType.BUCKET_CREATED, name, None, data)])
        return self.bucket(name)

    async def delete_bucket(self, name: str, provenance: Provenance) -> None:
        async with self._bucket_locks[name].exclusive():
            self.bucket(name)
            if self.namespace.object_count(name):
                raise BucketNotEmpty(name)
            await self._log.append(
                [Event(EventType.BUCKET_DELETED, name, None, provenance.as_dict())]
            )

    # -- objects ---------------------------------------------------------------------------

    def head_object(self, bucket: str, key: str) -> ObjectVersion:
        self.bucket(bucket)
        version = self.namespace.current(bucket, key)
        if version is None:
            raise NoSuchKey(key)
        return version

    def open_object(
        self, version: ObjectVersion, byte_range: ByteRange | None = None
    ) -> AsyncIterator[bytes]:
        return self._backends[version.backend_id].open(version.sha256, byte_range)

    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> ListingPage:
        self.bucket(bucket)
        return self.namespace.list_page(
            bucket, prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys
        )

    async def put_object(
        self,
        bucket: str,
        key: str,
        body: AsyncIterable[bytes],
        *,
        spec: ObjectSpec,
        provenance: Provenance,
        condition: WriteCondition = UNCONDITIONAL,
        hashers: Sequence[Hasher] = (),
        check: UploadCheck | None = None,
    ) -> ObjectVersion:
        self.bucket(bucket)
        self.check_condition(bucket, key, condition)  # fail before reading the body
        backend = self.backend_for(bucket)
        md5 = hashlib.md5()
        verify = None if check is None else (lambda receipt: check(receipt, md5.digest()))
        receipt, checksums = await store_blob(backend, body, [md5, *hashers], verify)
        data = {
            **provenance.as_dict(),
            **spec.as_dict(),
            "version_id": NULL_VERSION,
            "size": receipt.size,
            "sha256": receipt.sha256,
            "md5": md5.hexdigest(),
            "etag": md5.hexdigest(),
            "checksums": dict(checksums),
            "checksum_type": "FULL_OBJECT",
            "backend_id": backend.backend_id,
        }
        await self.commit_write(Event(EventType.OBJECT_WRITTEN, bucket, key, data), condition)
        return self.head_object(bucket, key)

    async def copy_object(
        self,
        source: ObjectVersion,
        bucket: str,
        key: str,
        *,
        spec: ObjectSpec,
        provenance: Provenance,
        condition: WriteCondition = UNCONDITIONAL,
    ) -> ObjectVersion:
        """A new version with the source's bytes: no bytes move when both share a backend
        (content addressing), else they stream across. Recorded as derived from the source."""
        self.bucket(bucket)
        self.check_condition(bucket, key, condition)
        backend = self.backend_for(bucket)
        if backend.backend_id != source.backend_id:
            await store_blob(backend, self.open_object(source), (), None)
        data = {
            **provenance.as_dict(),
            **spec.as_dict(),
            "version_id": NULL_VERSION,
            "size": source.size,
            "sha256": source.sha256,
            "md5": source.md5,
            "etag": source.etag,
            "checksums": dict(source.checksums),
            "checksum_type": source.checksum_type,
            "part_sizes": list(source.part_sizes),
            "backend_id": backend.backend_id,
            "derived_from": derivation(source),
        }
        await self.commit_write(Event(EventType.OBJECT_WRITTEN, bucket, key, data), condition)
        return self.head_object(bucket, key)

    def record_read(self, version: ObjectVersion, provenance: Provenance, **read: Any) -> None:
        """Record who fetched which version (GET/HEAD/presigned GET): method, range, bytes
        sent, status, whether the client hung up early. Never waits for a disk flush."""
        data = {
            **provenance.as_dict(),
            "version_id": version.version_id,
            "sha256": version.sha256,
            "etag": version.etag,
            **read,
        }
        self._log.record([Event(EventType.OBJECT_READ, version.bucket, version.key, data)])

    async def commit_write(self, event: Event, condition: WriteCondition) -> None:
        """Append an object write, atomically with its condition and its bucket's existence.

        Holds the bucket shared and the key exclusively only for the commit, never while
        bytes upload, so concurrent writes to different keys still share transactions.
        """
        bucket, key = event.bucket, event.key
        assert key is not None
        async with self._bucket_locks[bucket].shared(), self._key_locks.hold((bucket, key)):
            self.bucket(bucket)
            try:
                self.check_condition(bucket, key, condition)
            except PreconditionFailed:
                # It held before the upload; a concurrent writer changed the key since.
                raise ConditionalRequestConflict(key) from None
            await self._log.append([event])

    async def delete_object(
        self,
        bucket: str,
        key: str,
        provenance: Provenance,
        condition: WriteCondition = UNCONDITIONAL,
    ) -> bool:
        """Remove the key's current object; False if there was none (not an error in S3)."""
        self.bucket(bucket)
        async with self._bucket_locks[bucket].shared(), self._key_locks.hold((bucket, key)):
            self.check_condition(bucket, key, condition)
            if self.namespace.current(bucket, key) is None:
                return False
            await self._log.append(
                [Event(EventType.OBJECT_DELETED, bucket, key, provenance.as_dict())]
            )
            return True

    def check_condition(self, bucket: str, key: str, condition: WriteCondition) -> None:
        if condition.is_unconditional:
            return
        current = self.namespace.current(bucket, key)
        if condition.must_not_exist and current is not None:
            raise PreconditionFailed(key)
        if condition.if_match is not None:
            if current is None:
                raise NoSuchKey(key)
            if condition.if_match not in ("*", current.etag):
                raise PreconditionFailed(key)

    def backend_for(self, bucket: str) -> StorageBackend:
        return self._backends.for_bucket(bucket)


def replay(log: EventLog) -> Namespace:
    """Fresh views from every event of the log."""
    namespace = Namespace()
    for event in log.replay():
        try:
            namespace.apply(event)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptLog(event.seq, repr(exc)) from exc
    return namespace


def derivation(source: ObjectVersion) -> dict[str, str]:
    """What a copy was derived from, as recorded in its event."""
    return {
        "bucket": source.bucket,
        "key": source.key,
        "version_id": source.version_id,
        "sha256": source.sha256,
    }


def open_log_read_only(data_dir: Path) -> EventLog:
    """The bare log of a stopped server (when its views cannot be built)."""
    try:
        return EventLog(data_dir / LOG_FILE, read_only=True)
    except duckdb.IOException as exc:
        raise LogInUse(str(exc)) from exc
