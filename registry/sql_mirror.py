"""The Parquet mirror of the events table that sandboxed SQL queries read.

A running server holds its DuckDB file exclusively, so the child process that runs an admin
query (registry.sql_worker) cannot open the log. It reads this mirror instead: immutable
segment files `<data-dir>/sql-mirror/events-<first seq>-<last seq>.parquet`, brought up to
date before each query by appending one segment for the events committed since the last one.

The mirror is a cache, never evidence: `verify` and everything else work on the log. It is
checked against the log (contiguous segments from seq 1, files readable, its last seq not
beyond the log's head, the hash of its last event equal to the log's) once per server start
and cheaply before every query; on any mismatch it is deleted and rebuilt from the log.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from s3facade.registry.event_store import MEMORY_MIB
from s3facade.registry.log import EventLog

log = logging.getLogger(__name__)

MIRROR_DIRECTORY = "sql-mirror"
# More segments than this are merged (each query's child opens every one of them).
MAX_SEGMENTS = 8
_NAME = re.compile(r"events-(\d{12})-(\d{12})\.parquet")
_PARTIAL = ".partial-"  # prefix of a segment being written; renamed when complete


@dataclass(frozen=True, order=True)
class Segment:
    first: int
    last: int

    @property
    def name(self) -> str:
        return f"events-{self.first:012d}-{self.last:012d}.parquet"

    @property
    def events(self) -> int:
        return self.last - self.first + 1

    @property
    def bounds(self) -> tuple[int, int]:
        return self.first, self.last


@dataclass
class Checkout:
    """The segments one query reads, as names in its own directory (hard links) or, when
    that directory is on another file system, as inherited file descriptors. Either way a
    merge that deletes a segment meanwhile does not disturb the query."""

    paths: list[str]
    fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


class EventMirror:
    def __init__(self, log: EventLog, directory: Path) -> None:
        self.log = log
        self.directory = directory
        self._lock = threading.Lock()  # refreshes run on the log's reader threads
        self._segments: list[Segment] | None = None  # None: not checked against the log yet
        self._last_hash = ""
        self.rebuilds = 0  # for tests and metrics

    @classmethod
    def beside(cls, log: EventLog) -> EventMirror:
        """The mirror in the log's data dir."""
        return cls(log, log.path.parent / MIRROR_DIRECTORY)

    @property
    def segments(self) -> list[Segment]:
        return list(self._segments or [])

    def invalidate(self) -> None:
        """Check every segment again before the next query (a child could not read one)."""
        with self._lock:
            self._segments = None

    def checkout(self, target: Path) -> Checkout:
        """Bring the mirror up to date and give `target` (a query's working directory) the
        current segments. Blocking: run it through `EventLog.run_query`."""
        with self._lock:
            segments = self._refresh()
            names = [s.name for s in segments]
            try:
                for name in names:
                    os.link(self.directory / name, target / name)
                return Checkout(names)
            except OSError:  # another file system (or no hard links): descriptors then
                fds = [os.open(self.directory / name, os.O_RDONLY) for name in names]
                return Checkout([f"/dev/fd/{fd}" for fd in fds], fds)

    def _refresh(self) -> list[Segment]:
        # The mirror's own files are read and merged on a connection of its own; the log is
        # only asked through its store.
        files = duckdb.connect(config={"memory_limit": f"{MEMORY_MIB}MB"})
        try:
            if self._segments is None:
                self._segments = self._load(files)
            head = self.log.last_seq
            last = self._segments[-1].last if self._segments else 0
            if last > head or (last and self._log_hash(last) != self._last_hash):
                log.warning("the SQL mirror does not match the log: rebuilding it")
                self._discard_all()
                last = 0
            if head > last:
                self._write(Segment(last + 1, head))
                self._last_hash = self._log_hash(head)
                self._compact(files)
            return list(self._segments)
        finally:
            files.close()

    def _load(self, files_db: duckdb.DuckDBPyConnection) -> list[Segment]:
        """The segments on disk, if they form a readable chain from seq 1; else nothing."""
        self.directory.mkdir(mode=0o700, exist_ok=True)
        segments: list[Segment] = []
        for path in self.directory.iterdir():
            if path.name.startswith(_PARTIAL):  # a write interrupted by a crash
                path.unlink()
            elif match := _NAME.fullmatch(path.name):
                segments.append(Segment(int(match[1]), int(match[2])))
        segments.sort()
        expected = 1
        try:
            for segment in segments:
                row = files_db.execute(
                    "SELECT min(seq), max(seq), count(*) FROM read_parquet(?)",
                    [str(self.directory / segment.name)],
                ).fetchone()
                if segment.first != expected or row != (
                    segment.first,
                    segment.last,
                    segment.events,
                ):
                    raise ValueError(f"{segment.name} does not continue the mirror")
                expected = segment.last + 1
            if segments:
                row = files_db.execute(
                    "SELECT hash FROM read_parquet(?) WHERE seq = ?",
                    [str(self.directory / segments[-1].name), segments[-1].last],
                ).fetchone()
                self._last_hash = row[0] if row else ""
        except (duckdb.Error, ValueError) as exc:
            log.warning("the SQL mirror is unusable (%s): rebuilding it", exc)
            self._segments = segments
            self._discard_all()
            return []
        return segments

    def _log_hash(self, seq: int) -> str:
        return self.log.store.stored_hash(seq) or ""

    def _discard_all(self) -> None:
        for segment in self._segments or []:
            (self.directory / segment.name).unlink(missing_ok=True)
        self._segments = []
        self._last_hash = ""
        self.rebuilds += 1

    def _write(self, segment: Segment) -> None:
        self._publish(
            segment, lambda partial: self.log.store.export_parquet(partial, *segment.bounds)
        )
        assert self._segments is not None
        self._segments.append(segment)

    def _publish(self, segment: Segment, write: Callable[[Path], None]) -> None:
        """Write a segment under a temporary name, then rename it: a segment file under its
        final name is always complete."""
        partial = self.directory / f"{_PARTIAL}{segment.name}"
        write(partial)
        os.replace(partial, self.directory / segment.name)

    def _compact(self, files_db: duckdb.DuckDBPyConnection) -> None:
        """Merge the newest segment into its predecessor while that is no bigger (so segment
        sizes fall geometrically and each event is rewritten O(log n) times), then the
        smallest adjacent pair while there are more than MAX_SEGMENTS."""
        segments = self._segments
        assert segments is not None
        while True:
            if len(segments) >= 2 and segments[-2].events <= segments[-1].events:
                self._merge(files_db, len(segments) - 2)
            elif len(segments) > MAX_SEGMENTS:
                pairs = range(len(segments) - 1)
                self._merge(
                    files_db, min(pairs, key=lambda i: segments[i].events + segments[i + 1].events)
                )
            else:
                return

    def _merge(self, files_db: duckdb.DuckDBPyConnection, index: int) -> None:
        assert self._segments is not None
        older, newer = self._segments[index], self._segments[index + 1]
        merged = Segment(older.first, newer.last)
        files = ", ".join(_quoted(self.directory / s.name) for s in (older, newer))
        select = f"SELECT * FROM read_parquet([{files}]) ORDER BY seq"

        def copy(partial: Path) -> None:
            files_db.execute(f"COPY ({select}) TO {_quoted(partial)} (FORMAT parquet)")

        self._publish(merged, copy)
        self._segments[index : index + 2] = [merged]
        # A query still reading them holds its own links or descriptors.
        for segment in (older, newer):
            (self.directory / segment.name).unlink(missing_ok=True)


def _quoted(path: Path) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"
