"""Staging bytes into a backend: verify what the client declared, then make them durable."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Mapping, Sequence

from backends import BackendFull, BackendUnavailable, BlobReceipt, Hasher, StorageBackend
from registry.errors import StorageFull, StorageUnavailable

# Called once the bytes are staged, before they become visible; returns the checksums to
# record. Raising refuses the upload and nothing is stored.
Verify = Callable[[BlobReceipt], Mapping[str, str]]


async def store_blob(
    backend: StorageBackend,
    body: AsyncIterable[bytes],
    hashers: Sequence[Hasher],
    verify: Verify | None,
) -> tuple[BlobReceipt, Mapping[str, str]]:
    """Stage, verify, commit; on any failure nothing stays staged."""
    try:
        staged = await backend.stage(body, hashers)
    except BackendFull as exc:
        raise StorageFull(str(exc)) from exc
    except BackendUnavailable as exc:
        raise StorageUnavailable(str(exc)) from exc
    try:
        checksums = verify(staged.receipt) if verify is not None else {}
        await staged.commit()
    except BaseException as exc:
        await staged.discard()
        if isinstance(exc, BackendFull):
            raise StorageFull(str(exc)) from exc
        if isinstance(exc, BackendUnavailable):
            raise StorageUnavailable(str(exc)) from exc
        raise
    return staged.receipt, checksums
