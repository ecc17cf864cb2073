"""The append-only event log, with group commit (its SQL: registry.event_store).

Concurrent appends queue up while a transaction commits; the next transaction
takes everything queued (up to MAX_BATCH events). Each append's future resolves
only after the transaction holding its events has committed, so an acknowledged
write is durable, yet 32 concurrent writers cost one commit, not 32.

DuckDB lets one process hold the file for writing and one connection must not be
used by two threads at once, so every write runs on one dedicated thread; reads of
`store` run on cursors of their own, off the event loop through `run_query`.

After each commit, and before it is acknowledged, the log's anchor (registry.anchor) is
advanced to the new head, and once the WAL has grown past `checkpoint_wal_bytes` the
database is checkpointed, so the WAL (which DuckDB drops silently when damaged) stays small.

On a shared log (registry.lake_store; docs/scale-out.md) several gateways append to one
chain. Each commit takes the deployment's lock, reads what other gateways appended since
(applying it to the views), seals its batch onto the lake's head and commits. A write was
decided on this gateway's views under its own key lock; if another gateway changed the
same key (or its bucket) after the views this decision saw, the write is refused with
StaleDecision instead of committed, and the registry decides again. Between commits,
`follow` polls the published head and applies other gateways' events.

gc on a shared log (registry.gc) removes bytes while it holds the deployment's lock
(`ordered`) and records them in a BlobsCollected event before it lets go. A write on
another gateway may have made the same bytes durable before they were removed; it holds
their digest (registry.staging) from before that until its commit. So a write is refused
with BytesCollected when this gateway took on another gateway's BlobsCollected naming its
digest after it began to hold it (`blob_held_since`): its bytes may be gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from s3facade.registry.anchor import LogAnchor
from s3facade.registry.errors import (
    BytesCollected,
    CorruptLog,
    LogUnavailable,
    RegistryError,
    StaleDecision,
)
from s3facade.registry.event_store import BLOB_WRITES, EventStore, StoreError, row_of
from s3facade.registry.events import (
    CommittedEvent,
    Event,
    EventType,
    chain_hash,
    seal,
    utc_now,
)
from s3facade.registry.lake_store import LakeEventStore
from s3facade.registry.payloads import check_conforms
from s3facade.registry.space import SpaceReserve

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_BATCH = 1000
# Read records do not wait for a commit of their own: they ride along with the next write's
# transaction, or are flushed after at most this long. So a crash loses at most the read
# records of the last RECORD_LAG_SECONDS (plus the commit in flight); never a write.
RECORD_LAG_SECONDS = 1.0
CHECKPOINT_WAL_BYTES = 4 << 20
# Read records kept in memory while a shared log cannot record, and for how long at most
# (then: logged as lost).
MAX_WAITING_RECORDS = 100_000
RECORDS_KEPT_SECONDS = 300.0
# Other gateways' state changes remembered for the stale-decision check; a decision older
# than the oldest remembered one is refused (and decided again) rather than trusted.
FOREIGN_MEMORY = 100_000
# Digests other gateways' gc removed, remembered for BytesCollected; a write that began to
# hold its digest before the oldest of them was taken on is refused rather than trusted.
COLLECTED_MEMORY = 100_000
# How often a gateway of a shared log looks for other gateways' events: with the lake's
# commit time, the bound on how late a write shows on another gateway (docs/scale-out.md).
LOG_POLL_SECONDS = 0.1
FOLLOW_CHUNK = 10_000  # other gateways' events taken on at a time
# How often a gateway offers to compact the shared lake (one at a time do it).
LAKE_MAINTENANCE_SECONDS = 300.0
# Events that change no state a decision reads: never a reason to decide again.
_NO_STATE = frozenset({EventType.OBJECT_READ, EventType.LOG_HEAD_SIGNED})


class ViewSink(Protocol):
    """What follows the log, commit by commit: registry.views.Views."""

    def apply(self, events: Sequence[CommittedEvent]) -> None: ...

    def catch_up(self, log: EventLog, *, until: int | None = None) -> int: ...


@dataclass
class _PendingAppend:
    events: Sequence[Event]
    # None for a read record: nobody waits for it.
    future: asyncio.Future[list[CommittedEvent]] | None = field(repr=False)
    seen: int = 0  # the log's head when it was decided (the views it read)
    # Since when (time.monotonic) the digests its events name were held: a shared log's gc
    # elsewhere may have removed them after that (BytesCollected). None: nothing held.
    held_since: float | None = None
    kept_since: float = 0.0  # a read record: when a failed commit first put it back


# A pending append's outcome: its events sealed and committed, or why it was refused.
_Outcome = list[CommittedEvent] | RegistryError


class EventLog:
    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        max_batch: int = MAX_BATCH,
        read_only: bool = False,
        anchor: LogAnchor | None = None,
        checkpoint_wal_bytes: int = CHECKPOINT_WAL_BYTES,
        store: EventStore | None = None,
    ) -> None:
        """`store`: another store than the DuckDB file at `path` (the shared log's)."""
        self._path = path
        self._wal = path.with_name(path.name + ".wal")
        self.anchor = anchor
        self._checkpoint_wal_bytes = checkpoint_wal_bytes
        self.anchor_error: str | None = None  # the anchor could not be advanced (reported)
        self.space: SpaceReserve | None = None  # released before a commit on a full disk
        self._clock = clock
        self._views: ViewSink | None = None
        self.views_error: str | None = None  # the views could not follow (caught up later)
        self._max_batch = max_batch
        self._read_only = read_only
        self.store = store if store is not None else EventStore(path, read_only=read_only)
        self._shared = store if isinstance(store, LakeEventStore) else None
        self._last_seq, self._last_hash, last_time = self.store.head()
        # (seq, bucket, key) of other gateways' events, newest last; `_known_from`:
        # the seq before the oldest of them (nothing older is remembered).
        self._foreign: deque[tuple[int, str | None, str | None]] = deque()
        self._known_from = self._last_seq
        # Digest -> when (time.monotonic) another gateway's BlobsCollected naming it was
        # taken on, oldest first; `_collected_floor`: when the oldest forgotten one was.
        self._collected: dict[str, float] = {}
        self._collected_floor = float("-inf")
        # Since when a digest has been held by a write in flight (registry.staging's digest
        # locks), if at all: set by the registry; without it no write is refused so.
        self.blob_held_since: Callable[[str], float | None] = lambda digest: None
        # The newest event the views have applied: what a decision made now has seen.
        self._seen = self._last_seq
        self._sync_waiting: asyncio.Future[int] | None = None  # a sync() poll not started
        self._last_time: datetime = last_time or datetime(1970, 1, 1)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-log")
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="event-query")
        self._queue: deque[_PendingAppend] = deque()
        self._queued_records = 0
        self._flusher: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.commits = 0  # transactions committed, for benchmarks and metrics

    @property
    def path(self) -> Path:
        return self._path

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def views_seq(self) -> int:
        """The newest event both committed here and applied to the views."""
        return min(self._seen, self._last_seq)

    @property
    def last_hash(self) -> str:
        return self._last_hash

    @property
    def shared(self) -> bool:
        """Whether other gateways append to this log too (registry.lake_store)."""
        return self._shared is not None

    @property
    def read_only(self) -> bool:
        return self._read_only

    def set_views(self, views: ViewSink | None) -> None:
        """What each commit is applied to, on the writer thread, before it is acknowledged."""
        self._views = views

    def on_writer(self, function: Callable[[], _T]) -> asyncio.Future[_T]:
        """Run `function` on the writer thread, between commits (e.g. a catch-up of the
        views that no commit may interleave with)."""
        return asyncio.get_running_loop().run_in_executor(self._thread, function)

    async def run_query(self, function: Callable[[], _T]) -> _T:
        """Run a blocking read (of `store`) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, function)

    async def append(self, events: Sequence[Event]) -> list[CommittedEvent]:
        """Append events atomically; returns them sealed once their transaction committed."""
        _check(events)
        future: asyncio.Future[list[CommittedEvent]] = asyncio.get_running_loop().create_future()
        held = None
        if self._shared is not None:
            holds = (self.blob_held_since(d) for d in map(_named_digest, events) if d)
            held = min((since for since in holds if since is not None), default=None)
        self._queue.append(_PendingAppend(events, future, self._seen, held))
        self._flush_soon()
        return await future

    def record(self, events: Sequence[Event]) -> None:
        """Queue events nobody waits for (read records): committed with the next
        transaction, or within RECORD_LAG_SECONDS."""
        _check(events)
        self._queue.append(_PendingAppend(events, None))
        self._queued_records += len(events)
        if self._queued_records >= self._max_batch:
            self._flush_soon()
        elif self._timer is None and (self._flusher is None or self._flusher.done()):
            self._timer = asyncio.get_running_loop().call_later(
                RECORD_LAG_SECONDS, self._flush_soon
            )

    def _flush_soon(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_queue())

    async def _flush_queue(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch = self._take_batch()
            try:
                outcomes = await loop.run_in_executor(self._thread, self._commit_batch, batch)
            except Exception as exc:  # the whole transaction failed: nothing was committed
                outcomes = [exc] * len(batch)  # type: ignore[list-item]
                kept = self._keep_records(batch) if isinstance(exc, LogUnavailable) else []
                if kept:
                    self._timer = loop.call_later(RECORD_LAG_SECONDS, self._flush_soon)
                    batch, outcomes = _without(kept, batch, outcomes)
                    self._answer(batch, outcomes)
                    return  # tried again later, not in a loop while the lake is away
            else:
                self.commits += 1
            self._answer(batch, outcomes)

    def _keep_records(self, batch: list[_PendingAppend]) -> list[_PendingAppend]:
        """Put a failed batch's read records back at the head of the queue (a shared log's
        catalog or store away for a while), unless that many already wait; the ones put
        back. Records kept for longer than RECORDS_KEPT_SECONDS are let go (lost): one the
        lake refused for itself would otherwise fail every batch after it."""
        now = time.monotonic()
        records = []
        for pending in batch:
            if pending.future is None:
                pending.kept_since = pending.kept_since or now
                if now - pending.kept_since <= RECORDS_KEPT_SECONDS:
                    records.append(pending)
        count = sum(len(pending.events) for pending in records)
        if self._queued_records + count > MAX_WAITING_RECORDS:
            return []
        self._queue.extendleft(reversed(records))
        self._queued_records += count
        return records

    def _answer(self, batch: list[_PendingAppend], outcomes: Sequence[_Outcome]) -> None:
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future is None:
                if isinstance(outcome, Exception):
                    log.error("read records lost: %s", outcome)
            elif pending.future.done():
                pass
            elif isinstance(outcome, Exception):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)

    def _take_batch(self) -> list[_PendingAppend]:
        batch: list[_PendingAppend] = []
        count = 0
        while self._queue and (not batch or count + len(self._queue[0].events) <= self._max_batch):
            pending = self._queue.popleft()
            if pending.future is None:
                self._queued_records -= len(pending.events)
            batch.append(pending)
            count += len(pending.events)
        return batch

    def _commit_batch(self, batch: list[_PendingAppend]) -> list[_Outcome]:
        """Seal and commit a batch on the writer thread; what became of each append."""
        if self._shared is not None:
            return self._commit_shared(self._shared, batch)
        sealed = self._seal(batch)
        self._commit([e for group in sealed for e in group])
        return list(sealed)

    def _commit_shared(self, store: LakeEventStore, batch: list[_PendingAppend]) -> list[_Outcome]:
        """Under the deployment's lock only what orders the log: the lake's tail, the
        stale-decision check, sealing, the commit and publishing it. The views take on
        both after the lock is released (nothing of another gateway waits on them), and
        before any write is acknowledged. What is published already is taken on first,
        outside the lock, so the tail read under it stays short."""
        self.poll_shared()
        store.prepare()
        foreign: list[CommittedEvent] = []
        own: list[CommittedEvent] = []
        store.order.lock()
        try:
            try:
                foreign = store.begin(self._last_seq)
                self._take_on(foreign)
                stale = [self._stale(pending) for pending in batch]
                kept = [p for p, refused in zip(batch, stale, strict=True) if refused is None]
                sealed = iter(self._seal(kept))
                done: list[_Outcome] = [next(sealed) if o is None else o for o in stale]
                written = [e for group in done if isinstance(group, list) for e in group]
                store.write([row_of(e) for e in written])
                own = written
            except BaseException:
                store.rollback()
                raise
        finally:
            store.order.unlock()
            # Taken on, the other gateways' events are applied whatever became of this batch.
            if foreign or own:
                self._apply_to_views([*foreign, *own])
            if own:
                last = own[-1]
                self._last_seq, self._last_hash, self._last_time = last.seq, last.hash, last.time
        return done

    def _follow(self, events: list[CommittedEvent]) -> None:
        """Take on other gateways' events and apply them to the views."""
        self._take_on(events)
        if events:
            self._apply_to_views(events)

    def _take_on(self, events: list[CommittedEvent]) -> None:
        """Check other gateways' events (they follow this log's head), remember what they
        changed and move the head past them (sealing goes on from there)."""
        if not events:
            return
        prev_hash = self._last_hash
        for event in events:
            # Read from PostgreSQL or the lake, written by another process: checked whole.
            if event.prev_hash != prev_hash:
                raise CorruptLog(event.seq, "the shared log does not link to its predecessor")
            if chain_hash(prev_hash, event.canonical()) != event.hash:
                raise CorruptLog(event.seq, "an event of the shared log does not match its hash")
            prev_hash = event.hash
            if event.type not in _NO_STATE:
                self._foreign.append((event.seq, event.bucket, event.key))
            if event.type == EventType.BLOBS_COLLECTED:
                now = time.monotonic()
                for blob in event.data.get("blobs", ()):
                    self._collected.pop(blob["sha256"], None)  # newest last
                    self._collected[blob["sha256"]] = now
        while len(self._foreign) > FOREIGN_MEMORY:
            self._known_from = self._foreign.popleft()[0]
        while len(self._collected) > COLLECTED_MEMORY:
            oldest = next(iter(self._collected))
            self._collected_floor = self._collected.pop(oldest)
        last = events[-1]
        self._last_seq, self._last_hash, self._last_time = last.seq, last.hash, last.time

    def _stale(self, pending: _PendingAppend) -> LogUnavailable | None:
        """Refuses an append decided on views that another gateway's event has since
        made wrong: one of the same key, or one of its bucket as a whole. Or one whose
        bytes another gateway's gc may have removed since they were made durable."""
        if pending.future is None or not self._foreign:
            return None  # read records decide nothing
        if pending.held_since is not None:
            for digest in map(_named_digest, pending.events):
                taken = self._collected.get(digest or "", self._collected_floor)
                if digest and taken >= pending.held_since:
                    return BytesCollected(f"gc on another gateway removed {digest}")
        if pending.seen < self._known_from:
            return StaleDecision("decided on views older than this gateway remembers")
        for seq, bucket, key in reversed(self._foreign):
            if seq <= pending.seen:
                break
            for event in pending.events:
                if _depends_on(event, bucket, key):
                    return StaleDecision(
                        f"{event.bucket}/{event.key or ''} changed on another gateway ({seq})"
                    )
        return None

    def poll_shared(self) -> int:
        """Apply what other gateways published since this log's head (writer thread), in
        pieces of FOLLOW_CHUNK events (a gateway far behind holds one piece in memory at a
        time); how many events that was."""
        if self._shared is None:
            return 0
        applied = 0
        published = self._shared.order.published()
        while published > self._last_seq:
            through = min(published, self._last_seq + FOLLOW_CHUNK)
            events = self._shared.published_since(self._last_seq, through)
            self._follow(events)
            applied += len(events)
        return applied

    async def sync(self) -> None:
        """Take on what other gateways published up to now (a no-op on a log of one).
        Concurrent callers share a poll that has not started yet: it reads the head after
        each of them asked."""
        if self._shared is None:
            return
        waiting = self._sync_waiting
        if waiting is None:
            waiting = self._sync_waiting = self.on_writer(self._poll_for_sync)
        await asyncio.shield(waiting)

    def _poll_for_sync(self) -> int:
        self._sync_waiting = None  # before the head is read: later callers need a new poll
        return self.poll_shared()

    async def follow(self, stop: asyncio.Event, interval: float) -> None:
        """Poll the shared log every `interval` seconds until `stop` (a no-op otherwise)."""
        failing = False
        while self._shared is not None and not stop.is_set():
            try:
                await self.on_writer(self.poll_shared)
                failing = False
            except Exception as exc:  # the next poll or commit tries again
                if not failing:
                    log.warning("following the shared log: %s", exc)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    @contextlib.asynccontextmanager
    async def ordered(self) -> AsyncIterator[Callable[[], bool]]:
        """Hold a shared log's deployment lock, caught up with every gateway's events: no
        other gateway commits until it is released, this one's own commits go on (the lock
        is its session's; registry.lake_store.LakeOrder counts). Yields whether the lock is
        held still (a session lost meanwhile lost it). A no-op on a log of one."""
        shared = self._shared
        if shared is None:
            yield lambda: True
            return
        # Work handed to the writer thread runs whatever becomes of the task waiting for
        # it: a task cancelled meanwhile still lets go of a lock taken for it.
        locking = self.on_writer(self._lock_caught_up)
        try:
            session = await asyncio.shield(locking)
        except asyncio.CancelledError:
            locking.add_done_callback(self._unlock_if_locked)
            raise
        try:
            yield lambda: shared.order.holds(session)
        finally:
            await asyncio.shield(self.on_writer(shared.order.unlock))

    def _unlock_if_locked(self, locking: asyncio.Future[int]) -> None:
        if self._shared is not None and not locking.cancelled() and not locking.exception():
            self.on_writer(self._shared.order.unlock)

    def _lock_caught_up(self) -> int:
        assert self._shared is not None
        order = self._shared.order
        self._shared.prepare()
        order.lock()
        try:
            foreign = self._shared.begin(self._last_seq)
            self._shared.rollback()
            self._follow(foreign)
        except BaseException:
            order.unlock()
            raise
        return order.session

    async def maintain_periodically(self, stop: asyncio.Event, interval: float) -> None:
        """Compact the shared lake every `interval` seconds until `stop`, when no other
        gateway is at it (registry.lake_store.LakeEventStore.maintain)."""
        loop = asyncio.get_running_loop()
        while self._shared is not None and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
                return
            try:
                done = await loop.run_in_executor(None, self._shared.maintain)
            except Exception as exc:  # tried again at the next interval
                log.warning("lake maintenance failed: %s", exc)
                continue
            if done is not None:
                log.info("lake maintenance: %s", done)

    def _seal(self, batch: list[_PendingAppend]) -> list[list[CommittedEvent]]:
        # Sequence and hash are assigned here, in commit order, so the chain has no gaps
        # even when a previous transaction failed (its numbers are reused).
        seq, prev_hash = self._last_seq, self._last_hash
        time = max(self._clock(), self._last_time)  # monotonic with seq
        sealed: list[list[CommittedEvent]] = []
        for pending in batch:
            group = []
            for event in pending.events:
                seq += 1
                committed = seal(event, seq, time, prev_hash)
                prev_hash = committed.hash
                group.append(committed)
            sealed.append(group)
        return sealed

    def append_now(self, events: Sequence[Event]) -> list[CommittedEvent]:
        """Append and commit on the calling thread, for start-up and offline tools (no event
        loop may be running appends at the same time)."""
        _check(events)
        [outcome] = self._commit_batch([_PendingAppend(events, None)])
        if isinstance(outcome, Exception):
            raise outcome
        self.commits += 1
        return outcome

    def _commit(self, events: list[CommittedEvent]) -> None:
        """Write one transaction, then advance the anchor to its last event (so a commit is
        acknowledged only once the anchor knows it), apply it to the views and checkpoint a
        grown WAL. Only a failed write raises: what follows it cannot undo the commit."""
        rows = [row_of(e) for e in events]
        if self.space is not None:
            self.space.before_commit()
        try:
            self.store.write(rows)
        except StoreError as exc:
            if self.space is None or "No space left" not in str(exc):
                raise
            # A large upload took the last bytes since the check: the reserve makes room.
            self.space.release()
            self.store.write(rows)
        if self.space is not None:
            self.space.after_commit()
        if not rows:
            return
        seq, digest = rows[-1][0], rows[-1][7]
        if self.anchor is not None:
            try:
                self.anchor.advance(seq, digest)
                self.anchor_error = None
            except OSError as exc:
                # The events are committed and durable; only the tamper check lags. Say so
                # loudly (/-/ready) rather than fail writes that are already stored.
                self.anchor_error = f"the log anchor could not be advanced to {seq}: {exc}"
                log.error("%s", self.anchor_error)
        self._apply_to_views(events)
        # The head moves once the views have the events (gc's snapshot relies on it).
        last = events[-1]
        self._last_seq, self._last_hash, self._last_time = last.seq, last.hash, last.time
        self._checkpoint_if_due()

    def _apply_to_views(self, events: list[CommittedEvent]) -> None:
        if self._views is None:
            self._seen = events[-1].seq
            return
        try:
            if self.views_error is None:
                self._views.apply(events)
            else:  # an earlier apply failed: replay everything since the views' last event
                self._views.catch_up(self, until=events[-1].seq)
            self.views_error = None
            self._seen = events[-1].seq
        except Exception as exc:
            self.views_error = f"the views could not apply event {events[-1].seq}: {exc!r}"
            log.exception("%s; they catch up from the log at the next commit", self.views_error)

    def _checkpoint_if_due(self) -> None:
        try:
            wal_bytes = os.stat(self._wal).st_size
        except FileNotFoundError:
            return
        if wal_bytes < self._checkpoint_wal_bytes:
            return
        try:
            self.store.checkpoint()
        except StoreError as exc:  # e.g. a long read transaction: retried after a later commit
            log.info("checkpoint postponed: %s", exc)

    async def close(self) -> None:
        if self._queue:
            self._flush_soon()
        while self._flusher is not None and not self._flusher.done():
            await self._flusher
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close_files)
        self._thread.shutdown(wait=True)
        self._readers.shutdown(wait=True)

    def close_sync(self) -> None:
        """For offline tools that never started an event loop."""
        self._close_files()
        self._thread.shutdown(wait=True)
        self._readers.shutdown(wait=True)

    def _close_files(self) -> None:
        self.store.close()
        if self.anchor is not None:
            self.anchor.close()


def _without(
    kept: list[_PendingAppend], batch: list[_PendingAppend], outcomes: list[_Outcome]
) -> tuple[list[_PendingAppend], list[_Outcome]]:
    """The batch's appends and outcomes but the read records put back in the queue."""
    put_back = {id(pending) for pending in kept}
    rest = [(p, o) for p, o in zip(batch, outcomes, strict=True) if id(p) not in put_back]
    return [p for p, _ in rest], [o for _, o in rest]


def _depends_on(event: Event, bucket: str | None, key: str | None) -> bool:
    """Whether a decision behind `event` read state that an event of (bucket, key) changes."""
    if event.bucket is None or bucket is None:
        return False  # the log's own events (signed heads, scrubs) decide nothing of keys
    return event.bucket == bucket and (event.key is None or key is None or event.key == key)


def _named_digest(event: Event) -> str | None:
    """The digest of the bytes a write event names, if it names any."""
    if event.type.value not in BLOB_WRITES:
        return None
    digest = event.data.get("sha256")
    return digest if isinstance(digest, str) else None


def _check(events: Sequence[Event]) -> None:
    for event in events:
        check_conforms(event.type, event.data)
