"""The event store: the one module that holds SQL for the log.

The log is one DuckDB table, `events`, appended to and never changed. Everything else asks
this store narrow questions (events by sequence, by type, by key, by time; the blobs writes
named; an export) instead of writing SQL of its own, so the storage can change behind it:
it is the seam a shared log (a lake of several gateways) goes behind. registry.log.EventLog
keeps group commit, the anchor and the views on top of it.

Reads run on cursors of their own, so a worker thread may read while the writer thread
appends. Long reads stream: see `scan` for why they go in ranges of sequence numbers.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import duckdb

from s3facade.registry.errors import CorruptLog
from s3facade.registry.events import GENESIS_HASH, CommittedEvent, EventType

# One definition of the table; registry.sql_worker's copy is tested against it.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("seq", "BIGINT"),
    ("time", "TIMESTAMP"),
    ("type", "VARCHAR"),
    ("bucket", "VARCHAR"),
    ("key", "VARCHAR"),
    ("data", "JSON"),
    ("prev_hash", "VARCHAR"),
    ("hash", "VARCHAR"),
)
_NULLABLE = {"key"}
SCHEMA = "CREATE TABLE IF NOT EXISTS events ({})".format(
    ", ".join(
        f"{name} {kind}" + ("" if name in _NULLABLE else " NOT NULL")
        for name, kind in EVENT_COLUMNS
    )
)
COLUMNS = ", ".join(name for name, _ in EVENT_COLUMNS)
_DATA = [name for name, _ in EVENT_COLUMNS].index("data")
# Which events were copied from which key (data.derived_from), so that "the copies of a
# key" reads this small table instead of every event's JSON (seconds at ten million
# events). Derived from `events` in the same transaction; rebuilt from it if missing. The
# events it names are checked against their own data when read.
COPIES_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS copies (seq BIGINT NOT NULL, bucket VARCHAR NOT NULL, "
    "key VARCHAR NOT NULL)"
)
_COPIES_FROM_EVENTS = """
    INSERT INTO copies SELECT seq, data->'derived_from'->>'bucket', data->'derived_from'->>'key'
    FROM events WHERE contains(data, '"derived_from"')
    AND data->'derived_from'->>'bucket' IS NOT NULL AND data->'derived_from'->>'key' IS NOT NULL
"""

# Events that make an object version (and so name its blob).
OBJECT_WRITES = (
    EventType.OBJECT_WRITTEN.value,
    EventType.UPLOAD_COMPLETED.value,
    EventType.OBJECT_IMPORTED.value,
)
# Events whose data names a blob by "backend_id" and "sha256": gc's references.
BLOB_WRITES = (*OBJECT_WRITES, EventType.PART_UPLOADED.value)

# Views over the events table for `s3facade sql`, created in each query's own in-memory
# DuckDB by registry.sql_worker (over the Parquet mirror, or the attached log offline).
USER_VIEWS = {
    "writes": f"""
        SELECT seq, time, type, bucket, key,
               data->>'version_id' AS version_id, (data->>'size')::BIGINT AS size,
               data->>'sha256' AS sha256, data->>'etag' AS etag,
               data->>'principal' AS principal, data->>'client_address' AS client_address,
               data->'tool'->>'name' AS tool, data->'tool'->>'version' AS tool_version,
               data->>'user_agent' AS user_agent, data->>'request_id' AS request_id,
               data->>'content_type' AS content_type, data->>'backend_id' AS backend_id,
               data->'metadata' AS metadata, data->'tags' AS tags,
               data->'attached' AS attached, data->'derived_from' AS derived_from, hash
        FROM events WHERE type IN {OBJECT_WRITES}""",
    "reads": f"""
        SELECT seq, time, bucket, key, data->>'version_id' AS version_id,
               data->>'sha256' AS sha256, data->>'principal' AS principal,
               data->>'client_address' AS client_address,
               data->'tool'->>'name' AS tool, data->'tool'->>'version' AS tool_version,
               data->>'method' AS method, data->>'range' AS range,
               (data->>'bytes_sent')::BIGINT AS bytes_sent, (data->>'status')::INTEGER AS status,
               (data->>'completed')::BOOLEAN AS completed,
               (data->>'presigned')::BOOLEAN AS presigned, data->>'request_id' AS request_id
        FROM events WHERE type = '{EventType.OBJECT_READ.value}'""",
    "objects": f"""
        SELECT w.* FROM writes w JOIN (
            SELECT bucket, key, max(seq) AS seq FROM events
            WHERE type IN {(*OBJECT_WRITES, EventType.OBJECT_DELETED.value)}
            GROUP BY bucket, key
        ) latest USING (bucket, key, seq)""",
    "buckets": f"""
        SELECT c.bucket AS name, c.time AS created, c.data->>'principal' AS owner,
               c.data->>'region' AS region
        FROM events c WHERE c.type = '{EventType.BUCKET_CREATED.value}' AND c.seq = (
            SELECT max(seq) FROM events e WHERE e.bucket = c.bucket
            AND e.type IN ('{EventType.BUCKET_CREATED.value}',
                           '{EventType.BUCKET_DELETED.value}'))""",
}


MEMORY_MIB = 256
SCAN_CHUNK = 50_000  # sequence numbers per query of a long scan (see EventStore.scan)
_FETCH = 10_000
_TYPES = frozenset(t.value for t in EventType)

StoreError = duckdb.Error  # what a failed write or checkpoint raises
BlobId = tuple[str, str]  # (backend id, sha256)


def _in(values: Collection[str]) -> str:
    return f"({', '.join('?' * len(values))})"


class EventStore:
    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        # DuckDB's default is most of the machine's memory, kept as a cache once used: the
        # log's queries (gc, verify, the SQL mirror) spill to its temp dir beyond this.
        self._db = duckdb.connect(
            str(path), read_only=read_only, config={"memory_limit": f"{MEMORY_MIB}MB"}
        )
        if not read_only:
            self._db.execute(SCHEMA)
            if not self._has_table("copies"):  # a log from before the index: built once
                self._db.execute("BEGIN TRANSACTION")
                self._db.execute(COPIES_SCHEMA)
                self._db.execute(_COPIES_FROM_EVENTS)
                self._db.execute("COMMIT")
            self._db.execute("CHECKPOINT")  # the tables themselves never depend on the WAL
        elif not self._has_table("events"):
            # A log whose WAL held even the table (lost before its first checkpoint) reads
            # as empty: the anchor check then says what is missing.
            self._db.execute(SCHEMA.replace("CREATE TABLE", "CREATE TEMP TABLE"))
        self._indexed_copies = self._has_table("copies")

    def _has_table(self, name: str) -> bool:
        found = self._db.execute(
            "SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [name]
        ).fetchone()
        return found is not None

    # -- writing (the log's writer thread only) --

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append rows (in EVENT_COLUMNS order) in one transaction."""
        self._db.execute("BEGIN TRANSACTION")
        try:
            # The appender: ~10x less CPU per row than a multi-row INSERT's parameters,
            # the same conversions and checks, and inside this transaction.
            appender = self._db.appender("events")
            appender.append_rows(rows)
            appender.flush()
            copies = [copy for row in rows if (copy := _copy_of(row)) is not None]
            if copies:
                self._db.executemany("INSERT INTO copies VALUES (?, ?, ?)", copies)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def checkpoint(self) -> None:
        self._db.execute("CHECKPOINT")

    def close(self) -> None:
        self._db.close()  # a clean close checkpoints: the WAL is folded into the file

    # -- reading (any thread) --

    def head(self) -> tuple[int, str, datetime | None]:
        """The newest stored event's seq, hash and time; (0, genesis, None) when empty."""
        row = self._one("SELECT seq, hash, time FROM events ORDER BY seq DESC LIMIT 1")
        return (0, GENESIS_HASH, None) if row is None else (int(row[0]), str(row[1]), row[2])

    def stored_head(self) -> tuple[int, str]:
        seq, digest, _ = self.head()
        return seq, digest

    def stored_hash(self, seq: int) -> str | None:
        row = self._one("SELECT hash FROM events WHERE seq = ?", seq)
        return None if row is None else str(row[0])

    def first_time(self) -> datetime | None:
        row = self._one("SELECT time FROM events ORDER BY seq LIMIT 1")
        return None if row is None else cast(datetime, row[0])

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
        Blocking: run it in a worker (EventLog.run_query) while serving."""
        last = through if through is not None else self.stored_head()[0]
        kinds = sorted(types) if types is not None else []
        only = f" AND type IN {_in(kinds)}" if types is not None else ""
        low = after
        while low < last:
            high = min(low + SCAN_CHUNK, last)
            yield from self._events(
                f"WHERE seq > ? AND seq <= ?{only} ORDER BY seq", [low, high, *kinds], strict
            )
            low = high

    def replay(self) -> Iterator[CommittedEvent]:
        """Every committed event in sequence order (an unknown type is CorruptLog)."""
        return self.scan(strict=True)

    def event_at(self, seq: int) -> CommittedEvent | None:
        return next(self._events("WHERE seq = ?", [seq]), None)

    def newest_of(self, type_: EventType) -> CommittedEvent | None:
        """The newest event of a type (a column scan: once per start or pass, not per request)."""
        return next(self._events("WHERE type = ? ORDER BY seq DESC LIMIT 1", [type_.value]), None)

    def first_after(self, seq: int) -> CommittedEvent | None:
        return next(self._events("WHERE seq > ? ORDER BY seq LIMIT 1", [seq]), None)

    def of_type(self, type_: EventType) -> Iterator[CommittedEvent]:
        return self._events("WHERE type = ? ORDER BY seq", [type_.value])

    def key_history(self, bucket: str, key: str) -> Iterator[CommittedEvent]:
        """Every event of one key, oldest first."""
        return self._events("WHERE bucket = ? AND key = ? ORDER BY seq", [bucket, key])

    def version_history(
        self, bucket: str, key: str, version_id: str, newest: int
    ) -> list[CommittedEvent]:
        """The newest `newest` events of one version of a key (and those of the key naming
        no version), oldest first, and the writes that made the version, however old: a
        page of a version read millions of times, in bounded memory."""
        mine = "bucket = ? AND key = ? AND coalesce((data->>'version_id'), ?) = ?"
        params: list[object] = [bucket, key, version_id, version_id]
        recent = list(self._events(f"WHERE {mine} ORDER BY seq DESC LIMIT ?", [*params, newest]))
        made = self._events(
            f"WHERE {mine} AND type IN {_in(OBJECT_WRITES)} ORDER BY seq",
            [*params, *OBJECT_WRITES],
        )
        by_seq = {event.seq: event for event in [*made, *recent]}
        return [by_seq[seq] for seq in sorted(by_seq)]

    def writes_of_content(self, bucket: str, key: str, sha256: str) -> Iterator[CommittedEvent]:
        """The writes of `key` that stored these bytes (a copy's source)."""
        return self._events(
            f"WHERE bucket = ? AND key = ? AND type IN {_in(OBJECT_WRITES)} "
            "AND (data->>'sha256') = ? ORDER BY seq",
            [bucket, key, *OBJECT_WRITES, sha256],
        )

    def copies_of(
        self, bucket: str, key: str, newest: int | None = None
    ) -> Iterator[CommittedEvent]:
        """Events whose bytes were derived from `key` (copies, part copies), oldest first;
        `newest`: only that many of the newest."""
        limit = "" if newest is None else f" LIMIT {int(newest)}"
        if not self._indexed_copies:  # a read-only log from before the index: every event
            every = self._events(
                "WHERE (data->'derived_from'->>'bucket') = ? "
                "AND (data->'derived_from'->>'key') = ? "
                "ORDER BY seq",
                [bucket, key],
            )
            return every if newest is None else iter(list(every)[-newest:])
        found = [
            row
            for page in self._pages(
                "SELECT seq FROM (SELECT seq FROM copies WHERE bucket = ? AND key = ? "
                f"ORDER BY seq DESC{limit}) ORDER BY seq",
                [bucket, key],
            )
            for row in page
        ]
        return (
            event
            for (seq,) in found
            for event in self._events("WHERE seq = ?", [seq])
            if (event.data.get("derived_from") or {}).get("bucket") == bucket
            and event.data["derived_from"].get("key") == key  # the index is no evidence
        )

    def recent(
        self, *, since: datetime | None, bucket: str | None, limit: int, newest: bool = False
    ) -> list[CommittedEvent]:
        """The first `limit` events at or after `since`, of one bucket or all; with `newest`,
        the last `limit` of them, newest first."""
        clauses, params = ["TRUE"], list[object]()
        if since is not None:
            clauses.append("time >= ?")
            params.append(since)
        if bucket is not None:
            clauses.append("bucket = ?")
            params.append(bucket)
        params.append(int(limit))
        order = "seq DESC" if newest else "seq"
        where = " AND ".join(clauses)
        return list(self._events(f"WHERE {where} ORDER BY {order} LIMIT ?", params))

    def blobs_named_after(self, seq: int) -> set[BlobId]:
        """Every blob a write after event `seq` names."""
        pages = self._pages(
            "SELECT DISTINCT (data->>'backend_id'), (data->>'sha256') FROM events "
            f"WHERE seq > ? AND type IN {_in(BLOB_WRITES)}",
            [seq, *BLOB_WRITES],
        )
        return {(backend_id, digest) for page in pages for backend_id, digest in page}

    def uncollected_blobs(self) -> Iterator[BlobId]:
        """Blobs a write named more recently than a BlobsCollected event last recorded
        collecting them, streamed."""
        pages = self._pages(
            f"""
                WITH named AS (
                    SELECT data->>'backend_id' AS backend_id, data->>'sha256' AS sha256,
                           max(seq) AS seq
                    FROM events WHERE type IN {_in(BLOB_WRITES)}
                    AND (data->>'sha256') IS NOT NULL
                    GROUP BY ALL),
                collected AS (
                    SELECT blob->>'backend_id' AS backend_id, blob->>'sha256' AS sha256,
                           max(seq) AS seq
                    FROM (SELECT seq, unnest(CAST(data->'blobs' AS JSON[])) AS blob
                          FROM events WHERE type = ?)
                    GROUP BY ALL)
                SELECT n.backend_id, n.sha256 FROM named n
                LEFT JOIN collected c USING (backend_id, sha256)
                WHERE c.seq IS NULL OR c.seq < n.seq""",
            [*BLOB_WRITES, EventType.BLOBS_COLLECTED.value],
        )
        for page in pages:
            yield from ((backend_id, digest) for backend_id, digest in page)

    def export_parquet(self, target: Path, first: int = 1, last: int | None = None) -> None:
        """Events first..last (default: all) in seq order, as one Parquet file."""
        upper = "" if last is None else f" AND seq <= {int(last)}"
        escaped = str(target).replace("'", "''")
        for _ in self._pages(
            f"COPY (SELECT {COLUMNS} FROM events WHERE seq >= {int(first)}{upper} "
            f"ORDER BY seq) TO '{escaped}' (FORMAT parquet)",
            [],
        ):
            pass

    def _pages(self, sql: str, params: Sequence[object]) -> Iterator[list[tuple[Any, ...]]]:
        """The rows a query returns, a page at a time, on a cursor of its own (the one
        place a read reaches the database: the shared log's store answers it elsewhere)."""
        cursor = self._db.cursor()
        try:
            cursor.execute(sql, list(params))
            while rows := cursor.fetchmany(_FETCH):
                yield rows
        finally:
            cursor.close()

    def _one(self, sql: str, *params: object) -> tuple[Any, ...] | None:
        return next((row for page in self._pages(sql, params) for row in page), None)

    def _events(
        self, clause: str, params: Sequence[object], strict: bool = False
    ) -> Iterator[CommittedEvent]:
        for rows in self._pages(f"SELECT {COLUMNS} FROM events {clause}", params):
            yield from events_of(rows, strict)


def events_of(rows: Sequence[Sequence[Any]], strict: bool = False) -> Iterator[CommittedEvent]:
    """Rows in EVENT_COLUMNS order as events. `strict`: an unknown type is CorruptLog;
    otherwise it passes as its plain string (verify says so)."""
    for seq, time, type_, bucket, key, data, prev_hash, digest in rows:
        if type_ in _TYPES:
            known = EventType(type_)
        elif strict:
            raise CorruptLog(seq, f"unknown event type {type_!r}")
        else:
            known = cast(EventType, type_)
        yield CommittedEvent(seq, time, known, bucket, key, json.loads(data), prev_hash, digest)


def _copy_of(row: Sequence[Any]) -> tuple[int, str, str] | None:
    """(seq, source bucket, source key) of a row whose data names what it was derived from."""
    if '"derived_from"' not in row[_DATA]:  # most rows: no JSON parsed on the commit path
        return None
    source = json.loads(row[_DATA]).get("derived_from")
    if not isinstance(source, dict) or not {"bucket", "key"} <= source.keys():
        return None
    return int(row[0]), str(source["bucket"]), str(source["key"])


def row_of(event: CommittedEvent) -> tuple[Any, ...]:
    """An event as the row `write` stores (EVENT_COLUMNS order; canonical JSON data)."""
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
