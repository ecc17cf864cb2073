"""The append-only event log in DuckDB, with group commit.

Concurrent appends queue up while a transaction commits; the next transaction
takes everything queued (up to MAX_BATCH events). Each append's future resolves
only after the transaction holding its events has committed, so an acknowledged
write is durable, yet 32 concurrent writers cost one commit, not 32.

DuckDB lets one process hold the file for writing and one connection must not be
used by two threads at once, so every DuckDB call runs on one dedicated thread.

After each commit, and before it is acknowledged, the log's anchor (registry.anchor) is
advanced to the new head, and once the WAL has grown past `checkpoint_wal_bytes` the
database is checkpointed, so the WAL (which DuckDB drops silently when damaged) stays small.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import duckdb

from registry.anchor import LogAnchor
from registry.errors import CorruptLog
from registry.events import (
    GENESIS_HASH,
    CommittedEvent,
    Event,
    EventType,
    seal,
    utc_now,
)
from registry.payloads import check_conforms
from registry.space import SpaceReserve

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_BATCH = 1000
LOG_MEMORY_MIB = 256
SCAN_CHUNK = 50_000  # sequence numbers per query of a long scan (see EventLog.scan)
# Read records do not wait for a commit of their own: they ride along with the next write's
# transaction, or are flushed after at most this long. So a crash loses at most the read
# records of the last RECORD_LAG_SECONDS (plus the commit in flight); never a write.
RECORD_LAG_SECONDS = 1.0
CHECKPOINT_WAL_BYTES = 4 << 20

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT NOT NULL,
    time TIMESTAMP NOT NULL,
    type VARCHAR NOT NULL,
    bucket VARCHAR NOT NULL,
    key VARCHAR,
    data JSON NOT NULL,
    prev_hash VARCHAR NOT NULL,
    hash VARCHAR NOT NULL
)
"""

_ROWS_PER_INSERT = 250


@functools.cache
def _insert_sql(rows: int) -> str:
    return "INSERT INTO events VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows)


_COLUMNS = "seq, time, type, bucket, key, data, prev_hash, hash"
_TYPES = frozenset(t.value for t in EventType)


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
        # DuckDB's default is most of the machine's memory, kept as a cache once used: the
        # log's queries (gc, verify, the SQL mirror) spill to its temp dir beyond this.
        self._db = duckdb.connect(
            str(path), read_only=read_only, config={"memory_limit": f"{LOG_MEMORY_MIB}MB"}
        )
        if not read_only:
            self._db.execute(SCHEMA)
            self._db.execute("CHECKPOINT")  # the table itself never depends on the WAL
        elif not self._db.execute(
            "SELECT 1 FROM duckdb_tables() WHERE table_name = 'events' AND NOT temporary"
        ).fetchone():
            # A log whose WAL held even the table (lost before its first checkpoint) reads
            # as empty: the anchor check then says what is missing.
            self._db.execute(SCHEMA.replace("CREATE TABLE", "CREATE TEMP TABLE"))
        last = self._db.execute(
            "SELECT seq, hash, time FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        self._last_seq: int = last[0] if last else 0
        self._last_hash: str = last[1] if last else GENESIS_HASH
        self._last_time: datetime = last[2] if last else datetime(1970, 1, 1)
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

    def replay(self) -> Iterator[CommittedEvent]:
        """Every committed event in sequence order (strict: an unknown type is CorruptLog)."""
        return self.scan(strict=True)

    def scan(
        self,
        *,
        after: int = 0,
        through: int | None = None,
        types: Collection[str] | None = None,
        strict: bool = False,
    ) -> Iterator[CommittedEvent]:
        """Events with after < seq <= through (default: the stored head), optionally of some
        types only, in seq order. Read in ranges of SCAN_CHUNK sequence numbers, so no query
        sorts more than a range: asked for all of them in order at once, DuckDB materialises
        and sorts the whole selection (gigabytes at ten million events). `strict`: an
        unknown type is CorruptLog; otherwise it passes as its plain string (verify says so).
        Blocking: run it in a worker (run_query) while serving."""
        last = through if through is not None else self.stored_head()[0]
        kinds = sorted(types) if types is not None else None
        only = f" AND type IN ({', '.join('?' * len(kinds))})" if kinds is not None else ""
        low = after
        while low < last:
            high = min(low + SCAN_CHUNK, last)
            yield from self._events(
                f"WHERE seq > ? AND seq <= ?{only} ORDER BY seq",
                [low, high, *(kinds or ())],
                strict=strict,
            )
            low = high

    def event_at(self, seq: int) -> CommittedEvent | None:
        return next(self._events("WHERE seq = ?", [seq], strict=False), None)

    def newest_of(self, type_: EventType) -> CommittedEvent | None:
        """The newest event of a type (a column scan: once per start, not per request)."""
        clause = "WHERE type = ? ORDER BY seq DESC LIMIT 1"
        return next(self._events(clause, [type_.value], strict=False), None)

    def first_after(self, seq: int) -> CommittedEvent | None:
        return next(self._events("WHERE seq > ? ORDER BY seq LIMIT 1", [seq], strict=False), None)

    def select(
        self, sql: str, params: Sequence[Any] = (), batch_size: int = 10_000
    ) -> Iterator[CommittedEvent]:
        """Events chosen by `sql`, which must select the columns of the events table in order.
        Runs on its own cursor, so it may be called from a worker thread while serving."""
        cursor = self._db.cursor()
        try:
            cursor.execute(sql, list(params))
            while rows := cursor.fetchmany(batch_size):
                for seq, time, type_, bucket, key, data, prev_hash, digest in rows:
                    if type_ not in _TYPES:
                        raise CorruptLog(seq, f"unknown event type {type_!r}")
                    yield CommittedEvent(
                        seq, time, EventType(type_), bucket, key, json.loads(data), prev_hash,
                        digest,
                    )  # fmt: skip
        finally:
            cursor.close()

    def _events(
        self, clause: str, params: Sequence[Any], *, strict: bool, batch_size: int = 10_000
    ) -> Iterator[CommittedEvent]:
        cursor = self._db.cursor()
        try:
            cursor.execute(f"SELECT {_COLUMNS} FROM events {clause}", list(params))
            while rows := cursor.fetchmany(batch_size):
                for seq, time, type_, bucket, key, data, prev_hash, digest in rows:
                    if type_ in _TYPES:
                        known = EventType(type_)
                    elif strict:
                        raise CorruptLog(seq, f"unknown event type {type_!r}")
                    else:
                        known = cast(EventType, type_)
                    yield CommittedEvent(
                        seq, time, known, bucket, key, json.loads(data), prev_hash, digest
                    )
        finally:
            cursor.close()

    def stored_head(self) -> tuple[int, str]:
        """The newest event as stored (seq, hash); (0, genesis) for an empty log."""
        cursor = self._db.cursor()
        try:
            row = cursor.execute(
                "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        finally:
            cursor.close()
        return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))

    def stored_hash(self, seq: int) -> str | None:
        """The hash stored for event `seq` (blocking; run through `run_query`)."""
        cursor = self._db.cursor()
        try:
            row = cursor.execute("SELECT hash FROM events WHERE seq = ?", [seq]).fetchone()
        finally:
            cursor.close()
        return None if row is None else str(row[0])

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own for read-only queries (thread-safe to use beside the writer)."""
        return self._db.cursor()

    async def run_query(self, function: Callable[[], _T]) -> _T:
        """Run a blocking read (using `cursor()`/`select()`) off the event loop."""
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
        rows = [_row(e) for e in events]
        if self.space is not None:
            self.space.before_commit()
        try:
            self._write(rows)
        except duckdb.Error as exc:
            if self.space is None or "No space left" not in str(exc):
                raise
            # A large upload took the last bytes since the check: the reserve makes room.
            self.space.release()
            self._write(rows)
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
            self._db.execute("CHECKPOINT")
        except duckdb.Error as exc:  # e.g. a long read transaction: retried after a later commit
            log.info("checkpoint postponed: %s", exc)

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        self._db.execute("BEGIN TRANSACTION")
        try:
            # One multi-row INSERT per slice: ~5x faster than executemany's row-at-a-time.
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                self._db.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

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
        self._db.close()  # a clean close checkpoints: the WAL is folded into the file
        if self.anchor is not None:
            self.anchor.close()


def _check(events: Sequence[Event]) -> None:
    for event in events:
        check_conforms(event.type, event.data)


def _row(event: CommittedEvent) -> tuple[Any, ...]:
    return (
        event.seq,
        event.time,
        str(event.type),
        event.bucket,
        event.key,
        json.dumps(event.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
        event.prev_hash,
        event.hash,
    )
