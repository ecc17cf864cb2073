"""Garbage collection of blobs: remove the bytes nothing references any more.

A blob is (backend id, SHA-256). It is *live* while anything in the views names it on
that backend: any version of any key, current or noncurrent (delete markers have no
bytes), or a part of an unfinished multipart upload. Versions under retention or legal
hold are versions too, and invariant 7 keeps them in the views while protected, so
their bytes are live by construction.

A pass, in two steps:

1. `plan_collection` notes the log's sequence number, then looks up in the views every
   blob the log ever named in a write (ObjectWritten, MultipartUploadCompleted,
   PartUploaded) and has not already collected since, and whatever a backend that can
   list its digests holds (`DigestListing`, optional): the candidates are those no
   version or part names. Both lists stream (SQL in the log, an index lookup each in the
   views), so memory holds the candidates only, not the live set. The views are applied
   at commit, so they reflect at least every write up to the noted number.
2. `collect` takes each candidate's digest *exclusively* (`registry.digests`), checks
   again that nothing references it, and only then deletes it.

Why the check under the lock is sound: a write holds its digest *shared* from the
moment its bytes are durable until its event has committed (registry.staging,
Registry.copy_object). Holding the digest exclusively, gc knows no such write is in
flight, and every one that was has committed. A reference added since the snapshot
can therefore only come from a write event with a later sequence number that names
the digest, and those are exactly what the re-check reads from the log (once per
advance of the log, not per candidate). A put of the same content racing the pass
either commits first (and gc sees its event) or waits for gc and then re-creates the
blob from its own staged copy.

What this assumes:
- One log references a backend's blobs: a blob root or upstream prefix shared by two
  registries must not be collected by either (the gateways of one shared log are one).
- Digest locks live in one process: gc runs in the serving process (background pass,
  admin endpoint) or offline on a stopped server's data dir (DuckDB's file lock keeps
  a server from running beside a writable offline registry).

On a shared log (docs/scale-out.md) other gateways' writes hold no lock of this one.
There `collect` removes bytes only while it holds the deployment's lock, caught up with
every gateway's events (EventLog.ordered: no other gateway commits meanwhile, so the
re-check sees every reference), and records them before it lets go. A write elsewhere
that made the same bytes durable before they were removed is refused at its commit
(BytesCollected, registry.log) and retried by its client. Other gateways' commits wait
while the lock is held, so it is let go after ORDERED_CANDIDATES candidates or
ORDERED_SECONDS, and taken again for the next ones.

Each pass that removed anything appends one BlobsCollected event (digests, backend ids,
bytes) by the system principal "s3facade:gc"; the views ignore it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from s3facade.backends import BackendError
from s3facade.registry.errors import LogUntrusted
from s3facade.registry.event_store import BlobId
from s3facade.registry.events import EventType
from s3facade.registry.model import Provenance
from s3facade.registry.payloads import BlobsCollected

if TYPE_CHECKING:
    from s3facade.registry.core import RegistryCore
    from s3facade.registry.log import EventLog

logger = logging.getLogger(__name__)

GC_PRINCIPAL = "s3facade:gc"
GC_USER_AGENT = "s3facade-gc/1"

# A huge pass is recorded as several BlobsCollected events (appended atomically together)
# so no single event row grows without bound.
MAX_BLOBS_PER_EVENT = 10_000
# How long a pass on a shared log holds the deployment's lock at a time (see above).
ORDERED_CANDIDATES = 100
ORDERED_SECONDS = 1.0

Progress = Callable[[int], None]  # called with the number of candidates just handled


@runtime_checkable
class DigestListing(Protocol):
    """Optional backend capability: list every digest it stores.

    Lets gc find blobs the log never named (a crash between a blob's commit and its
    event, a write refused at commit time). Kept apart from StorageBackend so a backend
    need not offer it (listing a big upstream bucket may be slow or not allowed)."""

    def digests(self) -> AsyncIterator[str]: ...


@dataclass(frozen=True)
class CollectedBlob:
    backend_id: str
    sha256: str
    size: int


@dataclass(frozen=True)
class GcProblem:
    backend_id: str
    sha256: str
    reason: str


@dataclass
class GcPlan:
    snapshot_seq: int  # writes after it are re-checked under the digest lock
    candidates: list[BlobId]  # sorted, so passes and reports are reproducible


@dataclass
class GcReport:
    dry_run: bool
    snapshot_seq: int
    candidates: int
    collected: list[CollectedBlob] = field(default_factory=list)  # or would be, dry run
    kept: int = 0  # referenced again by the time their digest was locked
    absent: int = 0  # already gone from the backend
    problems: list[GcProblem] = field(default_factory=list)
    event_seqs: list[int] = field(default_factory=list)  # the BlobsCollected events
    stopped_early: bool = False

    @property
    def collected_bytes(self) -> int:
        return sum(blob.size for blob in self.collected)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "snapshot_seq": self.snapshot_seq,
            "candidates": self.candidates,
            "collected": [asdict(blob) for blob in self.collected],
            "collected_count": len(self.collected),
            "collected_bytes": self.collected_bytes,
            "kept": self.kept,
            "absent": self.absent,
            "problems": [asdict(problem) for problem in self.problems],
            "event_seqs": list(self.event_seqs),
            "stopped_early": self.stopped_early,
        }


async def plan_collection(registry: RegistryCore) -> GcPlan:
    """The blobs nothing references (see the module docstring), found in bounded memory:
    each blob the log named, and each a listing backend holds, is looked up in the views.
    Raises LogUntrusted when the views or the log cannot be relied on (check_trusted)."""
    await registry.check_trusted()
    log, views = registry.log, registry.views
    await log.sync()  # a shared log: fewer candidates to find referenced at the re-check
    kept = await log.run_query(lambda: _kept_after_loss(log))
    # Writes committed after this position are re-checked under the digest lock; those
    # before it are in the views the candidates are looked up in.
    snapshot_seq = log.views_seq

    def unreferenced_named() -> list[BlobId]:
        with views.snapshot() as reader:
            return [
                blob
                for blob in log.store.uncollected_blobs()
                if blob not in kept and not reader.blob_in_use(*blob)
            ]

    candidates = set(await log.run_query(unreferenced_named))
    for backend_id, backend in registry.backends.items():
        if isinstance(backend, DigestListing):
            async for digest in backend.digests():
                blob = (backend_id, digest)
                if blob not in kept and not views.blob_in_use(backend_id, digest):
                    candidates.add(blob)
    return GcPlan(snapshot_seq, sorted(candidates))


async def collect(
    registry: RegistryCore,
    plan: GcPlan,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    trigger: str = "command",
) -> GcReport:
    """Remove each candidate nothing references, one digest lock at a time, then record
    what was removed. `stop` ends the pass early (what was removed is still recorded).
    On a shared log, in turns of the deployment's lock (module docstring)."""
    report = GcReport(dry_run, plan.snapshot_seq, len(plan.candidates))
    recheck = _Recheck(registry.log, plan)
    candidates = deque(plan.candidates)
    in_turns = registry.log.shared
    while candidates and not report.stopped_early:
        turn = nullcontext(_always) if dry_run else registry.log.ordered()
        async with turn as held:
            recorded, handled = len(report.collected), 0
            ends = time.monotonic() + ORDERED_SECONDS
            while candidates:
                if in_turns and (handled == ORDERED_CANDIDATES or time.monotonic() > ends):
                    break
                if (stop is not None and stop.is_set()) or not held():
                    report.stopped_early = True  # a lost lock: record what went, stop
                    break
                backend_id, digest = candidates.popleft()
                # One digest at a time, never two: a write may hold one digest while waiting
                # for an upload lock that another write holds while waiting for a second one.
                async with registry.digests[digest].exclusive():
                    await _collect_one(registry, recheck, backend_id, digest, report, dry_run)
                handled += 1
                if progress is not None:
                    progress(1)
            if len(report.collected) > recorded and not dry_run:
                collected = report.collected[recorded:]
                report.event_seqs += await _record(registry, collected, trigger)
    return report


def _always() -> bool:
    return True


async def collect_garbage(
    registry: RegistryCore,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    trigger: str = "command",
) -> GcReport:
    """One whole pass: plan, then collect."""
    plan = await plan_collection(registry)
    return await collect(
        registry, plan, dry_run=dry_run, progress=progress, stop=stop, trigger=trigger
    )


async def run_periodically(registry: RegistryCore, interval: float, stop: asyncio.Event) -> None:
    """The server's background gc: a pass every `interval` seconds until `stop` is set.
    A failed pass is logged and retried at the next interval; it never stops serving."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
            return
        except TimeoutError:
            pass
        try:
            report = await collect_garbage(registry, stop=stop, trigger="background")
        except LogUntrusted as exc:  # the operator is told at /-/ready; no traceback
            logger.warning("background gc skipped: %s", exc)
            continue
        except Exception:
            logger.exception("background gc pass failed")
            continue
        if report.collected or report.problems:
            logger.info(
                "gc: removed %d blob(s), %d bytes; %d problem(s)",
                len(report.collected),
                report.collected_bytes,
                len(report.problems),
            )


# -- internals -----------------------------------------------------------------------------


class _Recheck:
    """Is a candidate referenced now? Only a write event committed since the noted position
    can have named it since (read lazily, only when the log has moved)."""

    def __init__(self, log: EventLog, plan: GcPlan) -> None:
        self._log = log
        self._seen_seq = plan.snapshot_seq
        self._named_since: set[BlobId] = set()

    async def referenced(self, blob: BlobId) -> bool:
        # Read after the digest lock was taken: every write of this digest has committed
        # by now, at or below this sequence number.
        last = self._log.last_seq
        if last > self._seen_seq:
            since, log = self._seen_seq, self._log
            self._named_since |= await log.run_query(lambda: log.store.blobs_named_after(since))
            self._seen_seq = last
        return blob in self._named_since


async def _collect_one(
    registry: RegistryCore,
    recheck: _Recheck,
    backend_id: str,
    digest: str,
    report: GcReport,
    dry_run: bool,
) -> None:
    if await recheck.referenced((backend_id, digest)):
        report.kept += 1
        return
    if backend_id not in registry.backends:
        report.problems.append(GcProblem(backend_id, digest, "backend not configured"))
        return
    backend = registry.backends[backend_id]
    try:
        size = await backend.size(digest)
        if size is None:
            report.absent += 1
            return
        if not dry_run and not await backend.delete(digest):
            report.absent += 1  # removed by someone else since size()
            return
    except BackendError as exc:  # one unreachable blob must not stop the pass
        report.problems.append(GcProblem(backend_id, digest, str(exc)))
        return
    report.collected.append(CollectedBlob(backend_id, digest, size))


async def _record(
    registry: RegistryCore, collected: list[CollectedBlob], trigger: str
) -> list[int]:
    who = Provenance(GC_PRINCIPAL, "", GC_USER_AGENT, secrets.token_hex(8).upper())
    events = []
    for start in range(0, len(collected), MAX_BLOBS_PER_EVENT):
        chunk = collected[start : start + MAX_BLOBS_PER_EVENT]
        per_backend: dict[str, int] = {}
        for blob in chunk:
            per_backend[blob.backend_id] = per_backend.get(blob.backend_id, 0) + blob.size
        collected_chunk = BlobsCollected(
            **who.as_dict(),
            trigger=trigger,
            blobs=[asdict(blob) for blob in chunk],
            count=len(chunk),
            bytes=sum(blob.size for blob in chunk),
            bytes_per_backend=per_backend,
        )
        events.append(collected_chunk.event())
    committed = await registry.log.append(events)
    return [event.seq for event in committed]


def _kept_after_loss(log: EventLog) -> frozenset[BlobId]:
    """Blobs an operator's accepted log loss asked to keep (registry.log_check): the bytes
    of acknowledged writes whose events were lost, kept for a manual recovery."""
    return frozenset(
        (blob["backend_id"], blob["sha256"])
        for event in log.store.of_type(EventType.LOG_LOSS_ACCEPTED)
        for blob in event.data.get("kept_blobs", ())
    )
