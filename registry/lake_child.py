"""The shared log's own process (docs/scale-out.md): the gateway's hands on the DuckLake.

Run by the Python of `.venv-lake` (`make lake-env`): DuckDB 1.5.5 and the DuckLake, httpfs
and postgres extensions from PyPI, which cannot load into the gateway's DuckDB 2.0. So this
file is executed by path, never imported by the gateway, and uses only the standard
library and duckdb.

    .venv-lake/bin/python registry/lake_child.py --serve

answers requests on stdin/stdout (registry.lake_store speaks the other end): each frame is a
4-byte big-endian length and a pickle, a tuple (operation, *arguments) in, ("ok", value) or
("error", class name, message) out. The pipe is private to the parent that started it.

    .venv-lake/bin/python registry/lake_child.py --check

attaches a DuckLake in a temporary directory, writes and reads one event row, and prints
what it found as JSON: the environment works offline, from its pinned wheels alone.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import pickle
import signal
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

# 1.5.5's client tries `import pandas` for every bound value when pandas is absent (about
# 55 µs a value): a None entry makes each attempt fail at once.
sys.modules.setdefault("pandas", None)  # type: ignore[arg-type]

import duckdb  # noqa: E402 (after the entry above)

EXTENSIONS = ("ducklake", "httpfs", "postgres_scanner")


def extension_paths() -> list[Path]:
    """The extension files the pinned wheels installed beside duckdb."""
    site = Path(duckdb.__file__).resolve().parent.parent
    version = duckdb.__version__
    paths = []
    for name in EXTENSIONS:
        path = site / f"duckdb_extension_{name}/extensions/v{version}/{name}.duckdb_extension"
        if not path.is_file():
            raise SystemExit(f"no {name} extension for DuckDB {version} (make lake-env)")
        paths.append(path)
    return paths


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect() -> duckdb.DuckDBPyConnection:
    """A connection with the extensions loaded from the install, never downloaded."""
    connection = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for path in extension_paths():
        connection.execute(f"LOAD {_quoted(str(path))}")
    return connection


# The events table of the lake: the gateway's columns (registry.event_store.EVENT_COLUMNS,
# tested to match) and the gateway that wrote the row. DuckLake has no PRIMARY KEY or
# UNIQUE: the order of `seq` is kept by the writers' lock and the snapshot check below.
EVENTS = (
    "CREATE TABLE IF NOT EXISTS events (seq BIGINT NOT NULL, time TIMESTAMP NOT NULL, "
    "type VARCHAR NOT NULL, bucket VARCHAR NOT NULL, key VARCHAR, data JSON NOT NULL, "
    "prev_hash VARCHAR NOT NULL, hash VARCHAR NOT NULL, gateway VARCHAR NOT NULL)"
)
# Snapshots younger than this stay readable (time travel), and files unused for less than
# this stay on the store (a lake process's call is killed long before: 120 s).
KEEP = "now() - INTERVAL 1 HOUR"
INSERT_ROWS = 200  # rows per INSERT statement of a commit
TAIL = "SELECT seq, time, type, bucket, key, data, prev_hash, hash FROM events WHERE seq > ? "


class Lake:
    """One attached DuckLake; `begin` opens the write transaction `append` commits."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.db = connect()
        endpoint = str(settings["endpoint"])
        secure = endpoint.startswith("https://")
        host = endpoint.split("://", 1)[-1].rstrip("/")
        secret = (
            f"CREATE SECRET lake_s3 (TYPE s3, KEY_ID {_quoted(settings['access_key_id'])}, "
            f"SECRET {_quoted(settings['secret_access_key'])}, ENDPOINT {_quoted(host)}, "
            f"REGION {_quoted(settings['region'])}, URL_STYLE 'path', USE_SSL {secure})"
        )
        self.db.execute(secret)
        self.db.execute(
            f"ATTACH {_quoted('ducklake:postgres:' + settings['catalog'])} AS lake "
            f"(DATA_PATH {_quoted(settings['data_path'])}, "
            f"METADATA_SCHEMA {_quoted(settings['metadata_schema'])})"
        )
        self.db.execute("USE lake")
        # A commit racing another writer fails instead of being rebased onto it: the seq
        # and hash this writer sealed with would no longer follow the lake's head.
        self.db.execute("SET ducklake_max_retry_count = 0")
        self.db.execute(EVENTS)
        self.open = False

    def begin(self, after: int, expected: int | None) -> tuple[int, list[tuple[Any, ...]] | None]:
        """Open the write transaction: its snapshot, and the events after `after` as of it,
        or None when the snapshot is `expected` (the gateway has them from the head row's
        table). Reading pins the snapshot: a commit by anyone else from now on makes
        `append` fail (an unread transaction would commit on top of it silently)."""
        self.rollback()
        self.db.execute("BEGIN TRANSACTION")
        self.open = True
        row = self.db.execute("FROM ducklake_current_snapshot('lake')").fetchone()
        snapshot = int(row[0]) if row else 0
        if snapshot == expected:
            return snapshot, None
        return snapshot, self.tail(after)

    def tail(self, after: int) -> list[tuple[Any, ...]]:
        """The events after `after`, in the open transaction."""
        return self.db.execute(TAIL + "ORDER BY seq", [after]).fetchall()

    def append(self, rows: list[tuple[Any, ...]]) -> int:
        if not self.open:
            raise RuntimeError("append without begin")
        try:
            # Multi-row INSERTs: 1.5's executemany binds row by row (4-5x slower at 100).
            for start in range(0, len(rows), INSERT_ROWS):
                chunk = rows[start : start + INSERT_ROWS]
                values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                flat = [value for row in chunk for value in row]
                self.db.execute(f"INSERT INTO events VALUES {values}", flat)
            self.db.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        self.open = False
        return len(rows)

    def rollback(self) -> None:
        if self.open:
            self.open = False
            self.db.execute("ROLLBACK")

    def query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, params).fetchall()

    def maintain(self) -> dict[str, int]:
        """Fold small files and inlined rows into larger Parquet files, and drop what no
        snapshot needs any more (docs/scale-out.md, maintenance)."""
        done: dict[str, int] = {}
        # Unlike the writers' commits, these may be rebased onto commits made meanwhile.
        self.db.execute("SET ducklake_max_retry_count = 10")
        for name, sql in (
            ("flushed", "CALL ducklake_flush_inlined_data('lake')"),
            ("merged", "CALL ducklake_merge_adjacent_files('lake')"),
            ("expired", f"CALL ducklake_expire_snapshots('lake', older_than => {KEEP})"),
            # Not at once: a read that began before a merge still scans the merged files.
            ("cleaned", f"CALL ducklake_cleanup_old_files('lake', older_than => {KEEP})"),
        ):
            done[name] = len(self.db.execute(sql).fetchall())
        return done


OPERATIONS = frozenset({"begin", "tail", "append", "rollback", "query", "maintain"})


def _read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(4)
    if len(header) < 4:
        return None
    (size,) = struct.unpack(">I", header)
    return stream.read(size)


def _write_frame(stream: BinaryIO, value: Any) -> None:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def _die_with_parent() -> None:
    """A gateway killed mid-commit must not leave this process to finish the commit after
    another gateway took the lock (PR_SET_PDEATHSIG, Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def serve(requests: BinaryIO, answers: BinaryIO) -> int:
    _die_with_parent()
    lake: Lake | None = None
    while (request := _read_frame(requests)) is not None:
        try:
            operation, *arguments = pickle.loads(request)
            if operation == "open":
                lake = Lake(*arguments)
                value: Any = None
            elif lake is None:
                raise RuntimeError("the lake is not open")
            elif operation not in OPERATIONS:
                raise RuntimeError(f"no operation {operation!r}")
            else:
                value = getattr(lake, operation)(*arguments)
        except Exception as exc:  # reported to the gateway, which decides
            _write_frame(answers, ("error", type(exc).__name__, str(exc)))
            continue
        _write_frame(answers, ("ok", value))
    return 0


def check() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="s3facade-lake-") as tmp:
        connection = connect()
        catalog, data = f"ducklake:{tmp}/catalog.ducklake", f"{tmp}/data/"
        connection.execute(f"ATTACH {_quoted(catalog)} AS lake (DATA_PATH {_quoted(data)})")
        connection.execute("CREATE TABLE lake.events (seq BIGINT NOT NULL, data JSON NOT NULL)")
        connection.execute("INSERT INTO lake.events VALUES (?, ?)", [1, '{"type": "check"}'])
        rows = connection.execute("SELECT seq, (data->>'type') FROM lake.events").fetchall()
        loaded = connection.execute(
            "SELECT extension_name FROM duckdb_extensions() WHERE loaded ORDER BY 1"
        ).fetchall()
        connection.close()
    return {
        "duckdb": duckdb.__version__,
        "loaded": [name for (name,) in loaded],
        "rows": [list(row) for row in rows],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="attach, write, read; print JSON")
    parser.add_argument("--serve", action="store_true", help="answer the gateway on stdin")
    args = parser.parse_args()
    if args.serve:
        answers = sys.stdout.buffer
        sys.stdout = sys.stderr  # nothing else may write into the answers
        return serve(sys.stdin.buffer, answers)
    if not args.check:
        parser.error("nothing to do (--check or --serve)")
    print(json.dumps(check()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
