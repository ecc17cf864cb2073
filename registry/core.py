"""The registry's core: what every part of it shares, and the write kernel.

The log, the views (the namespace derived from it), the backends, the locks, the clock and
the retention policies; looking up buckets and versions; and a write's checks, its version
id and lock, and its atomic commit. The facade (registry.registry.Registry) adds the object
and bucket operations on top, the settings (registry.settings) and the checks of the views
(registry.view_checks) are parts of it, and multipart uploads (registry.multipart) and gc
work on a core, so none of them imports the facade.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from s3facade.backends import BackendSet, BlobReceipt, ByteRange, StorageBackend
from s3facade.registry.clock import Clock
from s3facade.registry.errors import (
    ConditionalRequestConflict,
    DeleteMarkerFound,
    NoSuchBucket,
    NoSuchKey,
    NoSuchVersion,
    ObjectLocked,
    PreconditionFailed,
    StaleDecision,
)
from s3facade.registry.heads import HeadSigner
from s3facade.registry.integrity import IntegrityLedger, open_version
from s3facade.registry.locks import LockTable, SharedLockTable
from s3facade.registry.log import EventLog
from s3facade.registry.model import (
    NULL_VERSION,
    Bucket,
    Lock,
    ObjectSpec,
    ObjectVersion,
    WriteCondition,
)
from s3facade.registry.names import check_key
from s3facade.registry.payloads import Stored
from s3facade.registry.retention import RetentionPolicy, resolve_lock
from s3facade.registry.space import SpaceReserve
from s3facade.registry.view_checks import ViewChecks
from s3facade.registry.views import Views

_S = TypeVar("_S", bound=Stored)
_T = TypeVar("_T")

# How often a check-then-append is decided again after another gateway changed what it
# checked; past that the client gets SlowDown, and its SDK retries.
DECISION_ATTEMPTS = 5


async def decided(decide: Callable[[], Awaitable[_T]]) -> _T:
    """Run a check-then-append, again when another gateway of a shared log changed the
    key or bucket it checked before it committed (StaleDecision; the views have that
    change by then). A log of one gateway never refuses so."""
    for _ in range(DECISION_ATTEMPTS - 1):
        try:
            return await decide()
        except StaleDecision:
            continue
    return await decide()


UNCONDITIONAL = WriteCondition()

# Called once the bytes are staged, before they become visible: the protocol layer
# checks what the client declared (Content-MD5, checksums, payload hash) and returns
# the checksums to record. Raising refuses the upload; nothing is stored.
UploadCheck = Callable[[BlobReceipt, bytes], Mapping[str, str]]


class RegistryCore(ViewChecks):
    def __init__(
        self,
        log: EventLog,
        backends: BackendSet,
        views: Views,
        *,
        policies: Sequence[RetentionPolicy] = (),
        clock: Clock | None = None,
        views_ready: bool = True,
    ) -> None:
        self._log = log
        self._backends = backends
        self.policies = tuple(policies)
        # Retention and lifecycle decisions use this clock (tests move it; event times do not).
        self.clock = clock or Clock()
        self.views = views
        # False until the views caught up with the log (load_views): nothing is served then.
        self.views_ready = views_ready
        self.views_loading = 0  # events applied so far while loading (for /-/ready)
        self._comparing = asyncio.Lock()  # view comparisons build one fresh file at a time
        log.set_views(views)
        # Why the views may not match the log (a rebuild found a difference and was not
        # forced): nothing that deletes bytes runs until this is resolved.
        self.untrusted: str | None = None
        self.integrity = IntegrityLedger(log)  # damage found by reads and scrubs
        self.head_signer: HeadSigner | None = None  # signs the head on close (registry.heads)
        self._bucket_locks = SharedLockTable()
        self._key_locks = LockTable()
        self.digests = SharedLockTable()  # writes hold a digest shared; gc exclusively
        log.blob_held_since = self.digests.shared_since  # a shared log's gc (registry.log)

    @property
    def log(self) -> EventLog:
        return self._log

    @property
    def space(self) -> SpaceReserve | None:
        return self._log.space

    @property
    def backends(self) -> BackendSet:
        return self._backends

    def bucket(self, name: str) -> Bucket:
        bucket = self.views.bucket(name)
        if bucket is None:
            raise NoSuchBucket(name)
        return bucket

    def head_object(self, bucket: str, key: str, version_id: str | None = None) -> ObjectVersion:
        """The current object, or the named version (NoSuchKey / NoSuchVersion /
        DeleteMarkerFound as S3 tells them apart)."""
        self.bucket(bucket)
        if version_id is None:
            latest = self.views.latest(bucket, key)
            if latest is None or latest.delete_marker:
                raise NoSuchKey(key, latest)
            return latest
        version = self.views.version(bucket, key, version_id)
        if version is None:
            raise NoSuchVersion(version_id)
        if version.delete_marker:
            raise DeleteMarkerFound(version)
        return version

    def backend_for(self, bucket: str) -> StorageBackend:
        return self._backends.for_bucket(bucket)

    def check_writable(
        self, bucket_name: str, key: str, spec: ObjectSpec, lock: Lock | None
    ) -> None:
        """Refusals a write can get before its body is read (checked again at commit)."""
        check_key(key)
        bucket = self.bucket(bucket_name)
        resolve_lock(bucket, key, spec, lock, self.policies, self.clock())
        if not bucket.versioned:
            self.check_replaceable(bucket_name, key)

    def check_condition(self, bucket: str, key: str, condition: WriteCondition) -> None:
        if condition.is_unconditional:
            return
        current = self.views.current(bucket, key)
        if condition.must_not_exist and current is not None:
            raise PreconditionFailed(key)
        if condition.if_match is not None:
            if current is None:
                raise NoSuchKey(key)
            if condition.if_match not in ("*", current.etag):
                raise PreconditionFailed(key)
        if current is not None and condition.if_none_match == current.etag:
            raise PreconditionFailed(key)

    def check_replaceable(self, bucket: str, key: str) -> None:
        null = self.views.version(bucket, key, NULL_VERSION)
        if null is not None and null.protected(self.clock()):
            raise ObjectLocked(key)

    @staticmethod
    def new_version_id(bucket: Bucket) -> str:
        if not bucket.versioned:
            return NULL_VERSION
        # Time-ordered, so ids of one key sort like its history.
        return f"{time.time_ns():x}{secrets.token_hex(8)}"

    def settle_write(
        self, bucket_name: str, key: str, write: _S, spec: ObjectSpec, lock: Lock | None = None
    ) -> _S:
        """The write with its version id and the lock it gets; refuses to replace a
        protected "null" version. The caller holds the key (or writes alone)."""
        bucket = self.bucket(bucket_name)
        version_id = self.new_version_id(bucket)
        if version_id == NULL_VERSION:
            self.check_replaceable(bucket_name, key)
        resolved = resolve_lock(bucket, key, spec, lock, self.policies, self.clock())
        return replace(write, version_id=version_id, **resolved.as_dict())

    async def commit_write(
        self,
        bucket_name: str,
        key: str,
        write: Stored,
        spec: ObjectSpec,
        condition: WriteCondition,
        lock: Lock | None = None,
    ) -> ObjectVersion:
        """Append an object write atomically with its condition, its bucket's existence, its
        version id and the lock it gets. Refuses to replace a protected "null" version.

        Holds the bucket shared and the key exclusively only for the commit, never while
        bytes upload, so concurrent writes to different keys still share transactions.
        """

        async def decide() -> Stored:
            async with (
                self._bucket_locks[bucket_name].shared(),
                self._key_locks.hold((bucket_name, key)),
            ):
                self.bucket(bucket_name)
                try:
                    self.check_condition(bucket_name, key, condition)
                except PreconditionFailed:
                    # It held before the upload; a concurrent writer changed the key since.
                    raise ConditionalRequestConflict(key) from None
                settled = self.settle_write(bucket_name, key, write, spec, lock)
                await self._log.append([settled.event(bucket_name, key)])
                return settled

        settled = await decided(decide)
        return self.head_object(bucket_name, key, settled.version_id)

    def stream_bytes(
        self, version: ObjectVersion, byte_range: ByteRange | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The bytes unrecorded: for read_object and for copies (whose events name their
        source). A read of the whole blob is verified against the recorded SHA-256 and
        raises StoredBytesDamaged (recorded) instead of handing on its last block if they
        differ; see registry.integrity."""

        def still_named() -> bool:
            # Read at call time (rebuild() replaces the views); a "null" id is reused.
            now = self.views.version(version.bucket, version.key, version.version_id)
            return now is not None and (now.backend_id, now.sha256) == blob

        blob = (version.backend_id, version.sha256)

        backend = self._backends[version.backend_id]
        return open_version(self.integrity, backend, version, byte_range, still_named)
