"""Staging bytes into a backend: verify what the client declared, then make them durable.

`stored_blob` keeps the blob's digest held (shared) from the moment its bytes become
durable until the caller's event that references them has committed; garbage
collection takes the same digest exclusively, so it can never remove bytes that a
write in flight is about to reference. (gc on another gateway of a shared log cannot see
this lock; registry.log refuses a write whose bytes it may have removed since the digest
was taken.)
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from s3facade.backends import BackendFull, BackendUnavailable, BlobReceipt, Hasher, StorageBackend
from s3facade.registry.errors import StorageFull, StorageUnavailable
from s3facade.registry.locks import SharedLockTable
from s3facade.registry.space import SpaceReserve

# Called once the bytes are staged, before they become visible; returns the checksums to
# record. Raising refuses the upload and nothing is stored.
Verify = Callable[[BlobReceipt], Mapping[str, str]]


@asynccontextmanager
async def stored_blob(
    backend: StorageBackend,
    body: AsyncIterable[bytes],
    hashers: Sequence[Hasher],
    verify: Verify | None,
    digests: SharedLockTable,
    space: SpaceReserve | None = None,
) -> AsyncIterator[tuple[BlobReceipt, Mapping[str, str]]]:
    """Stage, verify, commit; on any failure nothing stays staged. The body of the
    `async with` (which appends the referencing event) runs with the digest held.
    StorageFull before anything is read if the disk is too full (registry.space)."""
    if space is not None:
        space.check_store()
    try:
        staged = await backend.stage(body, hashers)
    except BackendFull as exc:
        raise StorageFull(str(exc)) from exc
    except BackendUnavailable as exc:
        raise StorageUnavailable(str(exc)) from exc
    try:
        checksums = verify(staged.receipt) if verify is not None else {}
    except BaseException:
        await staged.discard()
        raise
    async with digests[staged.receipt.sha256].shared():
        try:
            await staged.commit()
        except BaseException as exc:
            await staged.discard()
            if isinstance(exc, BackendFull):
                raise StorageFull(str(exc)) from exc
            if isinstance(exc, BackendUnavailable):
                raise StorageUnavailable(str(exc)) from exc
            raise
        yield staged.receipt, checksums
