"""Imported versions: existing data (another S3 bucket's objects, local files) recorded as
object versions with where they came from, as `ObjectImported` events.

An imported version is a version like any other: its payload is the `Stored` one every
write has (size, SHA-256, MD5 and ETag, content type, metadata, backend), committed through
the same `commit_write` (the bucket must exist; version id, bucket default retention and
retention policies, protected "null" versions as for a PUT), so listing, GET, provenance,
verify, rebuild, gc and retention treat it as a write. Its ETag is the MD5 of its content,
as for a PUT (the source's own ETag, maybe of parts, is kept in `source_etag`).

The bytes arrive two ways:
* `import_stream`: through the backend's normal staged put (hashed as they go), for local
  files and for sources a backend cannot copy itself from;
* `import_placed`: already hashed by the caller, placed under their digest by a `place`
  callback (a server-side copy in the upstream store), checked by size, then recorded.
Either way the digest is held shared from before the bytes are stored until the event is
committed, so gc cannot take them in between; a failure before the commit records nothing.

Re-running an import skips what the log shows was imported already (`ImportedBefore`): the
same source (and endpoint) with the same ETag and version id, or for a file (which has no
ETag) the same path, size and mtime, into the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from s3facade.backends import BlobReceipt, StorageBackend
from s3facade.registry.core import UNCONDITIONAL, RegistryCore
from s3facade.registry.errors import RegistryError
from s3facade.registry.events import EventType
from s3facade.registry.log import EventLog
from s3facade.registry.model import ObjectSpec, ObjectVersion, Provenance
from s3facade.registry.payloads import ObjectImported, payload_of
from s3facade.registry.staging import stored_blob

Transfer = Literal["server-side-copy", "already-stored", "through-gateway"]
Identity = tuple[str, str, str | None, str | None, str | None, int | None, str | None]
# Called once the bytes are staged (receipt, MD5 hex), before they are stored: raising
# refuses them (e.g. they do not match the source's ETag), and nothing is recorded.
CheckBytes = Callable[[BlobReceipt, str], None]
# Puts the source's bytes under the digest in the backend; returns how.
Place = Callable[[StorageBackend], Awaitable[Transfer]]


class ImportRefused(RegistryError):
    """The bytes are not the source's (a changed source, a wrong size): nothing recorded."""


@dataclass(frozen=True)
class ImportOrigin:
    """Where an imported version came from."""

    source: str  # s3://bucket/key, or the file's absolute path
    modified: datetime  # Last-Modified or mtime, naive UTC
    endpoint: str | None = None  # the S3 endpoint; None for a file
    etag: str | None = None  # unquoted; None for a file
    version_id: str | None = None  # the source version, if its bucket is versioned

    def identity(self, key: str, size: int) -> Identity:
        """What a re-run compares: a file has no ETag, so its size and mtime stand in."""
        if self.etag is not None:
            return (key, self.source, self.endpoint, self.etag, self.version_id, None, None)
        return (key, self.source, self.endpoint, None, None, size, _iso(self.modified))


class ImportedBefore:
    """The imports the log holds into one bucket (keys under a prefix): what a re-run skips.
    One pass over the log's ObjectImported events when the import starts."""

    def __init__(self) -> None:
        self._seen: set[Identity] = set()

    @classmethod
    def load(cls, log: EventLog, bucket: str, prefix: str = "") -> ImportedBefore:
        known = cls()
        for event in log.store.of_type(EventType.OBJECT_IMPORTED):
            key = event.key or ""
            if event.bucket != bucket or not key.startswith(prefix):
                continue
            payload = payload_of(event)
            assert isinstance(payload, ObjectImported)
            origin = ImportOrigin(
                source=payload.source,
                modified=datetime.fromisoformat(payload.source_modified),
                endpoint=payload.source_endpoint,
                etag=payload.source_etag,
                version_id=payload.source_version_id,
            )
            known.add(key, origin, payload.size)
        return known

    def add(self, key: str, origin: ImportOrigin, size: int) -> None:
        self._seen.add(origin.identity(key, size))

    def has(self, key: str, origin: ImportOrigin, size: int) -> bool:
        return origin.identity(key, size) in self._seen

    def __len__(self) -> int:
        return len(self._seen)


async def import_stream(
    core: RegistryCore,
    bucket: str,
    key: str,
    body: AsyncIterable[bytes],
    *,
    origin: ImportOrigin,
    spec: ObjectSpec,
    provenance: Provenance,
    check: CheckBytes | None = None,
) -> ObjectVersion:
    """Store the bytes by the backend's normal put path and record them as imported."""
    core.check_writable(bucket, key, spec, None)  # before reading a byte
    backend = core.backend_for(bucket)
    md5 = hashlib.md5()

    def verify(receipt: BlobReceipt) -> dict[str, str]:
        if check is not None:
            check(receipt, md5.hexdigest())
        return {}

    async with stored_blob(backend, body, [md5], verify, core.digests, core.space) as stored:
        receipt, _ = stored
        imported = _imported(
            spec, provenance, receipt.size, receipt.sha256, md5.hexdigest(),
            backend, origin, "through-gateway",
        )  # fmt: skip
        return await core.commit_write(bucket, key, imported, spec, UNCONDITIONAL)


async def import_placed(
    core: RegistryCore,
    bucket: str,
    key: str,
    place: Place,
    *,
    sha256: str,
    md5: str,
    size: int,
    origin: ImportOrigin,
    spec: ObjectSpec,
    provenance: Provenance,
) -> ObjectVersion:
    """Record bytes the caller hashed and `place` puts under their digest in the bucket's
    backend (or finds there): checked by size before the event is appended."""
    core.check_writable(bucket, key, spec, None)
    backend = core.backend_for(bucket)
    if core.space is not None:
        core.space.check_store()
    async with core.digests[sha256].shared():
        transfer = await place(backend)
        stored = await backend.size(sha256)
        if stored != size:
            raise ImportRefused(f"{origin.source}: the store holds {stored} bytes, not {size}")
        imported = _imported(spec, provenance, size, sha256, md5, backend, origin, transfer)
        return await core.commit_write(bucket, key, imported, spec, UNCONDITIONAL)


def _imported(
    spec: ObjectSpec,
    provenance: Provenance,
    size: int,
    sha256: str,
    md5: str,
    backend: StorageBackend,
    origin: ImportOrigin,
    transfer: Transfer,
) -> ObjectImported:
    return ObjectImported(
        **provenance.as_dict(),
        **spec.as_dict(),
        size=size,
        sha256=sha256,
        md5=md5,
        etag=md5,
        checksums={},
        backend_id=backend.backend_id,
        source=origin.source,
        source_endpoint=origin.endpoint,
        source_etag=origin.etag,
        source_version_id=origin.version_id,
        source_modified=_iso(origin.modified),
        transfer=transfer,
    )


def _iso(time: datetime) -> str:
    """Naive UTC ISO 8601 (an aware time is converted)."""
    if time.tzinfo is not None:
        time = time.astimezone(UTC).replace(tzinfo=None)
    return time.isoformat()
