"""Domain errors. The protocol layer maps each to its S3 error code."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s3facade.registry.model import ObjectVersion


class RegistryError(Exception):
    """Base of the domain's refusals."""


class NoSuchBucket(RegistryError):
    pass


class InvalidBucketName(RegistryError):
    def __init__(self, name: str) -> None:
        super().__init__(f"invalid bucket name: {name!r}")
        self.name = name


class KeyTooLong(RegistryError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a key of {size} bytes is longer than {limit}")
        self.size, self.limit = size, limit


class BucketAlreadyExists(RegistryError):
    """The name is taken by another owner."""


class BucketAlreadyOwnedByYou(RegistryError):
    pass


class BucketNotEmpty(RegistryError):
    pass


class NoSuchKey(RegistryError):
    """No current object. `marker` is the delete marker that hides it, if one does."""

    def __init__(self, key: str, marker: ObjectVersion | None = None) -> None:
        super().__init__(key)
        self.marker = marker


class NoSuchVersion(RegistryError):
    pass


class DeleteMarkerFound(RegistryError):
    """A version id named a delete marker where an object was expected."""

    def __init__(self, marker: ObjectVersion) -> None:
        super().__init__(f"{marker.key} version {marker.version_id} is a delete marker")
        self.marker = marker


class ObjectLocked(RegistryError):
    """The version is under retention or legal hold: it may not be removed or replaced."""


class RetentionDenied(RegistryError):
    """Shortening or removing retention without the right to bypass governance."""


class ObjectLockNotEnabled(RegistryError):
    """Object Lock settings on a bucket created without Object Lock."""


class InvalidBucketState(RegistryError):
    """E.g. suspending versioning on a bucket with Object Lock."""


class PreconditionFailed(RegistryError):
    """A conditional write's condition did not hold when it was checked."""


class ConditionalRequestConflict(RegistryError):
    """The condition held when the upload began but a concurrent write changed the key."""


class StorageUnavailable(RegistryError):
    """The backend holding the bytes cannot serve now; the client may retry."""


class LogUnavailable(RegistryError):
    """The shared log (its PostgreSQL catalog or the store of its files) cannot record
    now: nothing of the request was recorded; the client may retry."""


class StaleDecision(LogUnavailable):
    """Another gateway changed the key or bucket between this gateway's check and its
    commit: decided again (registry.core.Core.decided) or, past that, retried by the client."""


class BytesCollected(LogUnavailable):
    """gc on another gateway of a shared log removed bytes this write names while it was in
    flight (registry.gc): nothing is recorded; the client retries with its body (SlowDown)."""


class StoredBytesDamaged(RegistryError):
    """A version's bytes are missing from their backend, are not a regular file there, or do
    not hash to the SHA-256 its event recorded: the store is damaged, retrying will not help
    (registry.integrity). `found`: the other digest, "missing", or what is there instead."""

    def __init__(
        self, bucket: str, key: str, version_id: str, backend_id: str, sha256: str, found: str
    ) -> None:
        what = f"bytes hash to {found}" if _is_digest(found) else found
        super().__init__(
            f"s3://{bucket}/{key} version {version_id}: blob {sha256} on backend "
            f"{backend_id!r} is damaged ({what})"
        )
        self.bucket = bucket
        self.key = key
        self.version_id = version_id
        self.backend_id = backend_id
        self.sha256 = sha256
        self.found = found


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class StorageFull(RegistryError):
    """No space left to store the bytes."""


class NoSuchUpload(RegistryError):
    pass


class InvalidPart(RegistryError):
    """A part named in a completion was never uploaded, or its ETag differs."""


class InvalidPartOrder(RegistryError):
    pass


class EntityTooSmall(RegistryError):
    """A part other than the last is under the minimum part size."""

    def __init__(self, part: str, size: int) -> None:
        super().__init__(f"part {part} is {size} bytes")
        self.part = part
        self.size = size


class LogInUse(RegistryError):
    """Another process holds the log (a running server): use its admin API instead."""


class CorruptLog(RegistryError):
    """An event cannot be applied to the views (the log was edited): run verify."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"event {seq} cannot be applied to the views: {reason}")
        self.seq = seq


class LogUntrusted(RegistryError):
    """The log cannot be trusted as it is: missing, shorter than its anchor, rewritten, or
    views that differ from it (registry.log_check, Registry.rebuild). The message says why
    and how to recover. Nothing that deletes bytes (gc) runs in this state."""
