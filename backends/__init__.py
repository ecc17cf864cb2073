"""Bytes by digest: the storage protocol, its implementations, and lookup by backend id."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from backends.base import (
    BackendError,
    BackendFull,
    BackendHealth,
    BackendUnavailable,
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
    "BlobNotFound",
    "BlobReceipt",
    "ByteRange",
    "Hasher",
    "StagedBlob",
    "StorageBackend",
]


class BackendSet(Mapping[str, StorageBackend]):
    """The configured backends by id; `default` receives buckets no placement rule names."""

    def __init__(self, backends: Mapping[str, StorageBackend], default: str) -> None:
        if default not in backends:
            raise ValueError(f"default backend {default!r} is not configured")
        self._backends = dict(backends)
        self.default = default

    def __getitem__(self, backend_id: str) -> StorageBackend:
        return self._backends[backend_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._backends)

    def __len__(self) -> int:
        return len(self._backends)

    def for_bucket(self, bucket: str) -> StorageBackend:
        """The backend that receives new bytes for `bucket` (placement)."""
        return self._backends[self.default]
