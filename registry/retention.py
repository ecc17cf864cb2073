"""Retention: which lock a new version gets, and the rules for changing one later.

A new version's lock comes from, in order: the request (x-amz-object-lock-*), a
configured retention policy for its artifact class, the bucket's Object Lock default.
What set it is recorded in the write event (`retention_source`, `retention_policy`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from s3facade.registry.errors import ObjectLockNotEnabled, RetentionDenied
from s3facade.registry.model import Bucket, Lock, LockMode, ObjectSpec, ObjectVersion


@dataclass(frozen=True)
class RetentionPolicy:
    """An artifact class from the config file: which objects, and how long they are kept.

    Matches by bucket-name pattern (fnmatch), key prefix and tags (all must match)."""

    name: str
    bucket: str = "*"
    prefix: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    lock_mode: LockMode | None = None
    lock_days: int | None = None
    expire_days: int | None = None  # applied by the lifecycle sweeper

    def matches(self, bucket: str, key: str, tags: Mapping[str, str]) -> bool:
        return (
            fnmatch.fnmatchcase(bucket, self.bucket)
            and key.startswith(self.prefix)
            and all(tags.get(k) == v for k, v in self.tags.items())
        )

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> RetentionPolicy:
        mode = entry.get("lock_mode")
        return cls(
            name=str(entry["name"]),
            bucket=str(entry.get("bucket", "*")),
            prefix=str(entry.get("prefix", "")),
            tags=dict(entry.get("tags", {})),
            lock_mode=LockMode(mode.upper()) if mode else None,
            lock_days=entry.get("lock_days"),
            expire_days=entry.get("expire_days"),
        )


def matching_policy(
    policies: Sequence[RetentionPolicy], bucket: str, key: str, tags: Mapping[str, str]
) -> RetentionPolicy | None:
    return next((p for p in policies if p.matches(bucket, key, tags)), None)


def resolve_lock(
    bucket: Bucket,
    key: str,
    spec: ObjectSpec,
    requested: Lock | None,
    policies: Sequence[RetentionPolicy],
    now: datetime,
) -> Lock:
    """The lock a new version gets (see the module docstring for the order)."""
    policy = matching_policy(policies, bucket.name, key, spec.tags)
    name = policy.name if policy is not None else None
    if requested is not None and (requested.mode is not None or requested.legal_hold):
        if not bucket.object_lock:
            raise ObjectLockNotEnabled(bucket.name)
        return Lock(requested.mode, requested.retain_until, requested.legal_hold, "request", name)
    if policy is not None and policy.lock_mode is not None and policy.lock_days is not None:
        until = now + timedelta(days=policy.lock_days)
        return Lock(policy.lock_mode, until, False, f"policy:{policy.name}", name)
    if bucket.object_lock and bucket.default_retention is not None:
        default = bucket.default_retention
        return Lock(default.mode, default.until(now), False, "bucket-default", name)
    return Lock(policy=name)


def check_retention_change(
    version: ObjectVersion,
    mode: LockMode | None,
    until: datetime | None,
    now: datetime,
    *,
    bypass_governance: bool,
) -> None:
    """PutObjectRetention's rules: extending a mode is always allowed; shortening, removing
    or turning GOVERNANCE into COMPLIANCE only with the bypass; COMPLIANCE never changes
    before it expires except to extend it."""
    if version.retain_until is None or version.retain_until <= now:
        return
    keeps = until is not None and until >= version.retain_until
    if version.lock_mode is LockMode.COMPLIANCE:
        if mode is LockMode.COMPLIANCE and keeps:
            return
        raise RetentionDenied(version.key)
    # GOVERNANCE kept or extended is always allowed; turned into COMPLIANCE (or shortened,
    # or removed) only with the bypass, as AWS requires s3:BypassGovernanceRetention.
    if keeps and mode is LockMode.GOVERNANCE:
        return
    if not bypass_governance:
        raise RetentionDenied(version.key)
