"""The registry: the domain API that the server and the CLI call, usable without HTTP.

Open one on a data dir, create buckets, put, get, list and delete objects; every
state change goes through the event log and only then into the views.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Mapping,
    Sequence,
)
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import duckdb

from s3facade.backends import (
    BackendSet,
    BlobReceipt,
    ByteRange,
    Hasher,
    StorageBackend,
)
from s3facade.registry.access.bucket_settings import AccessSettings
from s3facade.registry.anchor import default_anchor_path
from s3facade.registry.clock import Clock
from s3facade.registry.core import UNCONDITIONAL, UploadCheck, decided
from s3facade.registry.errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    LogInUse,
    LogUntrusted,
    NoSuchKey,
    ObjectLocked,
)
from s3facade.registry.heads import HeadSigner, HeadTrust
from s3facade.registry.lake_store import LakeSettings
from s3facade.registry.log import CHECKPOINT_WAL_BYTES, MAX_BATCH, EventLog
from s3facade.registry.log_check import open_checked_log, open_shared_log
from s3facade.registry.model import (
    NULL_VERSION,
    Bucket,
    DeleteOutcome,
    ListingPage,
    Lock,
    ObjectSpec,
    ObjectVersion,
    Provenance,
    WriteCondition,
)
from s3facade.registry.multipart import MultipartUploads
from s3facade.registry.names import check_bucket_name
from s3facade.registry.payloads import (
    BucketCreated,
    BucketDeleted,
    DeleteMarkerPlaced,
    ObjectDeleted,
    ObjectRead,
    ObjectWritten,
)
from s3facade.registry.retention import RetentionPolicy
from s3facade.registry.space import SpaceReserve, local_roots
from s3facade.registry.staging import stored_blob
from s3facade.registry.views import Views

logger = logging.getLogger(__name__)

LOG_FILE = "registry.duckdb"


class Registry(AccessSettings):
    """The facade: what the server, the CLI and library users call."""

    @functools.cached_property
    def uploads(self) -> MultipartUploads:
        return MultipartUploads(self)

    @classmethod
    def open(
        cls,
        data_dir: Path,
        backends: BackendSet,
        *,
        clock: Clock | None = None,
        read_only: bool = False,
        max_batch: int = MAX_BATCH,
        policies: Sequence[RetentionPolicy] = (),
        anchor_path: Path | None = None,
        accept_log_loss: bool = False,
        head_trust: HeadTrust | None = None,
        checkpoint_wal_bytes: int = CHECKPOINT_WAL_BYTES,
        space_reserve_bytes: int = 0,
        load_views: bool = True,
        shared_log: LakeSettings | None = None,
    ) -> Registry:
        """`read_only` for offline tools: the log file must exist and is not changed.
        Otherwise the log is checked against its anchor (and, with `head_trust`, its newest
        signed head) first (registry.log_check: raises LogUntrusted), anchored from then
        on and its heads signed; `accept_log_loss` continues after a loss. The views catch
        up with the log here, or (`load_views=False`, a server that answers /-/health first)
        when `load_views()` is awaited. `shared_log`: the events go to (and come from) a
        lake other gateways share (registry.lake_store) instead of the data dir's file;
        the anchor is then the lake's own order, and the data dir holds the views."""
        if read_only:
            log = open_log_read_only(data_dir)
            try:
                views = Views.in_data_dir(data_dir)
                views.catch_up(log)  # a cache: bringing it up to date changes no evidence
            except BaseException:
                log.close_sync()
                raise
            return cls(log, backends, views, policies=policies, clock=clock)
        if shared_log is not None:
            log = open_shared_log(data_dir / LOG_FILE, shared_log, head_trust, max_batch)
        else:
            log = open_checked_log(
                data_dir / LOG_FILE,
                anchor_path or default_anchor_path(data_dir),
                backends,
                accept_loss=accept_log_loss,
                trust=head_trust,
                max_batch=max_batch,
                checkpoint_wal_bytes=checkpoint_wal_bytes,
            )
        if space_reserve_bytes > 0:
            stores = local_roots(backends.values())
            log.space = SpaceReserve(data_dir, space_reserve_bytes, stores)
        views = Views.in_data_dir(data_dir)
        if load_views:
            views.catch_up(log)
        registry = cls(log, backends, views, policies=policies, clock=clock, views_ready=load_views)
        if head_trust is not None:
            registry.head_signer = HeadSigner(log, head_trust.key, head_trust.interval)
        return registry

    async def load_views(self, *, stop: asyncio.Event | None = None) -> int:
        """Bring the views up to the log's head on the writer thread (no commit interleaves)
        and start serving from them; `stop` ends it early (between batches), not ready.
        Returns how many events were applied."""
        log, views = self._log, self.views
        stopping = threading.Event()

        def progress(count: int) -> None:
            self.views_loading += count

        watch = asyncio.create_task(stop.wait()) if stop is not None else None
        if watch is not None:
            watch.add_done_callback(lambda _: stopping.set())
        try:
            applied = await log.on_writer(
                lambda: views.catch_up(log, progress=progress, stop=stopping)
            )
        finally:
            if watch is not None:
                watch.cancel()
        self.views_ready = not stopping.is_set()
        return applied

    async def close(self) -> None:
        if self.head_signer is not None:
            try:
                await self.head_signer.sign_now()  # so the newest events are covered too
            except Exception:
                logger.exception("signing the log head at close failed")
        await self._log.close()
        self.views.close()

    def close_offline(self) -> None:
        """For offline tools that never started an event loop."""
        self._log.close_sync()
        self.views.close()

    # -- buckets ---------------------------------------------------------------------------

    def list_buckets(self, owner: str | None = None) -> list[Bucket]:
        return [b for b in self.views.buckets() if owner is None or b.owner == owner]

    async def create_bucket(
        self, name: str, region: str, provenance: Provenance, *, object_lock: bool = False
    ) -> Bucket:
        check_bucket_name(name)

        async def decide() -> None:
            async with self._bucket_locks[name].exclusive():
                existing = self.views.bucket(name)
                if existing is not None:
                    if existing.owner == provenance.principal:
                        raise BucketAlreadyOwnedByYou(name)
                    raise BucketAlreadyExists(name)
                created = BucketCreated(
                    **provenance.as_dict(), region=region, object_lock=object_lock
                )
                await self._log.append([created.event(name)])

        await decided(decide)
        return self.bucket(name)

    async def delete_bucket(self, name: str, provenance: Provenance) -> None:
        async def decide() -> None:
            async with self._bucket_locks[name].exclusive():
                self.bucket(name)
                if self.views.object_count(name):
                    raise BucketNotEmpty(name)
                await self._log.append([BucketDeleted(**provenance.as_dict()).event(name)])

        await decided(decide)

    # -- objects ---------------------------------------------------------------------------

    def read_object(
        self,
        version: ObjectVersion,
        provenance: Provenance,
        byte_range: ByteRange | None = None,
        *,
        method: str = "GET",
        status: int | None = None,
        **read: Any,
    ) -> AsyncGenerator[bytes, None]:
        """The version's bytes, or the inclusive range, recorded as read by `provenance` once
        the reader is done with them (how many it took, whether all: a reader that stops
        early closes the iterator). Whole reads are verified (see `stream_bytes`)."""
        blocks = self.stream_bytes(version, byte_range)
        ranged = None if byte_range is None else f"bytes={byte_range.first}-{byte_range.last}"
        answered = status if status is not None else (200 if byte_range is None else 206)

        async def recorded() -> AsyncGenerator[bytes, None]:
            # Bytes that could not be read at all (the read raises before its first block)
            # are no read: the caller answers with an error instead.
            sent, started, completed = 0, False, False
            try:
                async for block in blocks:
                    started = True
                    yield block
                    sent += len(block)
                completed = True
            finally:
                await blocks.aclose()
                if started or completed:
                    self.record_read(
                        version, provenance, method=method, range=ranged, bytes_sent=sent,
                        status=answered, completed=completed, **read,
                    )  # fmt: skip

        return recorded()

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
        return self.views.list_page(
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
        lock: Lock | None = None,
    ) -> ObjectVersion:
        self.check_writable(bucket, key, spec, lock)  # fail before reading the body
        self.check_condition(bucket, key, condition)
        backend = self.backend_for(bucket)
        md5 = hashlib.md5()
        verify = None if check is None else (lambda receipt: check(receipt, md5.digest()))
        hashing = [md5, *hashers]
        blob = stored_blob(backend, body, hashing, verify, self.digests, self.space)
        async with blob as stored:
            receipt, checksums = stored
            written = object_written(spec, provenance, receipt, md5.hexdigest(), checksums, backend)
            return await self.commit_write(bucket, key, written, spec, condition, lock)

    async def copy_object(
        self,
        source: ObjectVersion,
        bucket: str,
        key: str,
        *,
        spec: ObjectSpec,
        provenance: Provenance,
        condition: WriteCondition = UNCONDITIONAL,
        lock: Lock | None = None,
    ) -> ObjectVersion:
        """A new version with the source's bytes: no bytes move when both share a backend
        (content addressing), else they stream across. Recorded as derived from the source."""
        self.check_writable(bucket, key, spec, lock)
        self.check_condition(bucket, key, condition)
        backend = self.backend_for(bucket)
        async with AsyncExitStack() as held:
            if backend.backend_id != source.backend_id:
                source_bytes = self.stream_bytes(source)
                blob = stored_blob(backend, source_bytes, (), None, self.digests, self.space)
                await held.enter_async_context(blob)
            else:
                await held.enter_async_context(self.digests[source.sha256].shared())
                # Held now, gc cannot take the bytes; but was the source deleted (and its
                # bytes collected) while we waited for the lock?
                if self.views.version(source.bucket, source.key, source.version_id) is None:
                    raise NoSuchKey(source.key)
            return await self._commit_copy(
                source, bucket, key, backend, spec, provenance, condition, lock
            )

    async def _commit_copy(
        self,
        source: ObjectVersion,
        bucket: str,
        key: str,
        backend: StorageBackend,
        spec: ObjectSpec,
        provenance: Provenance,
        condition: WriteCondition,
        lock: Lock | None,
    ) -> ObjectVersion:
        written = ObjectWritten(
            **provenance.as_dict(),
            **spec.as_dict(),
            size=source.size,
            sha256=source.sha256,
            md5=source.md5,
            etag=source.etag,
            checksums=dict(source.checksums),
            checksum_type=source.checksum_type,
            part_sizes=list(source.part_sizes),
            backend_id=backend.backend_id,
            derived_from=source.derivation(),
        )
        return await self.commit_write(bucket, key, written, spec, condition, lock)

    def record_read(self, version: ObjectVersion, provenance: Provenance, **read: Any) -> None:
        """Record who fetched which version (GET/HEAD/presigned GET, a library read): the
        ObjectRead fields (method, range, bytes sent, status, whether the reader took it
        all). Never waits for a disk flush."""
        payload = ObjectRead(
            **provenance.as_dict(),
            version_id=version.version_id,
            sha256=version.sha256,
            etag=version.etag,
            **read,
        )
        self._log.record([payload.event(version.bucket, version.key)])

    async def delete_object(
        self,
        bucket_name: str,
        key: str,
        provenance: Provenance,
        condition: WriteCondition = UNCONDITIONAL,
        *,
        version_id: str | None = None,
        bypass_governance: bool = False,
        note: Mapping[str, Any] | None = None,
    ) -> DeleteOutcome:
        """S3's DeleteObject: with a version id, remove that version (if no lock forbids
        it); without, place a delete marker (versioned buckets) or remove the "null"
        version. Deleting what is not there is not an error."""
        # On a shared log, a version another gateway wrote a moment ago must not be
        # "not there": deleting it would answer 204 and append nothing to refuse.
        await self._log.sync()
        self.bucket(bucket_name)

        async def decide() -> DeleteOutcome:
            async with (
                self._bucket_locks[bucket_name].shared(),
                self._key_locks.hold((bucket_name, key)),
            ):
                bucket = self.bucket(bucket_name)
                self.check_condition(bucket_name, key, condition)
                who = {**provenance.as_dict(), **(note or {})}  # note: why (e.g. a lifecycle rule)
                if version_id is not None:
                    version = self.views.version(bucket_name, key, version_id)
                    if version is None:
                        return DeleteOutcome(version_id, delete_marker=False)
                    if not version.removable(self.clock(), bypass_governance=bypass_governance):
                        raise ObjectLocked(key)
                    deleted = ObjectDeleted(
                        **who, version_id=version_id, bypass_governance=bypass_governance
                    )
                    await self._log.append([deleted.event(bucket_name, key)])
                    return DeleteOutcome(version_id, delete_marker=version.delete_marker)
                if bucket.versioning is None:
                    if self.views.version(bucket_name, key, NULL_VERSION) is None:
                        return DeleteOutcome(None, delete_marker=False)
                    self.check_replaceable(bucket_name, key)
                    deleted = ObjectDeleted(**who, version_id=NULL_VERSION)
                    await self._log.append([deleted.event(bucket_name, key)])
                    return DeleteOutcome(None, delete_marker=False)
                marker_id = self.new_version_id(bucket)
                if marker_id == NULL_VERSION:  # suspended: the marker replaces the null version
                    self.check_replaceable(bucket_name, key)
                marker = DeleteMarkerPlaced(**who, version_id=marker_id)
                await self._log.append([marker.event(bucket_name, key)])
                return DeleteOutcome(marker_id, delete_marker=True)

        return await decided(decide)


def object_written(
    spec: ObjectSpec,
    provenance: Provenance,
    receipt: BlobReceipt,
    md5_hex: str,
    checksums: Mapping[str, str],
    backend: StorageBackend,
) -> ObjectWritten:
    """What a PUT whose bytes are stored writes, before `settle_write` gives it its version
    and lock (bench/load_versions.py builds its events with this too)."""
    return ObjectWritten(
        **provenance.as_dict(),
        **spec.as_dict(),
        size=receipt.size,
        sha256=receipt.sha256,
        md5=md5_hex,
        etag=md5_hex,
        checksums=dict(checksums),
        backend_id=backend.backend_id,
    )


def open_log_read_only(data_dir: Path) -> EventLog:
    """The bare log of a stopped server (FileNotFoundError, LogInUse, CorruptLog)."""
    if not (data_dir / LOG_FILE).exists():
        raise FileNotFoundError(data_dir / LOG_FILE)
    try:
        return EventLog(data_dir / LOG_FILE, read_only=True)
    except duckdb.IOException as exc:  # DuckDB: one process holds a database file
        raise LogInUse(str(exc)) from exc
    except duckdb.Error as exc:
        raise LogUntrusted(f"the log {data_dir / LOG_FILE} cannot be opened: {exc}") from exc
