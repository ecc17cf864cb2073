"""Multipart uploads: parts are blobs of their own; completion concatenates them into one.

Completing streams every part, in order, into a new staged blob, so the object is
content-addressed by the SHA-256 of its whole content like any other (identical
content is stored once, however it was uploaded) and a GET is one sequential read.
The cost is one extra read and write of the object at completion.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from s3facade.backends import BlobReceipt, ByteRange, Hasher
from s3facade.registry.core import RegistryCore
from s3facade.registry.errors import (
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
)
from s3facade.registry.events import EventType
from s3facade.registry.locks import SharedLockTable
from s3facade.registry.model import (
    CompletedPart,
    Lock,
    MultipartUpload,
    ObjectPart,
    ObjectSpec,
    ObjectVersion,
    Provenance,
    UploadPart,
    UploadsPage,
    WriteCondition,
)
from s3facade.registry.payloads import (
    MultipartUploadAborted,
    MultipartUploadCompleted,
    MultipartUploadCreated,
    PartUploaded,
)
from s3facade.registry.staging import stored_blob

MIN_PART_SIZE = 5 * 1024 * 1024  # every part but the last
MAX_PART_NUMBER = 10_000

# Verifies a part as put_object's check does (receipt, raw MD5 -> checksums to record).
PartCheck = Callable[[BlobReceipt, bytes], Mapping[str, str]]
# Verifies a completion: the assembled receipt and the parts used -> checksums to record.
CompletionCheck = Callable[[BlobReceipt, Sequence[UploadPart]], Mapping[str, str]]


class MultipartUploads:
    def __init__(self, core: RegistryCore) -> None:
        self._core = core
        self._locks = SharedLockTable()  # parts shared, complete/abort exclusive

    def _upload(
        self, bucket: str, key: str, upload_id: str, *, with_parts: bool = True
    ) -> MultipartUpload:
        self._core.bucket(bucket)
        upload = self._core.views.upload(upload_id, with_parts=with_parts)
        if upload is None or upload.bucket != bucket or upload.key != key:
            raise NoSuchUpload(upload_id)
        return upload

    def get(self, bucket: str, key: str, upload_id: str) -> MultipartUpload:
        """The upload with its parts (ListParts, Complete)."""
        return self._upload(bucket, key, upload_id)

    def list(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage:
        self._core.bucket(bucket)
        return self._core.views.list_uploads(
            bucket,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            upload_id_marker=upload_id_marker,
            max_uploads=max_uploads,
        )

    async def create(
        self,
        bucket: str,
        key: str,
        *,
        spec: ObjectSpec,
        provenance: Provenance,
        checksum_algorithm: str | None,
        checksum_type: str | None,
        lock: Lock | None = None,
    ) -> MultipartUpload:
        self._core.check_writable(bucket, key, spec, lock)
        # Time-ordered ids: ListMultipartUploads lists a key's uploads by initiation.
        upload_id = f"{time.time_ns():016x}" + secrets.token_hex(16)
        created = MultipartUploadCreated(
            **provenance.as_dict(),
            **spec.as_dict(),
            upload_id=upload_id,
            checksum_algorithm=checksum_algorithm,
            checksum_type=checksum_type,
            requested_lock=lock.as_dict() if lock is not None else None,
        )
        await self._core.log.append([created.event(bucket, key)])
        return self._upload(bucket, key, upload_id)

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        body: AsyncIterable[bytes],
        *,
        provenance: Provenance,
        hashers: Sequence[Hasher] = (),
        check: PartCheck | None = None,
        derived_from: Mapping[str, str] | None = None,
    ) -> UploadPart:
        self._upload(bucket, key, upload_id, with_parts=False)
        backend = self._core.backend_for(bucket)
        md5 = hashlib.md5()
        verify = None if check is None else (lambda receipt: check(receipt, md5.digest()))
        core = self._core
        blob = stored_blob(backend, body, [md5, *hashers], verify, core.digests, core.space)
        async with blob as stored:
            receipt, checksums = stored
            uploaded = PartUploaded(
                **provenance.as_dict(),
                upload_id=upload_id,
                part_number=number,
                size=receipt.size,
                sha256=receipt.sha256,
                etag=md5.hexdigest(),
                checksums=dict(checksums),
                backend_id=backend.backend_id,
                derived_from=None if derived_from is None else dict(derived_from),
            )
            async with self._locks[upload_id].shared():
                self._upload(bucket, key, upload_id, with_parts=False)  # not completed since
                await self._core.log.append([uploaded.event(bucket, key)])
        part = self._core.views.part(upload_id, number)
        assert part is not None  # just committed, and completion waits for the shared lock
        return part

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        source: ObjectVersion,
        byte_range: ByteRange | None,
        *,
        provenance: Provenance,
        hashers: Sequence[Hasher] = (),
        check: PartCheck | None = None,
        range_text: str = "",
    ) -> UploadPart:
        """A part copied from `source` (or its inclusive range): recorded as derived from it,
        like CopyObject, rather than as a read."""
        return await self.upload_part(
            bucket,
            key,
            upload_id,
            number,
            self._core.stream_bytes(source, byte_range),
            provenance=provenance,
            hashers=hashers,
            check=check,
            derived_from={**source.derivation(), "range": range_text},
        )

    async def complete(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart],
        *,
        provenance: Provenance,
        condition: WriteCondition,
        hashers: Sequence[Hasher] = (),
        check: CompletionCheck | None = None,
    ) -> ObjectVersion:
        async with self._locks[upload_id].exclusive():
            try:
                upload = self._upload(bucket, key, upload_id)
            except NoSuchUpload:  # a retry of a completion that happened (or a wrong id)
                done = await self.completed_into(bucket, key, upload_id)
                if done is None:
                    raise
                return done
            chosen = _chosen_parts(upload, parts)
            self._core.check_condition(bucket, key, condition)
            backend = self._core.backend_for(bucket)
            verify = None if check is None else (lambda receipt: check(receipt, chosen))
            registry = self._core
            body = self._concatenation(chosen)
            blob = stored_blob(backend, body, hashers, verify, registry.digests, registry.space)
            async with blob as (receipt, checksums):
                return await self._commit_completion(
                    bucket, key, upload, chosen, receipt, checksums, provenance, condition
                )

    async def parts_of(self, version: ObjectVersion) -> tuple[ObjectPart, ...]:
        """A multipart object's parts (none for a single-part one): sizes from the views,
        each part's checksums from the event that wrote the version (one point lookup)."""
        if not version.part_sizes:
            return ()
        log = self._core.log
        event = await log.run_query(lambda: log.store.event_at(version.seq))
        recorded = (event.data.get("part_checksums") if event is not None else None) or []
        return tuple(
            ObjectPart(number, size, recorded[number - 1] if number <= len(recorded) else {})
            for number, size in enumerate(version.part_sizes, start=1)
        )

    async def completed_into(self, bucket: str, key: str, upload_id: str) -> ObjectVersion | None:
        """The current object, if `upload_id` completed into it: a repeated
        CompleteMultipartUpload (an SDK retrying after a lost answer) gets the first
        answer again, as AWS gives it. One lookup of the event that wrote the current
        object, whatever the log holds (any caller may name any upload id)."""
        current = self._core.views.current(bucket, key)
        if current is None:
            return None
        log = self._core.log
        event = await log.run_query(lambda: log.store.event_at(current.seq))
        if event is None or event.type != EventType.UPLOAD_COMPLETED:
            return None
        return current if event.data.get("upload_id") == upload_id else None

    async def _commit_completion(
        self,
        bucket: str,
        key: str,
        upload: MultipartUpload,
        chosen: Sequence[UploadPart],
        receipt: BlobReceipt,
        checksums: Mapping[str, str],
        provenance: Provenance,
        condition: WriteCondition,
    ) -> ObjectVersion:
        backend = self._core.backend_for(bucket)
        upload_id = upload.upload_id
        md5s = b"".join(bytes.fromhex(part.etag) for part in chosen)
        completed = MultipartUploadCompleted(
            **provenance.as_dict(),
            **upload.spec.as_dict(),
            upload_id=upload_id,
            size=receipt.size,
            sha256=receipt.sha256,
            md5=None,  # never computed over the whole: the ETag is of the parts
            etag=f"{hashlib.md5(md5s).hexdigest()}-{len(chosen)}",
            checksums=dict(checksums),
            checksum_type=upload.checksum_type or "FULL_OBJECT",
            part_sizes=[part.size for part in chosen],
            part_checksums=(
                [dict(part.checksums) for part in chosen]
                if any(part.checksums for part in chosen)
                else None
            ),
            backend_id=backend.backend_id,
        )
        return await self._core.commit_write(
            bucket, key, completed, upload.spec, condition, upload.lock
        )

    async def _concatenation(self, parts: Sequence[UploadPart]) -> AsyncIterator[bytes]:
        for part in parts:
            async for block in self._core.backends[part.backend_id].open(part.sha256):
                yield block

    async def abort(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        provenance: Provenance,
        note: Mapping[str, Any] | None = None,
    ) -> None:
        async with self._locks[upload_id].exclusive():
            self._upload(bucket, key, upload_id, with_parts=False)
            aborted = MultipartUploadAborted(
                **provenance.as_dict(), **(note or {}), upload_id=upload_id
            )
            await self._core.log.append([aborted.event(bucket, key)])


def _chosen_parts(upload: MultipartUpload, parts: Sequence[CompletedPart]) -> list[UploadPart]:
    """The parts CompleteMultipartUpload names, checked as AWS checks them."""
    numbers = [part.number for part in parts]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise InvalidPartOrder(upload.upload_id)
    chosen: list[UploadPart] = []
    for named in parts:
        part = upload.parts.get(named.number)
        if part is None or named.etag != part.etag:
            raise InvalidPart(str(named.number))
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART_SIZE:
            raise EntityTooSmall(str(part.number), part.size)
    return chosen
