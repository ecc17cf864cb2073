"""Scrub: re-hash every live blob, slowly and in the background, to find damage before a
reader does.

A pass snapshots the live blobs (`registry.gc.live_blobs`: every blob a version, current
or noncurrent, or an unfinished upload's part uses) and checks them one at a time, block
by block: hashed in a worker thread (registry.integrity.StreamDigest), paced by sleeping
so that reads never run ahead of `mib_per_second`. The event loop is never held: requests
are served throughout. What a check can find:

- bytes that hash to another digest, an entry that is not a regular file, or a blob
  missing while a version still names it: damage, recorded like damage a read finds
  (BlobDamaged, detected_by "scrub", once per blob per process; `IntegrityLedger`).
  A blob missing because gc collected it after the snapshot is not damage: blobs found
  missing are looked at again at the end of the pass, each with its digest held shared
  (which gc needs exclusively to delete), and count only if something still uses them;
- a backend that cannot serve now (upstream down): a problem, reported, not damage.

A finished pass appends one ScrubPassCompleted event (blobs and bytes checked, damage,
duration) by the principal "s3facade:integrity". A pass stopped by shutdown appends
nothing more (the damage it found is in the log already). One pass runs at a time.

Schedule (`Scrubber.run_periodically`): a pass starts at most once per interval, counted
from the start of the last completed pass the log records, so a restart neither repeats
a pass nor postpones one forever; a log with no pass yet counts from its first event. A
pass already due when the server starts begins STARTUP_DELAY seconds after start (or one
interval, if shorter), not amid start-up traffic. A fresh server's first pass comes one
interval after its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from s3facade.backends import BackendError, BlobDamaged, BlobNotFound, StorageBackend
from s3facade.registry.event_store import BlobId
from s3facade.registry.events import EventType
from s3facade.registry.integrity import (
    INTEGRITY_PRINCIPAL,
    MISSING,
    Damage,
    StreamDigest,
)
from s3facade.registry.model import Provenance
from s3facade.registry.payloads import ScrubPassCompleted

if TYPE_CHECKING:
    from s3facade.registry.core import RegistryCore
    from s3facade.registry.log import EventLog

logger = logging.getLogger(__name__)

SCRUB_USER_AGENT = "s3facade-scrub/1"
STARTUP_DELAY = 60.0
MiB = 1 << 20
MAX_LISTED = 100  # damaged blobs named in one ScrubPassCompleted event (the count is exact)


class ScrubBusy(Exception):
    """A pass is running already."""


@dataclass
class ScrubReport:
    trigger: str
    started: datetime  # UTC
    blobs: int  # live when the pass began
    blobs_checked: int = 0
    bytes_checked: int = 0
    damaged: list[Damage] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)  # could not be checked now
    duration_seconds: float = 0.0
    stopped_early: bool = False
    event_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "started": _iso(self.started),
            "blobs": self.blobs,
            "blobs_checked": self.blobs_checked,
            "bytes_checked": self.bytes_checked,
            "damaged_count": len(self.damaged),
            "damaged": [_named(damage) for damage in self.damaged],
            "problems": list(self.problems),
            "duration_seconds": round(self.duration_seconds, 3),
            "stopped_early": self.stopped_early,
            "event_seq": self.event_seq,
        }


class Scrubber:
    """Runs scrub passes over one registry at a paced read rate, one pass at a time."""

    def __init__(self, registry: RegistryCore, mib_per_second: float) -> None:
        if not mib_per_second > 0:
            raise ValueError(f"scrub_mib_per_second must be positive, not {mib_per_second}")
        self._registry = registry
        self._bytes_per_second = mib_per_second * MiB
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self.last_started: datetime | None = None  # of the last completed pass

    def summary(self) -> dict[str, Any]:
        return {"running": self._lock.locked(), "last_pass": self._registry.integrity.last_scrub}

    def stop(self) -> None:
        """End the pass in flight at its next block, and the background loop."""
        self._stopping.set()

    async def run_pass(self, *, trigger: str = "admin") -> ScrubReport:
        """One whole pass now; raises ScrubBusy if one is running."""
        if self._lock.locked():
            raise ScrubBusy("a scrub pass is running; try again when it has finished")
        async with self._lock:
            return await self._pass(trigger)

    async def run_periodically(self, interval: float) -> None:
        """The server's background scrub (see the module docstring), until stop(). A failed
        pass is logged and tried again one interval after it started; serving goes on."""
        log = self._registry.log
        try:
            recorded = await log.run_query(lambda: _last_pass_start(log))
        except Exception as exc:  # no schedule to keep: count from now
            logger.warning("scrub: cannot read the last pass from the log: %s", exc)
            recorded = None
        anchor = recorded or _utc_now()
        not_before = time.monotonic() + min(interval, STARTUP_DELAY)  # not during start-up
        while not self._stopping.is_set():
            wait = self._due_in(interval, anchor, not_before)
            if wait > 0:
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=wait)
                    return
                except TimeoutError:
                    continue  # look again: an admin pass may have moved the due time
            async with self._lock:  # waits for an admin pass, then looks again
                if self._due_in(interval, anchor, not_before) > 0:
                    continue
                anchor = _utc_now()  # a failed pass is retried one interval later
                try:
                    await self._pass("background")
                except Exception:
                    logger.exception("background scrub pass failed")

    def _due_in(self, interval: float, anchor: datetime, not_before: float) -> float:
        """Seconds until the next background pass is due."""
        last = max(anchor, self.last_started) if self.last_started else anchor
        due = (last + timedelta(seconds=interval) - _utc_now()).total_seconds()
        return max(due, not_before - time.monotonic(), 0.0)

    async def _pass(self, trigger: str) -> ScrubReport:
        registry = self._registry
        started, clock = _utc_now(), time.monotonic()
        report = ScrubReport(trigger, started, 0)
        pace = _Pace(self._bytes_per_second, self._stopping)
        missing: list[BlobId] = []  # confirmed at the end: gc may have collected them since
        for backend_id, digest, _size in registry.views.live_blobs():
            report.blobs += 1
            if self._stopping.is_set():
                report.stopped_early = True
                break
            found = await self._check(backend_id, digest, pace, report)
            if found == MISSING:
                missing.append((backend_id, digest))
            elif found == digest:
                registry.integrity.intact(backend_id, digest)
            elif found is not None:
                await self._damaged(report, backend_id, digest, found)
        if report.stopped_early:
            report.duration_seconds = time.monotonic() - clock
            return report
        for backend_id, digest in await self._still_missing(missing, report):
            await self._damaged(report, backend_id, digest, MISSING)
        report.duration_seconds = time.monotonic() - clock
        report.event_seq = await self._record(report)
        self.last_started = started
        registry.integrity.scrub_passes += 1
        registry.integrity.last_scrub = report.as_dict()
        if report.damaged or report.problems:
            logger.warning(
                "scrub: %d blob(s) checked, %d damaged, %d could not be checked",
                report.blobs_checked,
                len(report.damaged),
                len(report.problems),
            )
        return report

    async def _damaged(self, report: ScrubReport, backend_id: str, digest: str, found: str) -> None:
        damage = Damage(backend_id, digest, found, "scrub", detected_at=_iso(_utc_now()))
        report.damaged.append(damage)
        logger.error("scrub: blob %s on backend %r is damaged: %s", digest, backend_id, found)
        await self._registry.integrity.record(damage)

    async def _still_missing(self, missing: list[BlobId], report: ScrubReport) -> list[BlobId]:
        """The blobs found missing that a version or part still uses, and that are still
        missing while their digest is held: gc deletes only unused blobs, and never while
        the digest is held shared, so those are damage, not collected garbage."""
        registry = self._registry
        confirmed = []
        for backend_id, digest in missing:
            async with registry.digests[digest].shared():
                blob = (backend_id, digest)
                if not registry.views.blob_in_use(backend_id, digest):
                    continue  # deleted, and its bytes collected, during the pass
                try:
                    size = await registry.backends[backend_id].size(digest)
                except BackendError as exc:
                    report.problems.append(_problem(backend_id, digest, str(exc)))
                    continue
                if size is None:
                    confirmed.append(blob)
        return confirmed

    async def _check(
        self, backend_id: str, digest: str, pace: _Pace, report: ScrubReport
    ) -> str | None:
        """The digest the blob's bytes hash to, MISSING, what is there instead of a file,
        or None if it could not be checked (a problem, or the pass was stopped)."""
        backend = self._registry.backends.get(backend_id)
        if backend is None:
            report.problems.append(_problem(backend_id, digest, "backend not configured"))
            return None
        try:
            found = await _rehash(backend, digest, pace, report)
        except BlobNotFound:
            found = MISSING
        except BlobDamaged as exc:
            found = exc.found
        except BackendError as exc:
            report.problems.append(_problem(backend_id, digest, str(exc)))
            return None
        if found is not None:
            report.blobs_checked += 1
        return found

    async def _record(self, report: ScrubReport) -> int:
        who = Provenance(INTEGRITY_PRINCIPAL, "", SCRUB_USER_AGENT, _request_id())
        completed = ScrubPassCompleted(
            **who.as_dict(),
            trigger=report.trigger,
            started=_iso(report.started),
            blobs=report.blobs,
            blobs_checked=report.blobs_checked,
            bytes=report.bytes_checked,
            damaged_count=len(report.damaged),
            damaged=[_named(damage) for damage in report.damaged[:MAX_LISTED]],
            problems_count=len(report.problems),
            duration_seconds=round(report.duration_seconds, 3),
        )
        [committed] = await self._registry.log.append([completed.event()])
        return committed.seq


class _Pace:
    """Sleeps so that bytes read never run ahead of the rate (at most one block early)."""

    def __init__(self, bytes_per_second: float, stop: asyncio.Event) -> None:
        self._rate = bytes_per_second
        self._stop = stop
        self._due = time.monotonic()

    async def spent(self, size: int) -> bool:
        """Account for `size` bytes read; False once the pass should stop."""
        now = time.monotonic()
        self._due = max(self._due, now) + size / self._rate
        if self._due > now:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self._due - now)
        return not self._stop.is_set()


async def _rehash(
    backend: StorageBackend, digest: str, pace: _Pace, report: ScrubReport
) -> str | None:
    """The SHA-256 of the blob's bytes, or None if the pass was stopped midway."""
    hashed = StreamDigest()
    blocks = backend.open(digest)
    try:
        async for block in blocks:
            await hashed.feed(block)
            report.bytes_checked += len(block)
            if not await pace.spent(len(block)):
                report.stopped_early = True
                return None
    finally:
        aclose = getattr(blocks, "aclose", None)  # close the file or connection now
        if aclose is not None:
            await aclose()
    return await hashed.hexdigest()


def _last_pass_start(log: EventLog) -> datetime | None:
    """When the last completed pass started; else the log's first event (blocking)."""
    last = log.store.newest_of(EventType.SCRUB_PASS_COMPLETED)
    if last is not None and last.data.get("started"):
        return datetime.fromisoformat(last.data["started"])
    first = log.store.first_time()
    return None if first is None else first.replace(tzinfo=UTC)


def _named(damage: Damage) -> dict[str, str]:
    return {"backend_id": damage.backend_id, "sha256": damage.sha256, "found": damage.found}


def _problem(backend_id: str, digest: str, reason: str) -> dict[str, str]:
    return {"backend_id": backend_id, "sha256": digest, "reason": reason}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(time_: datetime) -> str:
    return time_.isoformat().replace("+00:00", "Z")


def _request_id() -> str:
    return secrets.token_hex(8).upper()
