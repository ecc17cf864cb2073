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
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from s3facade.registry.anchor import LogAnchor
from s3facade.registry.event_store import EventStore, StoreError, row_of
from s3facade.registry.events import CommittedEvent, Event, seal, utc_now
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


class ViewSink(Protocol):
    """What follows the log, commit by commit: registry.views.Views."""

    def apply(self, events: Sequence[CommittedEvent]) -> None: ...

    def catch_up(self, log: EventLog) -> int: ...


@dataclass
class _PendingAppend:
    events: Sequence[Event]
    # None for a read record: nobody waits for it.
    future: asyncio.Future[list[CommittedEvent]] | None = field(repr=False)


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
    ) -> None:
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
        self.store = EventStore(path, read_only=read_only)
        self._last_seq, self._last_hash, last_time = self.store.head()
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
    def last_hash(self) -> str:
        return self._last_hash

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
        self._queue.append(_PendingAppend(events, future))
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
            sealed = self._seal(batch)
            events = [e for group in sealed for e in group]
            try:
                await loop.run_in_executor(self._thread, self._commit, events)
            except Exception as exc:  # the whole transaction failed: nothing was committed
                for pending in batch:
                    if pending.future is None:
                        log.error("read records lost: %s", exc)
                    elif not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            last = sealed[-1][-1] if sealed and sealed[-1] else None
            if last is not None:
                self._last_seq, self._last_hash, self._last_time = last.seq, last.hash, last.time
            self.commits += 1
            for pending, group in zip(batch, sealed, strict=True):
                if pending.future is not None and not pending.future.done():
                    pending.future.set_result(group)

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
        sealed = self._seal([_PendingAppend(events, None)])[0]
        self._commit(sealed)
        if sealed:
            last = sealed[-1]
            self._last_seq, self._last_hash, self._last_time = last.seq, last.hash, last.time
        self.commits += 1
        return sealed

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
        self._checkpoint_if_due()

    def _apply_to_views(self, events: list[CommittedEvent]) -> None:
        if self._views is None:
            return
        try:
            if self.views_error is None:
                self._views.apply(events)
            else:  # an earlier apply failed: replay everything since the views' last event
                self._views.catch_up(self)
            self.views_error = None
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


def _check(events: Sequence[Event]) -> None:
    for event in events:
        check_conforms(event.type, event.data)
