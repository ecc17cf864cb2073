"""Bucket settings (versioning, Object Lock, lifecycle) and per-version settings
(retention, legal hold, tags): the part of the registry that changes settings rather than
bytes, over its core. The facade extends it, so callers keep one Registry API."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from s3facade.registry.core import RegistryCore
from s3facade.registry.errors import InvalidBucketState, ObjectLockNotEnabled
from s3facade.registry.lifecycle import parse_rules
from s3facade.registry.model import (
    DefaultRetention,
    LockMode,
    ObjectVersion,
    Provenance,
    Versioning,
    VersionsPage,
)
from s3facade.registry.payloads import (
    BucketLifecycleSet,
    BucketObjectLockConfigured,
    BucketTagsSet,
    BucketVersioningSet,
    ObjectLegalHoldSet,
    ObjectRetentionSet,
    ObjectTagsSet,
    Payload,
)
from s3facade.registry.retention import check_retention_change


class VersionSettings(RegistryCore):
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

    async def _bucket_setting(self, bucket: str, setting: Payload) -> None:
        async with self._bucket_locks[bucket].exclusive():
            self.bucket(bucket)
            await self._log.append([setting.event(bucket)])

    async def put_bucket_versioning(
        self, bucket: str, status: Versioning, provenance: Provenance
    ) -> None:
        if self.bucket(bucket).object_lock and status is not Versioning.ENABLED:
            raise InvalidBucketState("versioning cannot be suspended on an Object Lock bucket")
        setting = BucketVersioningSet(**provenance.as_dict(), status=status.value)
        await self._bucket_setting(bucket, setting)

    async def put_object_lock_configuration(
        self, bucket: str, default: DefaultRetention | None, provenance: Provenance
    ) -> None:
        """Set the default retention; enabling Object Lock needs versioning enabled."""
        state = self.bucket(bucket)
        if not state.object_lock and not state.versioned:
            raise InvalidBucketState("Object Lock needs versioning enabled on the bucket")
        rule = default.as_dict() if default is not None else None
        setting = BucketObjectLockConfigured(**provenance.as_dict(), default_retention=rule)
        await self._bucket_setting(bucket, setting)

    async def put_bucket_lifecycle(
        self, bucket: str, rules: Sequence[Mapping[str, Any]] | None, provenance: Provenance
    ) -> None:
        """Set (None: remove) the bucket's lifecycle rules; invalid rules raise
        InvalidLifecycle (registry.lifecycle) and change nothing."""
        records: list[Mapping[str, Any]] | None = None
        if rules is not None:
            records = [rule.as_dict() for rule in parse_rules(rules)]
        setting = BucketLifecycleSet(**provenance.as_dict(), rules=records)
        await self._bucket_setting(bucket, setting)

    async def put_bucket_tagging(
        self, bucket: str, tags: Mapping[str, str] | None, provenance: Provenance
    ) -> None:
        """Replace the bucket's tag set (None: remove it)."""
        setting = BucketTagsSet(**provenance.as_dict(), tags=None if tags is None else dict(tags))
        await self._bucket_setting(bucket, setting)

    def bucket_tags(self, bucket: str) -> dict[str, str] | None:
        self.bucket(bucket)
        return self.views.bucket_tags(bucket)

    async def _version_setting(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        setting: Callable[[str], Payload],
        check: Callable[[ObjectVersion], None] | None = None,
    ) -> ObjectVersion:
        """Record `setting(version id)` for the version (the current one unless named),
        once `check` allows it, atomically with the version's existence."""
        async with self._bucket_locks[bucket].shared(), self._key_locks.hold((bucket, key)):
            version = self.head_object(bucket, key, version_id)
            if check is not None:
                check(version)
            await self._log.append([setting(version.version_id).event(bucket, key)])
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
            lambda version: ObjectRetentionSet(
                **provenance.as_dict(),
                version_id=version,
                mode=mode.value if mode else None,
                retain_until=until.isoformat() if until else None,
                bypass_governance=bypass_governance,
            ),
            allowed,
        )

    async def put_object_legal_hold(
        self, bucket: str, key: str, version_id: str | None, on: bool, provenance: Provenance
    ) -> ObjectVersion:
        if not self.bucket(bucket).object_lock:
            raise ObjectLockNotEnabled(bucket)
        return await self._version_setting(
            bucket,
            key,
            version_id,
            lambda version: ObjectLegalHoldSet(
                **provenance.as_dict(), version_id=version, status=on
            ),
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
            bucket,
            key,
            version_id,
            lambda version: ObjectTagsSet(
                **provenance.as_dict(), version_id=version, tags=dict(tags)
            ),
        )
