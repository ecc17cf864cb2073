"""The write side of the upstream backend: stage() streaming into parts, and the staged
blobs that commit() publishes under their digest (see backends.upstream for the design)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from s3facade.backends.base import BackendError, BlobReceipt, Hasher, StagedBlob
from s3facade.backends.signing import UNSIGNED_PAYLOAD

if TYPE_CHECKING:
    from s3facade.backends.upstream import UpstreamCAS

__all__ = ["BLOCK_SIZE", "Upload"]

logger = logging.getLogger("s3facade.backends.upstream")

BLOCK_SIZE = 1 << 20  # bytes gathered before one hashing hop to a worker thread
_PARTS_PER_DOUBLING = 1000  # parts double in size after every 1000 (S3 allows 10000)


def _feed(hashers: Sequence[Hasher], block: bytes) -> None:
    for hasher in hashers:
        hasher.update(block)


def _sha256_of(blocks: Sequence[bytes]) -> str:
    sha = hashlib.sha256()
    for block in blocks:
        sha.update(block)
    return sha.hexdigest()


def _forget(fut: asyncio.Future[Any]) -> None:
    """Drop a future we will not await, without 'exception never retrieved' noise."""
    if not fut.done():
        fut.cancel()
    elif not fut.cancelled():
        fut.exception()


class Upload:
    """One stage() in progress: the part being filled and the parts on their way up."""

    def __init__(self, cas: UpstreamCAS, hashers: Sequence[Hasher]) -> None:
        self._cas = cas
        self._config = cas.config
        self._sha = hashlib.sha256()
        self._feed: tuple[Hasher, ...] = (self._sha, *hashers)
        self._size = 0
        self._gathered: list[bytes] = []  # chunks not yet hashed, < BLOCK_SIZE in total
        self._gathered_bytes = 0
        self._part: list[bytes] = []  # hashed blocks of the part being filled
        self._part_bytes = 0
        self._hashing: asyncio.Future[None] | None = None  # at most one block at a time
        self._key: str | None = None
        self._creating: asyncio.Future[str] | None = None
        self._upload_id: str | None = None
        self._parts = 0
        self._etags: dict[int, str] = {}
        self._inflight: set[asyncio.Task[tuple[int, str]]] = set()
        self._completed = False

    async def feed(self, chunk: bytes) -> None:
        self._gathered.append(chunk)
        self._gathered_bytes += len(chunk)
        if self._gathered_bytes >= BLOCK_SIZE:
            await self._take(self._drain_gathered())

    async def finish(self) -> StagedBlob:
        tail = self._drain_gathered()
        if tail:
            await self._take(tail)
        if self._hashing is not None:
            await self._hashing
            self._hashing = None
        receipt = BlobReceipt(self._size, self._sha.hexdigest())
        if self._creating is None:  # one part at most: its digest is known, keep it here
            blocks, self._part = self._part, []
            return _MemoryStaged(self._cas, blocks, receipt)
        if self._part:
            await self._submit()
        await self._reap(everything=True)
        assert self._key is not None and self._upload_id is not None
        etags = [self._etags[n] for n in range(1, self._parts + 1)]
        await self._cas.complete(self._key, self._upload_id, etags, self._size)
        self._completed = True
        return _StagingStaged(self._cas, self._key, receipt)

    def abandon(self) -> None:
        """On any failure: stop uploading; abort the multipart upload in the background."""
        if self._hashing is not None:
            _forget(self._hashing)
        pending = list(self._inflight)
        for task in pending:
            task.cancel()
        if self._key is None or self._creating is None:
            pass  # nothing went up
        elif self._completed:  # cancelled between completing and returning
            self._cas.spawn(self._cas.delete_quietly(self._key))
        else:  # the upload may exist upstream even if its creation's answer is still due
            self._cas.spawn(self._cas.abort(self._key, self._upload_id or self._creating, pending))
        self._part.clear()
        self._gathered.clear()

    def _drain_gathered(self) -> bytes:
        block = b"".join(self._gathered)
        self._gathered.clear()
        self._gathered_bytes = 0
        return block

    def _part_size(self) -> int:
        return self._config.part_size << (self._parts // _PARTS_PER_DOUBLING)

    async def _take(self, block: bytes) -> None:
        # A full part is sent only once more bytes arrive, so a blob of exactly one part
        # stays on the single-PUT path.
        if self._part_bytes >= self._part_size():
            await self._submit()
        if self._hashing is not None:
            await self._hashing  # backpressure, and surfaces a hasher's error
        loop = asyncio.get_running_loop()
        self._hashing = loop.run_in_executor(None, functools.partial(_feed, self._feed, block))
        self._part.append(block)
        self._part_bytes += len(block)
        self._size += len(block)

    async def _submit(self) -> None:
        if self._creating is None:
            self._key = self._cas.new_staging_key()
            create = self._cas.client.create_multipart_upload(self._key)
            self._creating = asyncio.ensure_future(create)
            # Shielded: if we are cancelled, abandon() still learns the id to abort.
            self._upload_id = await asyncio.shield(self._creating)
        await self._reap(everything=False)
        while len(self._inflight) >= self._config.upload_concurrency:
            await self._reap(everything=False, wait=True)
        self._parts += 1
        blocks, self._part, self._part_bytes = self._part, [], 0
        task = asyncio.get_running_loop().create_task(self._upload_part(self._parts, blocks))
        self._inflight.add(task)

    async def _upload_part(self, number: int, blocks: list[bytes]) -> tuple[int, str]:
        assert self._key is not None and self._upload_id is not None
        sha = await asyncio.to_thread(_sha256_of, blocks) if self._config.signs_parts else None
        etag = await self._cas.client.upload_part(
            self._key, self._upload_id, number, blocks, sha or UNSIGNED_PAYLOAD
        )
        return number, etag

    async def _reap(self, *, everything: bool, wait: bool = False) -> None:
        """Collect finished part uploads (raising the first failure)."""
        if not self._inflight:
            return
        if everything:
            done, _ = await asyncio.wait(self._inflight)
        elif wait:
            done, _ = await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
        else:
            done = {task for task in self._inflight if task.done()}
        for task in done:
            self._inflight.discard(task)
            number, etag = task.result()
            self._etags[number] = etag


class _StagedBase:
    """commit() twice returns the first outcome; discard() after commit() or discard() is
    a no-op; commit() after discard() raises BackendError."""

    def __init__(self, cas: UpstreamCAS, receipt: BlobReceipt) -> None:
        self._cas = cas
        self._receipt = receipt
        self._outcome: bool | None = None
        self._discarded = False
        self._lock = asyncio.Lock()

    @property
    def receipt(self) -> BlobReceipt:
        return self._receipt

    async def commit(self) -> bool:
        async with self._lock:
            if self._outcome is not None:
                return self._outcome
            if self._discarded:
                raise BackendError("staged blob was already discarded")
            key = self._cas.blob_key(self._receipt.sha256)
            head = await self._cas.client.head_object(key)
            size = self._receipt.size
            if head is not None and head.size != size:  # damaged: replace it
                logger.warning("blob %s had size %d, expected %d: replacing", key, head.size, size)
            fresh = head is None or head.size != size
            if fresh:
                await self._store(key)
            self._outcome = fresh
            self._release()
            return fresh

    async def discard(self) -> None:
        async with self._lock:
            if self._outcome is None and not self._discarded:
                self._discarded = True
                self._release()

    async def _store(self, key: str) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


class _MemoryStaged(_StagedBase):
    """At most one part, in memory: commit() PUTs it to its final key."""

    def __init__(self, cas: UpstreamCAS, blocks: list[bytes], receipt: BlobReceipt) -> None:
        super().__init__(cas, receipt)
        self._blocks = blocks

    async def _store(self, key: str) -> None:
        await self._cas.client.put_object(key, self._blocks, self._receipt.sha256)

    def _release(self) -> None:
        self._blocks = []

    def __repr__(self) -> str:
        return f"<_MemoryStaged {self._receipt.sha256} size={self._receipt.size}>"


class _StagingStaged(_StagedBase):
    """A complete staging object: commit() copies it to its final key server-side."""

    def __init__(self, cas: UpstreamCAS, staging_key: str, receipt: BlobReceipt) -> None:
        super().__init__(cas, receipt)
        self.staging_key = staging_key

    async def _store(self, key: str) -> None:
        await self._cas.copy(self.staging_key, key, self._receipt.size)

    def _release(self) -> None:
        # In the background: the client's answer need not wait for the staging DELETE.
        self._cas.spawn(self._cas.delete_quietly(self.staging_key))

    def __repr__(self) -> str:
        return f"<_StagingStaged {self._receipt.sha256} at {self.staging_key}>"
