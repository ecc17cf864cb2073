"""The shared log (docs/scale-out.md): every gateway's events in one DuckLake.

The lake's catalog is in PostgreSQL and its files on an S3 store. DuckLake's extensions run
only under DuckDB 1.5.5, so the lake is reached through child processes of the lake's own
environment (registry/lake_child.py): one writes, one answers reads. The order of the log
is kept in PostgreSQL, through psycopg:

- a session advisory lock per deployment is held around each commit, so one gateway at a
  time reads the events after its head, seals its batch onto them and commits;
- the commit pins its lake transaction's snapshot first, with DuckLake's retries off, so
  a commit that some other writer slipped in beside (a gateway killed mid-commit whose
  lake process finished late) makes it fail instead of landing beside it;
- each commit publishes its rows, and the lake snapshot it made, in PostgreSQL (a head row
  and a table of the newest rows): the next commit and the other gateways' polls read the
  new events there, unless the lake's snapshot is not the published one, when they read
  the lake itself (docs/scale-out.md, "How a write is committed").
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import select
import struct
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import psycopg

from s3facade.registry.errors import LogUnavailable
from s3facade.registry.event_store import EventStore, events_of
from s3facade.registry.events import CommittedEvent

log = logging.getLogger(__name__)

CHILD = Path(__file__).resolve().with_name("lake_child.py")
# The lake environment `make lake-env` builds beside the source tree.
DEFAULT_PYTHON = CHILD.parent.parent / ".venv-lake" / "bin" / "python"
COMMIT_ATTEMPTS = 3
RECENT_ROWS = 20_000  # the newest events kept in PostgreSQL for the next commit and pollers
ORDER_TABLES = (
    "CREATE TABLE IF NOT EXISTS s3facade_log_head (lake TEXT PRIMARY KEY, seq BIGINT NOT NULL, "
    "hash TEXT NOT NULL, snapshot BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS s3facade_log_recent (lake TEXT NOT NULL, seq BIGINT NOT NULL, "
    "time TIMESTAMP NOT NULL, type TEXT NOT NULL, bucket TEXT NOT NULL, key TEXT, "
    "data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (lake, seq))",
)
LOCK_WAIT = "10s"  # a lock not had in this long: 503, not a request hung behind a stuck peer
CALL_TIMEOUT = 120.0  # seconds a lake process may take to answer (a commit, a query)
MAINTENANCE_TIMEOUT = 3600.0


@dataclass(frozen=True)
class LakeSettings:
    """The `[log]` table of type "ducklake" (the outside contract: docs/scale-out.md)."""

    catalog: str  # libpq DSN of the PostgreSQL catalog
    data_path: str  # s3://bucket/prefix/ of the Parquet files
    endpoint: str  # the S3 endpoint holding data_path
    gateway_id: str  # recorded in each row this gateway writes
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"
    metadata_schema: str = "s3facade_log"  # the catalog's schema: one deployment's lake
    python: Path = DEFAULT_PYTHON  # the lake environment's interpreter

    def child_settings(self) -> dict[str, Any]:
        settings = asdict(self)
        del settings["python"], settings["gateway_id"]
        return settings


class LakeConflict(LogUnavailable):
    """A lake commit lost to another commit made since its transaction began."""


class LakeProcess:
    """One child of the lake environment and the pipe to it; calls are serialised."""

    def __init__(self, settings: LakeSettings, role: str, timeout: float = CALL_TIMEOUT) -> None:
        self._settings = settings
        self._role = role
        self._timeout = timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        python = self._settings.python
        if not python.exists():
            raise LogUnavailable(f"no lake environment at {python} (make lake-env)")
        process = subprocess.Popen(
            [str(python), str(CHILD), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")},
        )
        self._process = process
        try:
            self._exchange(process, ("open", self._settings.child_settings()))
        except BaseException:
            self.close()
            raise
        return process

    def start(self) -> None:
        """Start the process now if it is not running (a start costs about 0.3 s: better
        not under the deployment's lock)."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()

    def call(self, operation: str, *arguments: Any) -> Any:
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                process = self._start()
            return self._exchange(process, (operation, *arguments))

    def _exchange(self, process: subprocess.Popen[bytes], request: tuple[Any, ...]) -> Any:
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None and stdout is not None
        try:
            body = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
            stdin.write(struct.pack(">I", len(body)) + body)
            stdin.flush()
            answer = _read_answer(stdout, self._timeout)
        except (OSError, EOFError, ValueError) as exc:
            self._kill()
            raise LogUnavailable(f"the lake's {self._role} process failed: {exc}") from None
        if answer[0] == "ok":
            return answer[1]
        _, kind, message = answer
        error = LakeConflict if kind == "TransactionException" else LogUnavailable
        raise error(f"the lake refused ({kind}): {message}")

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()  # end of input: the child returns
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _read_answer(stream: IO[bytes], timeout: float) -> tuple[Any, ...]:
    # A process that hangs (a store that never answers) must not hold the deployment's
    # lock for ever: past `timeout` it is killed and the call fails.
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no answer in {timeout:g} s")
    header = stream.read(4)
    if len(header) < 4:
        raise EOFError("the lake process ended")
    (size,) = struct.unpack(">I", header)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError("the lake process ended mid-answer")
    answer = pickle.loads(body)
    if not isinstance(answer, tuple):
        raise ValueError("not an answer")
    return answer


class LakeOrder:
    """The deployment's lock and head row in the catalog's PostgreSQL (psycopg)."""

    def __init__(self, settings: LakeSettings) -> None:
        self._dsn = settings.catalog
        self._lake = settings.metadata_schema
        digest = hashlib.sha256(b"s3facade-log\n" + self._lake.encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)
        self._db: psycopg.Connection[tuple[Any, ...]] | None = None
        self._maintenance: psycopg.Connection[tuple[Any, ...]] | None = None
        self._held = 0  # how often this session holds the lock (PostgreSQL counts it too)
        self.session = 0  # which connection to PostgreSQL this is (a new one has no lock)
        self._table_seen = False  # the head row's table exists (made by the first commit)

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._db is None or self._db.closed:
            try:
                self._db = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
                self._db.execute(f"SET lock_timeout = '{LOCK_WAIT}'")
                self.session += 1
            except psycopg.Error as exc:
                raise LogUnavailable(f"the log's catalog cannot be reached: {exc}") from None
        return self._db

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        db = self._connection()
        try:
            cursor = db.execute(sql, list(params))
            return cursor.fetchall() if cursor.description is not None else []
        except psycopg.Error as exc:
            if db.closed or isinstance(exc, psycopg.OperationalError):
                self._held = 0  # a lost session released its lock
                db.close()
            raise LogUnavailable(f"the log's catalog failed: {exc}") from None

    def lock(self) -> None:
        self._run("SELECT pg_advisory_lock(%s)", [self._key])
        self._held += 1
        if not self._created():  # under the lock: two first gateways would race
            for table in ORDER_TABLES:
                self._run(table)

    def holds(self, session: int) -> bool:
        """Whether the lock taken on connection `session` is held still (as far as this
        gateway has seen: a session lost since is known at its next use)."""
        db = self._db
        return self._held > 0 and self.session == session and db is not None and not db.closed

    def _created(self) -> bool:
        return bool(self._run("SELECT to_regclass('s3facade_log_recent') IS NOT NULL")[0][0])

    def unlock(self) -> None:
        if self._held:
            self._held -= 1
            with contextlib.suppress(LogUnavailable):  # the session went, its lock with it
                self._run("SELECT pg_advisory_unlock(%s)", [self._key])

    def try_maintenance(self) -> bool:
        """Whether this gateway may compact the lake now (at most one at a time); on a
        connection of its own, since the writer's may wait on the commit lock meanwhile."""
        if self._maintenance is None or self._maintenance.closed:
            try:
                self._maintenance = psycopg.connect(self._dsn, autocommit=True, connect_timeout=5)
            except psycopg.Error as exc:
                raise LogUnavailable(f"the log's catalog cannot be reached: {exc}") from None
        try:
            row = self._maintenance.execute(
                "SELECT pg_try_advisory_lock(%s)", [self._key + 1]
            ).fetchone()
        except psycopg.Error as exc:
            self._maintenance.close()
            raise LogUnavailable(f"the log's catalog failed: {exc}") from None
        return bool(row and row[0])

    def end_maintenance(self) -> None:
        if self._maintenance is not None and not self._maintenance.closed:
            with contextlib.suppress(psycopg.Error):
                self._maintenance.execute("SELECT pg_advisory_unlock(%s)", [self._key + 1])

    def head(self) -> tuple[int, int] | None:
        """(seq, lake snapshot) the last commit published (under the lock), if any."""
        rows = self._run(
            "SELECT seq, snapshot FROM s3facade_log_head WHERE lake = %s", [self._lake]
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def publish(self, rows: Sequence[tuple[Any, ...]], snapshot: int) -> None:
        """After a commit (under the lock): its rows into the recent table, the head row to
        its last event and the lake snapshot it made, in one transaction; rows older than
        RECENT_ROWS go. A hint for the next commit and for pollers, which read the lake
        itself when it is missing or does not match: a failure is logged, not raised."""
        if not rows:
            return
        seq, digest = int(rows[-1][0]), str(rows[-1][7])
        try:
            db = self._connection()
            with db.transaction():
                with db.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO s3facade_log_recent VALUES "
                        "(%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        [(self._lake, *row) for row in rows],
                    )
                db.execute(
                    "INSERT INTO s3facade_log_head VALUES (%s, %s, %s, %s) ON CONFLICT (lake) "
                    "DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                    "snapshot = excluded.snapshot",
                    [self._lake, seq, digest, snapshot],
                )
                db.execute(
                    "DELETE FROM s3facade_log_recent WHERE lake = %s AND seq <= %s",
                    [self._lake, seq - RECENT_ROWS],
                )
        except psycopg.Error as exc:
            log.warning("the log's head row was not advanced to %d: %s", seq, exc)
            if self._db is not None and self._db.closed:
                self._held = 0

    def recent(self, after: int, through: int) -> list[tuple[Any, ...]] | None:
        """Rows after..through as published, or None if any of them is not there."""
        rows = self._run(
            "SELECT seq, time, type, bucket, key, data, prev_hash, hash FROM "
            "s3facade_log_recent WHERE lake = %s AND seq > %s AND seq <= %s ORDER BY seq",
            [self._lake, after, through],
        )
        return rows if len(rows) == through - after else None

    def published(self) -> int:
        """The newest seq some gateway announced (0 before any)."""
        if not self._table_seen:
            self._table_seen = self._created()
            if not self._table_seen:
                return 0
        found = self.head()
        return found[0] if found is not None else 0

    def close(self) -> None:
        for db in (self._db, self._maintenance):
            if db is not None:
                db.close()


class LakeEventStore(EventStore):
    """EventStore's questions, answered by the lake; writes ordered by LakeOrder."""

    def __init__(self, settings: LakeSettings) -> None:
        self.path = Path(settings.data_path)
        self.settings = settings
        self._indexed_copies = False  # the lake has only the events table
        self._writer = LakeProcess(settings, "writer")
        self._snapshot = 0  # the lake snapshot the open commit's transaction is at
        self._reader = LakeProcess(settings, "reader")
        self.order = LakeOrder(settings)
        # Attached at start, under the lock: the first gateways of a deployment would race
        # to create the lake's catalog and table.
        self.order.lock()
        try:
            self._reader.call("query", "SELECT 1", [])
            self._writer.start()
        finally:
            self.order.unlock()

    def prepare(self) -> None:
        """Before the lock is taken: a writer process that died is started again."""
        self._writer.start()

    # -- writing (the log's writer thread, between lock() and unlock()) --

    def begin(self, after: int) -> list[CommittedEvent]:
        """Open the commit's lake transaction (under the lock); the events after `after`.
        When the lake's snapshot is the one the head row names, they are the published
        rows (read from PostgreSQL: reading new rows through DuckLake costs 6-8 ms more);
        otherwise something committed unpublished (a gateway killed after its commit, or
        maintenance), and the lake is read."""
        head = self.order.head()
        expected = head[1] if head is not None and head[0] >= after else None
        self._snapshot, rows = self._writer.call("begin", after, expected)
        if rows is None:
            assert head is not None
            rows = self.order.recent(after, head[0])
            if rows is None:
                rows = self._writer.call("tail", after)
        return list(events_of(rows, strict=True))

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Commit the transaction `begin` opened with these rows. A commit that lost to
        one that appended nothing (maintenance: merged files, flushed inlined rows) is made
        again on top of it; one that lost to appended events fails (they were not read)."""
        gateway = self.settings.gateway_id
        stamped = [(*row, gateway) for row in rows]
        after = int(rows[0][0]) - 1 if rows else 0
        for _ in range(COMMIT_ATTEMPTS - 1):
            try:
                self._writer.call("append", stamped)
                break
            except LakeConflict:
                if self.begin(after):
                    raise
        else:
            self._writer.call("append", stamped)
        self.order.publish(rows, self._snapshot + 1)  # no other commit came between

    def published_since(self, after: int, through: int) -> list[CommittedEvent]:
        """Events after..through, all published: from PostgreSQL, else from the lake."""
        rows = self.order.recent(after, through)
        if rows is not None:
            return list(events_of(rows, strict=True))
        return list(self.scan(after=after, through=through, strict=True))

    def rollback(self) -> None:
        try:
            self._writer.call("rollback")
        except LogUnavailable as exc:
            log.warning("rolling back the lake transaction: %s", exc)

    def checkpoint(self) -> None:
        pass  # DuckLake commits are whole files and catalog rows: no WAL of ours to fold

    def maintain(self) -> dict[str, int] | None:
        """Compact the lake if no other gateway is doing so (None then): one process of
        its own, so reads and writes go on meanwhile."""
        if not self.order.try_maintenance():
            return None
        worker = LakeProcess(self.settings, "maintenance", timeout=MAINTENANCE_TIMEOUT)
        try:
            return dict(worker.call("maintain"))
        finally:
            worker.close()
            self.order.end_maintenance()

    def close(self) -> None:
        self._writer.close()
        self._reader.close()
        self.order.close()

    # -- reading (any thread) --

    def _pages(self, sql: str, params: Sequence[object]) -> Iterator[list[tuple[Any, ...]]]:
        rows = self._reader.call("query", sql, [_plain(value) for value in params])
        if rows:
            yield rows


def _plain(value: object) -> object:
    """A parameter as the builtin it is (an EventType as its str): the lake process cannot
    unpickle the gateway's classes."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return value


def lake_python() -> Path:
    """The lake environment's interpreter: S3FACADE_LAKE_PYTHON, else .venv-lake beside the
    source tree."""
    configured = os.environ.get("S3FACADE_LAKE_PYTHON")
    return Path(configured) if configured else DEFAULT_PYTHON
