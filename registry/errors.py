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
