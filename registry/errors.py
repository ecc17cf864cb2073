"""Domain errors. The protocol layer maps each to its S3 error code."""

from __future__ import annotations


class RegistryError(Exception):
    """Base of the domain's refusals."""


class NoSuchBucket(RegistryError):
    pass


class BucketAlreadyExists(RegistryError):
    """The name is taken by another owner."""


class BucketAlreadyOwnedByYou(RegistryError):
    pass


class BucketNotEmpty(RegistryError):
    pass


class NoSuchKey(RegistryError):
    pass


class PreconditionFailed(RegistryError):
    """A conditional write's condition did not hold when it was checked."""


class ConditionalRequestConflict(RegistryError):
    """The condition held when the upload began but a concurrent write changed the key."""


class StorageUnavailable(RegistryError):
    """The backend holding the bytes cannot serve now; the client may retry."""


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
