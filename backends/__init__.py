"""Bytes by digest: the storage protocol, its implementations, and lookup by backend id."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from fnmatch import fnmatchcase

from s3facade.backends.base import (
    BackendError,
    BackendFull,
    BackendHealth,
    BackendUnavailable,
    BlobDamaged,
    BlobNotFound,
    BlobReceipt,
    ByteRange,
    Hasher,
    StagedBlob,
    StorageBackend,
)

__all__ = [
    "BackendError",
    "BackendFull",
    "BackendHealth",
    "BackendSet",
    "BackendUnavailable",
    "BlobDamaged",
    "BlobNotFound",
    "BlobReceipt",
    "ByteRange",
    "Hasher",
    "StagedBlob",
    "StorageBackend",
]


class BackendSet(Mapping[str, StorageBackend]):
    """The configured backends by id, and placement: which one receives a bucket's new bytes.

    `placement` is an ordered list of (bucket-name glob, backend id): the first pattern
    that matches the bucket name wins (`*`, `?`, `[...]` as in fnmatch, case-sensitive);
    buckets no pattern matches go to `default`. Placement only decides where new bytes
    go: every version records the backend that holds its bytes, so changing the rules
    never strands what is already stored.
    """

    def __init__(
        self,
        backends: Mapping[str, StorageBackend],
        default: str,
        placement: Sequence[tuple[str, str]] = (),
    ) -> None:
        for backend_id in (default, *(target for _, target in placement)):
            if backend_id not in backends:
                raise ValueError(f"placement names backend {backend_id!r}, which is not configured")
        self._backends = dict(backends)
        self.default = default
        self.placement = tuple(placement)

    def __getitem__(self, backend_id: str) -> StorageBackend:
        return self._backends[backend_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._backends)

    def __len__(self) -> int:
        return len(self._backends)

    def placement_of(self, bucket: str) -> str:
        """The id of the backend that receives new bytes for `bucket`."""
        for pattern, backend_id in self.placement:
            if fnmatchcase(bucket, pattern):
                return backend_id
        return self.default

    def for_bucket(self, bucket: str) -> StorageBackend:
        """The backend that receives new bytes for `bucket` (placement)."""
        return self._backends[self.placement_of(bucket)]
