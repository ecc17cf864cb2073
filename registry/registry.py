"""The registry: the domain API that the server and the CLI call, usable without HTTP.

Open one on a data dir, create buckets, put, get, list and delete objects; every
state change goes through the event log and only then into the views.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from backends import (
    BackendFull,
    BackendSet,
    BackendUnavailable,
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
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
    StorageFull,
    StorageUnavailable,
)
from registry.events import Event, EventType, utc_now
from registry.locks import BucketLocks, LockTable
from registry.log import EventLog
from registry.model import (
    NULL_VERSION,
    Bucket,
    ListingPage,
    ObjectSpec,
    ObjectVersion,
    Provenance,
    WriteCondition,
)
from registry.namespace import Namespace

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
        self.namespace = Namespace()
        for event in log.replay():
            self.namespace.apply(event)
        log.set_on_commit(self.namespace.apply)
        self._bucket_locks = BucketLocks()
        self._key_locks = LockTable()

    @classmethod
    def open(
        cls,
        data_dir: Path,
        backends: BackendSet,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> Registry:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(EventLog(data_dir / LOG_FILE, clock=clock), backends)

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
        self._check_condition(bucket, key, condition)  # fail before reading the body
        backend = self._backend_for(bucket)
        md5 = hashlib.md5()
        receipt, checksums = await _store(backend, body, [md5, *hashers], check, md5)
        data = {
            **provenance.as_dict(),
            "version_id": NULL_VERSION,
            "size": receipt.size,
            "sha256": receipt.sha256,
            "md5": md5.hexdigest(),
            "etag": md5.hexdigest(),
            "checksums": dict(checksums),
            "content_type": spec.content_type,
            "headers": dict(spec.headers),
            "metadata": dict(spec.metadata),
            "backend_id": backend.backend_id,
        }
        async with self._bucket_locks[bucket].shared(), self._key_locks.hold((bucket, key)):
            self.bucket(bucket)
            try:
                self._check_condition(bucket, key, condition)
            except PreconditionFailed:
                # It held before the upload; a concurrent writer changed the key since.
                raise ConditionalRequestConflict(key) from None
            await self._log.append([Event(EventType.OBJECT_WRITTEN, bucket, key, data)])
        return self.head_object(bucket, key)

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
            self._check_condition(bucket, key, condition)
            if self.namespace.current(bucket, key) is None:
                return False
            await self._log.append(
                [Event(EventType.OBJECT_DELETED, bucket, key, provenance.as_dict())]
            )
            return True

    def _check_condition(self, bucket: str, key: str, condition: WriteCondition) -> None:
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

    def _backend_for(self, bucket: str) -> StorageBackend:
        return self._backends[self._backends.default]


async def _store(
    backend: StorageBackend,
    body: AsyncIterable[bytes],
    hashers: Sequence[Hasher],
    check: UploadCheck | None,
    md5: hashlib._Hash,
) -> tuple[BlobReceipt, Mapping[str, str]]:
    """Stage, let the caller verify, then make durable; on any failure nothing stays."""
    try:
        staged = await backend.stage(body, hashers)
    except BackendFull as exc:
        raise StorageFull(str(exc)) from exc
    except BackendUnavailable as exc:
        raise StorageUnavailable(str(exc)) from exc
    try:
        checksums = check(staged.receipt, md5.digest()) if check is not None else {}
        await staged.commit()
    except BaseException as exc:
        await staged.discard()
        if isinstance(exc, BackendFull):
            raise StorageFull(str(exc)) from exc
        if isinstance(exc, BackendUnavailable):
            raise StorageUnavailable(str(exc)) from exc
        raise
    return staged.receipt, checksums
