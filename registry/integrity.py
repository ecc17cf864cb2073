"""Integrity of stored bytes: verified whole-object reads, and the record of damage found.

A read of a version's whole blob (no range, or a range or part that covers all of it) is
hashed while it streams and compared with the SHA-256 the version's event recorded. So
that a mismatch can still stop the response, the last block is held back: it is handed on
only once every byte has been hashed and the digest matched. On a mismatch the stream
raises StoredBytesDamaged instead, and the protocol layer cuts the response off, so the
client sees a truncated body, never a complete one. (A blob of one block is thus checked
before any byte of it is sent.) Ranged reads of part of a blob cannot be checked: only the
whole has a recorded digest; they are passed through as they come.

Damage is what retrying cannot fix: bytes that hash to another digest, a blob missing from
its backend while a version still names it, an entry that is not a regular file
(`backends.BlobDamaged`). Each damaged (backend, digest) is recorded once per process in a
BlobDamaged event (principal "s3facade:integrity"; the views ignore it) and kept in memory
(`IntegrityLedger`) for /-/ready and the metrics until a later whole read or scrub finds
the blob intact again. Finding more damage on the same blob is not recorded again.

Hashing never holds the event loop for long: blocks of HASH_INLINE_LIMIT or more are hashed
in a worker thread (hashlib releases the GIL), one at a time, so the order is kept while the
previous block goes out to the client.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from s3facade.backends import (
    BackendUnavailable,
    BlobDamaged,
    BlobNotFound,
    ByteRange,
    StorageBackend,
)
from s3facade.registry import payloads
from s3facade.registry.errors import NoSuchKey, StorageUnavailable, StoredBytesDamaged
from s3facade.registry.event_store import BlobId
from s3facade.registry.model import ObjectVersion, Provenance

if TYPE_CHECKING:
    from s3facade.registry.log import EventLog

logger = logging.getLogger(__name__)

INTEGRITY_PRINCIPAL = "s3facade:integrity"
INTEGRITY_USER_AGENT = "s3facade-integrity/1"
HASH_INLINE_LIMIT = 64 * 1024  # smaller blocks cost less to hash than a thread hop
MISSING = "missing"
RECENT = 10  # damage entries /-/ready shows


@dataclass(frozen=True)
class Damage:
    backend_id: str
    sha256: str
    found: str  # the other digest, "missing", "not a regular file: ...", "more than N bytes"
    detected_by: str  # "read" or "scrub"
    bucket: str | None = None  # the version whose read found it, if a read did
    key: str | None = None
    version_id: str | None = None
    detected_at: str = ""  # ISO 8601, UTC

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class IntegrityLedger:
    """Damage known to this process, recorded in the log once per blob, and what the last
    scrub pass found (for /-/ready and /-/metrics)."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._known: dict[BlobId, Damage] = {}  # insertion order: oldest first
        self.detections = {"read": 0, "scrub": 0}  # recorded by this process
        self.scrub_passes = 0
        self.last_scrub: dict[str, Any] | None = None

    def known(self, backend_id: str, sha256: str) -> Damage | None:
        return self._known.get((backend_id, sha256))

    @property
    def known_count(self) -> int:
        return len(self._known)

    async def record(self, damage: Damage) -> bool:
        """Append a BlobDamaged event unless this blob's damage is known already; True if
        appended. A failed append is logged (the damage is still reported to the caller's
        client) and tried again on the next detection."""
        blob = (damage.backend_id, damage.sha256)
        if blob in self._known:
            return False
        self._known[blob] = damage  # before awaiting: concurrent readers record it once
        who = Provenance(INTEGRITY_PRINCIPAL, "", INTEGRITY_USER_AGENT, _request_id())
        try:
            await self._log.append(
                [payloads.BlobDamaged(**who.as_dict(), **damage.as_dict()).event()]
            )
        except Exception as exc:
            logger.error("could not record damage of blob %s: %s", damage.sha256, exc)
            self._known.pop(blob, None)
            return False
        self.detections[damage.detected_by] = self.detections.get(damage.detected_by, 0) + 1
        return True

    def intact(self, backend_id: str, sha256: str) -> None:
        """A whole read or a scrub just verified the blob: forget earlier damage (repaired)."""
        if self._known.pop((backend_id, sha256), None) is not None:
            logger.warning("blob %s on backend %r verifies again: repaired", sha256, backend_id)

    def summary(self) -> dict[str, Any]:
        recent = list(self._known.values())[-RECENT:]
        return {
            "count": len(self._known),
            "detections": dict(self.detections),
            "recent": [damage.as_dict() for damage in reversed(recent)],
        }


class StreamDigest:
    """SHA-256 of a stream fed block by block, big blocks hashed in a worker thread, at most
    one in flight (feed() first waits for the previous one, so the order holds)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._pending: asyncio.Future[None] | None = None
        self.size = 0

    async def feed(self, block: bytes) -> None:
        await self._settle()
        self.size += len(block)
        if len(block) < HASH_INLINE_LIMIT:
            self._sha.update(block)
        else:
            loop = asyncio.get_running_loop()
            self._pending = loop.run_in_executor(None, self._sha.update, block)

    async def hexdigest(self) -> str:
        await self._settle()
        return self._sha.hexdigest()

    async def _settle(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending


def open_version(
    ledger: IntegrityLedger,
    backend: StorageBackend,
    version: ObjectVersion,
    byte_range: ByteRange | None,
    still_named: Callable[[], bool],
) -> AsyncGenerator[bytes, None]:
    """The version's bytes (or the inclusive range) from `backend`, verified when the read
    covers the whole blob. Errors, raised while iterating: StoredBytesDamaged (recorded),
    StorageUnavailable (the store cannot serve now), NoSuchKey (`still_named()` says the
    version was deleted, and its bytes collected, after the caller looked it up)."""
    whole = byte_range is None or (byte_range.first == 0 and byte_range.last == version.size - 1)
    blocks = backend.open(version.sha256, None if whole else byte_range)
    return _read(ledger, blocks, version, whole, still_named)


async def _read(
    ledger: IntegrityLedger,
    blocks: AsyncIterator[bytes],
    version: ObjectVersion,
    whole: bool,
    still_named: Callable[[], bool],
) -> AsyncGenerator[bytes, None]:
    async def damaged(found: str) -> StoredBytesDamaged:
        damage = Damage(
            version.backend_id,
            version.sha256,
            found,
            "read",
            version.bucket,
            version.key,
            version.version_id,
            _now(),
        )
        await ledger.record(damage)
        return StoredBytesDamaged(
            version.bucket,
            version.key,
            version.version_id,
            version.backend_id,
            version.sha256,
            found,
        )

    digest = StreamDigest() if whole else None
    held: bytes | None = None  # the last block so far: it goes out only once all is verified
    try:
        async for block in blocks:
            if digest is None:
                yield block
                continue
            if digest.size + len(block) > version.size:
                raise await damaged(f"more than {version.size} bytes")
            await digest.feed(block)  # hashes in a thread while `held` goes out
            if held is not None:
                yield held
            held = block
    except BlobNotFound:
        if not still_named():  # deleted and collected since the lookup: not damage
            raise NoSuchKey(version.key) from None
        raise await damaged(MISSING) from None
    except BlobDamaged as exc:
        raise await damaged(exc.found) from None
    except BackendUnavailable as exc:
        raise StorageUnavailable(str(exc)) from exc
    if digest is None:
        return
    found = await digest.hexdigest()
    if found != version.sha256:
        raise await damaged(found)
    ledger.intact(version.backend_id, version.sha256)
    if held is not None:
        yield held


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _request_id() -> str:
    return secrets.token_hex(8).upper()
