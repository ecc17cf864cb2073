"""The child process that runs one admin SQL query (see registry.sql for the parent side).

Run by path (`python -I -B .../sql_worker.py`), so it imports only the standard library and
duckdb, never the `registry` package. It reads one JSON request on stdin, confines itself
(resource limits, then a DuckDB with no file access, no extensions and a read-only
transaction) and answers on stdout: one header line of JSON, `{"ok": true}` followed by the
answer body `{"columns": [...], "rows": [...]}`, or `{"ok": false, "error": ..., "message":
...}`. Anything it cannot answer (the memory cap, a crash) is judged by the parent from its
exit status.

The sandbox does not depend on inspecting statements: the log is not reachable from here
(the parent gives it the Parquet mirror's segments, or the stopped server's database to
attach READ_ONLY), no file can be written (Landlock where the kernel has it, RLIMIT_FSIZE 0,
DuckDB's external access off), memory is capped by the kernel (RLIMIT_AS), and exactly one
statement runs, in a read-only transaction. That it must be a SELECT is defence in depth.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime
import decimal
import json
import math
import os
import resource
import struct
import sys
import uuid
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _duckdb import DuckDBPyConnection

# Headroom inside RLIMIT_AS for Python, the duckdb library and thread stacks; DuckDB's own
# limit is what is left, so it fails with a clean "Out of Memory Error" first.
RESERVED_MIB = 160
# Python's open files, duckdb's and the segments (whose descriptors are inherited anyway).
OPEN_FILES = 64
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
# Landlock's system calls (one number on every architecture) and file-system rights.
_LANDLOCK_CREATE_RULESET, _LANDLOCK_RESTRICT_SELF = 444, 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_WRITES = sum(1 << bit for bit in (1, 4, 5, 6, 7, 8, 9, 10, 11, 12))  # write, remove, make
_LANDLOCK_REFER = 1 << 13  # link or rename across directories (ABI 2)
_LANDLOCK_TRUNCATE = 1 << 14  # (ABI 3)


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def confine(request: dict[str, Any]) -> bool:
    """Kernel limits first: they hold whatever the query does to DuckDB's own settings.
    True if file writes are forbidden outright (Landlock), not only file growth."""
    _close_inherited(keep={int(s.removeprefix("/dev/fd/")) for s in _fd_segments(request)})
    memory = int(request["memory_mib"]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # no file can grow (nor shrink: below)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    # A backstop should the parent die before it can kill us (its kill is the real timeout).
    cpu = int(request["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    if sys.platform == "linux":
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the parent, even on SIGKILL
        if os.getppid() != int(request["parent_pid"]):
            sys.exit(1)  # the parent is already gone
        return forbid_writes(libc)
    return False


def forbid_writes(libc: ctypes.CDLL) -> bool:
    """Landlock (Linux >= 5.13): from here on this process cannot open a file for writing,
    truncate, create, remove, rename or link one, whoever it runs as (RLIMIT_FSIZE stops a
    file growing, not being truncated). Best effort: False where the kernel lacks it."""
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(
        ctypes.c_long(_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    if abi < 1:
        return False
    handled = _LANDLOCK_WRITES | (_LANDLOCK_REFER if abi >= 2 else 0)
    handled |= _LANDLOCK_TRUNCATE if abi >= 3 else 0
    # struct landlock_ruleset_attr starts with handled_access_fs; no rules: nothing allowed.
    attr = ctypes.create_string_buffer(struct.pack("=Q", handled), 8)
    ruleset = libc.syscall(
        ctypes.c_long(_LANDLOCK_CREATE_RULESET), attr, ctypes.c_size_t(8), ctypes.c_uint32(0)
    )
    if ruleset < 0:
        return False
    try:
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return False
        restricted = libc.syscall(
            ctypes.c_long(_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)
        )
        return bool(restricted == 0)
    finally:
        os.close(ruleset)


def _fd_segments(request: dict[str, Any]) -> list[str]:
    return [s for s in request["segments"] if str(s).startswith("/dev/fd/")]


def _close_inherited(keep: set[int]) -> None:
    """Only stdin, stdout, stderr and the segments stay open (an event loop such as uvloop
    does not close the parent's other inheritable descriptors when it spawns us)."""
    for name in os.listdir("/proc/self/fd" if sys.platform == "linux" else "/dev/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):  # includes the directory listing's own
                os.close(fd)


def open_database(request: dict[str, Any]) -> DuckDBPyConnection:
    import _duckdb as duckdb

    budget = int(request["memory_mib"]) - RESERVED_MIB
    database = duckdb.connect(
        ":memory:",
        config={
            "threads": int(request["threads"]),
            "memory_limit": f"{max(budget, 32)}MiB",
            "temp_directory": "",  # nothing spills to disk; over the limit is an error
            "max_temp_directory_size": "0B",
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "allow_persistent_secrets": False,
            "extension_directory": "",
        },
    )
    database.execute("SET enable_progress_bar = false")  # it would write to our stdout
    allowed: list[str] = []
    columns = [(str(name), str(kind)) for name, kind in request["event_columns"]]
    if request.get("database"):  # offline: the stopped server's log, read-only
        # DuckDB itself allows the files of an attached database (and refuses COPY to them).
        database.execute(f"ATTACH {_literals([str(request['database'])])} AS log (READ_ONLY)")
        database.execute("CREATE VIEW events AS SELECT * FROM log.events")
    elif request["segments"]:  # online: the mirror's segments (links or /dev/fd/N)
        allowed = [str(s) for s in request["segments"]]
        typed = ", ".join(f"{name}::{kind} AS {name}" for name, kind in columns)
        database.execute(
            f"CREATE VIEW events AS SELECT {typed} FROM read_parquet([{_literals(allowed)}])"
        )
    else:  # an empty log
        database.execute(f"CREATE TABLE events ({', '.join(' '.join(c) for c in columns)})")
    for name, sql in request["views"].items():
        database.execute(f"CREATE VIEW {name} AS {sql}")
    # DuckDB 2.0: the allow-lists are set before external access is switched off, and the
    # configuration is locked after, so the query cannot widen them again.
    database.execute(f"SET allowed_paths = [{_literals(allowed)}]")
    database.execute("SET allowed_directories = []")
    database.execute("SET enable_external_access = false")
    database.execute("SET lock_configuration = true")
    database.execute("BEGIN TRANSACTION READ ONLY")
    return database


def _literals(texts: list[str]) -> str:
    """SQL string literals, comma-separated."""
    return ", ".join("'" + text.replace("'", "''") + "'" for text in texts)


def answer(database: DuckDBPyConnection, sql: str, max_bytes: int) -> bytes:
    import _duckdb as duckdb

    statements = database.extract_statements(sql)
    if len(statements) != 1:
        raise Refused("InvalidRequest", "exactly one SQL statement is allowed")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise Refused("InvalidRequest", "only a SELECT statement is allowed")
    result = database.execute(statements[0])  # the parsed statement: nothing else can run
    description = result.description or []
    columns = [str(d[0]) for d in description]
    types = [str(d[1]) for d in description]
    # Values of these types are JSON as they come; the others are converted.
    converted = [i for i, t in enumerate(types) if t not in _PLAIN_TYPES]
    chunks = [b'{"columns": ', json.dumps(columns).encode(), b', "rows": [']
    size = sum(map(len, chunks))
    while batch := result.fetchmany(2048):
        rows: list[Any] = batch
        if converted:
            rows = [list(row) for row in batch]
            for row in rows:
                for i in converted:
                    row[i] = _jsonable(row[i], types[i] == "JSON")
        encoded = json.dumps(rows).encode()[1:-1]  # the rows without the list's brackets
        if len(chunks) > 3:
            encoded = b", " + encoded
        size += len(encoded)
        if size > max_bytes:
            raise Refused(
                "ResultTooLarge",
                f"the answer exceeds {max_bytes >> 20} MiB: select fewer rows or columns",
            )
        chunks.append(encoded)
    chunks.append(b"]}")
    return b"".join(chunks)


_PLAIN_TYPES = frozenset(
    {"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT"}
    | {"USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "VARCHAR"}
)


def _jsonable(value: Any, parse_json: bool) -> Any:
    """Timestamps as ISO text, JSON columns parsed, the rest as JSON can carry it."""
    if parse_json and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.timedelta | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [_jsonable(v, False) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, False) for k, v in value.items()}
    return value


def main(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    request = json.loads(stdin.read())
    writes_forbidden = confine(request)
    # After the limits, so its allocations count against them. `_duckdb` is the compiled
    # engine that the `duckdb` package re-exports: importing it alone halves the start-up
    # of every query (about 50 ms instead of 105).
    import _duckdb as duckdb

    try:
        try:
            database = open_database(request)
        except duckdb.IOException as exc:
            if "lock" not in str(exc):
                raise
            raise Refused("LogInUse", str(exc)) from None  # offline, and a server holds it
        body = answer(database, str(request["sql"]), int(request["max_result_bytes"]))
    except Refused as exc:
        header: dict[str, Any] = {"ok": False, "error": exc.code, "message": str(exc)}
        body = b""
    except (MemoryError, duckdb.OutOfMemoryException) as exc:
        # DuckDB's advice (more memory, fewer threads) is not the client's to take.
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        limit = f"{request['memory_mib']} MiB (sql_memory_mib)"
        message = f"the query exceeded the memory limit of {limit}: {detail}"
        header = {"ok": False, "error": "QueryMemoryLimit", "message": message}
        body = b""
    except duckdb.Error as exc:
        header = {"ok": False, "error": "InvalidQuery", "message": str(exc)}
        body = b""
    else:
        header = {"ok": True}
    header["writes_forbidden"] = writes_forbidden
    stdout.write(json.dumps(header).encode() + b"\n" + body)
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.stdin.buffer, sys.stdout.buffer))
