"""Bucket settings (versioning, Object Lock, lifecycle) and per-version settings
(retention, legal hold, tags): the part of the Registry that changes settings rather
than bytes. A mixin, so callers keep one Registry API."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from registry.clock import Clock
from registry.errors import InvalidBucketState, ObjectLockNotEnabled
from registry.events import Event, EventType
from registry.lifecycle import parse_rules
from registry.locks import LockTable, SharedLockTable
from registry.log import EventLog
from registry.model import (
    Bucket,
    DefaultRetention,
    LockMode,
    ObjectVersion,
    Provenance,
    Versioning,
    VersionsPage,
)
from registry.retention import check_retention_change
from registry.views import Views


class VersionSettings:
    views: Views
    clock: Clock
    _log: EventLog
    _bucket_locks: SharedLockTable
    _key_locks: LockTable

    if TYPE_CHECKING:

        def bucket(self, name: str) -> Bucket: ...

        def head_object(
            self, bucket: str, key: str, version_id: str | None = None
        ) -> ObjectVersion: ...

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
        self.bucket(bucket)
        return self.views.list_versions(
            bucket,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            version_id_marker=version_id_marker,
            max_keys=max_keys,
        )

    async def _bucket_setting(
        self, bucket: str, type_: EventType, provenance: Provenance, **data: Any
    ) -> None:
        async with self._bucket_locks[bucket].exclusive():
            self.bucket(bucket)
            event = Event(type_, bucket, None, {**provenance.as_dict(), **data})
            await self._log.append([event])

    async def put_bucket_versioning(
        self, bucket: str, status: Versioning, provenance: Provenance
    ) -> None:
        if self.bucket(bucket).object_lock and status is not Versioning.ENABLED:
            raise InvalidBucketState("versioning cannot be suspended on an Object Lock bucket")
        await self._bucket_setting(
            bucket, EventType.BUCKET_VERSIONING_SET, provenance, status=status.value
        )

    async def put_object_lock_configuration(
        self, bucket: str, default: DefaultRetention | None, provenance: Provenance
    ) -> None:
        """Set the default retention; enabling Object Lock needs versioning enabled."""
        state = self.bucket(bucket)
        if not state.object_lock and not state.versioned:
            raise InvalidBucketState("Object Lock needs versioning enabled on the bucket")
        rule = default.as_dict() if default is not None else None
        await self._bucket_setting(
            bucket, EventType.BUCKET_LOCK_CONFIGURED, provenance, default_retention=rule
        )

    async def put_bucket_lifecycle(
        self, bucket: str, rules: Sequence[Mapping[str, Any]] | None, provenance: Provenance
    ) -> None:
        """Set (None: remove) the bucket's lifecycle rules; invalid rules raise
        InvalidLifecycle (registry.lifecycle) and change nothing."""
        records = None if rules is None else [rule.as_dict() for rule in parse_rules(rules)]
        await self._bucket_setting(
            bucket, EventType.BUCKET_LIFECYCLE_SET, provenance, rules=records
        )

    async def _version_setting(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        type_: EventType,
        provenance: Provenance,
        check: Callable[[ObjectVersion], None] | None = None,
        **data: Any,
    ) -> ObjectVersion:
        async with self._bucket_locks[bucket].shared(), self._key_locks.hold((bucket, key)):
            version = self.head_object(bucket, key, version_id)
            if check is not None:
                check(version)
            payload = {**provenance.as_dict(), "version_id": version.version_id, **data}
            await self._log.append([Event(type_, bucket, key, payload)])
            return self.head_object(bucket, key, version.version_id)

    async def put_object_retention(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        mode: LockMode | None,
        until: datetime | None,
        provenance: Provenance,
        *,
        bypass_governance: bool = False,
    ) -> ObjectVersion:
        if not self.bucket(bucket).object_lock:
            raise ObjectLockNotEnabled(bucket)

        def allowed(version: ObjectVersion) -> None:
            now = self.clock()
            check_retention_change(version, mode, until, now, bypass_governance=bypass_governance)

        return await self._version_setting(
            bucket,
            key,
            version_id,
            EventType.RETENTION_SET,
            provenance,
            allowed,
            mode=mode.value if mode else None,
            retain_until=until.isoformat() if until else None,
            bypass_governance=bypass_governance,
        )

    async def put_object_legal_hold(
        self, bucket: str, key: str, version_id: str | None, on: bool, provenance: Provenance
    ) -> ObjectVersion:
        if not self.bucket(bucket).object_lock:
            raise ObjectLockNotEnabled(bucket)
        return await self._version_setting(
            bucket, key, version_id, EventType.LEGAL_HOLD_SET, provenance, status=on
        )

    async def put_object_tagging(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        tags: Mapping[str, str],
        provenance: Provenance,
    ) -> ObjectVersion:
        return await self._version_setting(
            bucket, key, version_id, EventType.TAGS_SET, provenance, tags=dict(tags)
        )
