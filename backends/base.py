"""The narrow storage interface: bytes by SHA-256 digest, nothing about S3.

A write is two-phase so the layer above can verify what arrived (Content-MD5,
checksums, signatures) before the bytes become visible under their digest:
`stage()` streams into a private place and reports size and SHA-256, then the
caller either `commit()`s (durable and addressable) or `discard()`s.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class BackendError(Exception):
    """Base of every error a backend raises."""


class BlobNotFound(BackendError):
    def __init__(self, digest: str) -> None:
        super().__init__(f"no blob with digest {digest}")
        self.digest = digest


class BackendUnavailable(BackendError):
    """The store cannot serve now (disk gone, upstream down); the client may retry."""


class BlobDamaged(BackendError):
    """The blob's own entry in the store is not a regular file (a planted symlink, a
    directory, a device) or a shard directory leading to it is not a directory. The store
    is damaged there: retrying will not help, so this is not BackendUnavailable."""

    def __init__(self, digest: str, found: str) -> None:
        super().__init__(f"blob {digest}: {found}")
        self.digest = digest
        self.found = found


class BackendFull(BackendError):
    """No space left for the bytes."""


class InvalidDigest(BackendError):
    """A digest that is not 64 lowercase hex characters (it could escape the root)."""


class Hasher(Protocol):
    """Anything fed every byte of a staged stream (hashlib objects and checksum adapters)."""

    def update(self, data: bytes, /) -> None: ...


@dataclass(frozen=True)
class BlobReceipt:
    size: int
    sha256: str  # lowercase hex


@dataclass(frozen=True)
class ByteRange:
    """Inclusive byte range [first, last], already resolved against the blob size."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class BackendHealth:
    backend_id: str
    healthy: bool
    detail: dict[str, object] = field(default_factory=dict)


class StagedBlob(Protocol):
    @property
    def receipt(self) -> BlobReceipt: ...

    async def commit(self) -> bool:
        """Make the bytes durable under their digest. True if newly stored, False if the
        content was already there (a duplicate: nothing rewritten)."""
        ...

    async def discard(self) -> None: ...


@runtime_checkable
class StorageBackend(Protocol):
    @property
    def backend_id(self) -> str: ...

    async def stage(
        self, chunks: AsyncIterable[bytes], hashers: Sequence[Hasher] = ()
    ) -> StagedBlob:
        """Consume the stream into a private staging place. Every byte is also fed to each
        of `hashers` (off the event loop). Raises BackendFull / BackendUnavailable; on any
        error (including one raised by `chunks`) nothing is left staged."""
        ...

    async def put(self, chunks: AsyncIterable[bytes]) -> BlobReceipt:
        """stage() then commit()."""
        ...

    def open(self, digest: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        """Stream the blob's bytes (or the inclusive range). Raises BlobNotFound."""
        ...

    async def size(self, digest: str) -> int | None:
        """The blob's size, or None if absent."""
        ...

    async def delete(self, digest: str) -> bool:
        """Remove the blob; False if it was absent."""
        ...

    async def health(self) -> BackendHealth: ...


def check_digest(digest: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidDigest(digest)
    return digest
