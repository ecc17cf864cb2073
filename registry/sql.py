"""Read-only SQL over the log, by construction: each query runs in a child process.

The server's own DuckDB connection is read-write and DuckDB's in-process limits do not bound
every query, so a query never runs there. `SqlSandbox.query` starts `registry/sql_worker.py`
in a fresh process with a minimal environment, kernel limits (address space, no file
writes, CPU) and a DuckDB that can reach nothing but the events: the Parquet mirror's
segments (registry.sql_mirror) on a running server, or the stopped server's database file
attached READ_ONLY offline. The parent bounds how many run at once, kills a child (its whole
process group) on timeout, on cancellation (the HTTP client went away) and on `stop()`
(server shutdown), and turns every outcome into an answer or a `SqlError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from asyncio.subprocess import Process
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from s3facade.registry.event_store import EVENT_COLUMNS, USER_VIEWS
from s3facade.registry.sql_mirror import Checkout, EventMirror

log = logging.getLogger(__name__)
_T = TypeVar("_T")

WORKER = Path(__file__).with_name("sql_worker.py")
_SEGMENT = re.compile(r"events-\d{12}-\d{12}\.parquet")
MAX_RESULT_BYTES = 64 << 20


@dataclass(frozen=True)
class SqlLimits:
    """[server] sql_timeout_seconds, sql_memory_mib, sql_threads, sql_concurrency."""

    timeout_seconds: float = 30.0
    memory_mib: int = 1024
    threads: int = 1
    concurrency: int = 2
    max_result_bytes: int = MAX_RESULT_BYTES


class SqlError(Exception):
    """A query that got no answer. `code` names why:

    InvalidRequest: not exactly one SELECT. InvalidQuery: DuckDB refused it (syntax, catalog,
    permission). QueryTimeout, QueryMemoryLimit, ResultTooLarge: it hit a limit.
    SlowDown: `concurrency` queries are already running. ServiceUnavailable: shutting down.
    LogInUse: offline, and a running server holds the log. InternalError: anything else.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SqlSandbox:
    def __init__(
        self,
        limits: SqlLimits,
        *,
        mirror: EventMirror | None = None,
        database: Path | None = None,
    ) -> None:
        if (mirror is None) == (database is None):
            raise ValueError("a sandbox reads either a mirror or a database file")
        self.limits = limits
        self._mirror = mirror
        self._database = database
        self._running = 0
        self._children: set[int] = set()  # process ids (= process group ids) alive now
        self._stopped = False
        self._warned = False  # about a kernel without Landlock

    @classmethod
    def online(cls, mirror: EventMirror, limits: SqlLimits) -> SqlSandbox:
        return cls(limits, mirror=mirror)

    @classmethod
    def offline(cls, database: Path, limits: SqlLimits) -> SqlSandbox:
        """For a stopped server's log file; the caller need not (and should not) open it."""
        return cls(limits, database=database)

    def stop(self) -> None:
        """Kill every running query and refuse new ones. Synchronous and allocation-light,
        so a signal handler may call it."""
        self._stopped = True
        for pid in list(self._children):
            _kill_group(pid)

    async def query(self, sql: str) -> bytes:
        """The answer, `{"columns": [...], "rows": [[...], ...]}` as JSON bytes, or SqlError.
        Cancelling the call kills the child."""
        if self._stopped:
            raise SqlError("ServiceUnavailable", "the server is shutting down")
        if self._running >= self.limits.concurrency:
            raise SqlError(
                "SlowDown", f"{self.limits.concurrency} SQL queries are running; retry later"
            )
        self._running += 1
        try:
            try:
                return await self._attempt(sql)
            except _MirrorUnreadable:
                # A segment on disk went bad: check the mirror against the log, once.
                assert self._mirror is not None
                self._mirror.invalidate()
            try:
                return await self._attempt(sql)
            except _MirrorUnreadable as exc:
                raise SqlError("InvalidQuery", str(exc)) from None
        finally:
            self._running -= 1

    async def _attempt(self, sql: str) -> bytes:
        # The child's home, temp and working directory: empty but for the segment links,
        # and outside the data dir, so DuckDB's settings show no server path.
        workdir = Path(tempfile.mkdtemp(prefix="s3facade-sql-"))
        checkout = Checkout([])
        try:
            request = {
                "sql": sql,
                "views": USER_VIEWS,
                "event_columns": EVENT_COLUMNS,
                "memory_mib": self.limits.memory_mib,
                "threads": self.limits.threads,
                "max_result_bytes": self.limits.max_result_bytes,
                "cpu_seconds": int(self.limits.timeout_seconds * self.limits.threads) + 2,
                "parent_pid": os.getpid(),
                "segments": [],
                "database": None,
            }
            if self._mirror is not None:
                mirror = self._mirror
                checkout = await _finish(
                    mirror.log.run_query(lambda: mirror.checkout(workdir)), Checkout.close
                )
                request["segments"] = checkout.paths
            else:
                assert self._database is not None
                request["database"] = str(self._database.absolute())
            return await self._run(request, workdir, checkout)
        finally:
            checkout.close()
            shutil.rmtree(workdir, ignore_errors=True)

    async def _run(self, request: dict[str, object], workdir: Path, checkout: Checkout) -> bytes:
        env = {
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "PATH": os.defpath,
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "MALLOC_ARENA_MAX": "2",  # glibc would reserve 64 MiB of address space per thread
        }
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-B", str(WORKER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
            env=env,
            start_new_session=True,  # its own process group, killed as a whole
            pass_fds=checkout.fds,
        )  # fmt: skip
        self._children.add(child.pid)
        try:
            stdout, stderr = await asyncio.wait_for(
                self._exchange(child, json.dumps(request).encode()), self.limits.timeout_seconds
            )
        except TimeoutError:
            raise SqlError(
                "QueryTimeout",
                f"the query ran longer than {self.limits.timeout_seconds:g} s "
                "(sql_timeout_seconds)",
            ) from None
        finally:
            if child.returncode is None:
                _kill_group(child.pid)
                await _finish(child.wait())
            self._children.discard(child.pid)
        return self._answer(child.returncode, stdout, stderr, workdir)

    async def _exchange(self, child: Process, request: bytes) -> tuple[bytes, bytes]:
        """Send the request, read the answer and wait for the exit. Reads are bounded: the
        server never holds more than one maximal answer for a child."""
        assert child.stdin is not None and child.stdout is not None and child.stderr is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # its status tells
            child.stdin.write(request)
            await child.stdin.drain()
            child.stdin.close()
        stdout, stderr, _ = await asyncio.gather(
            _read_at_most(child.stdout, self.limits.max_result_bytes + (1 << 16)),
            _read_at_most(child.stderr, 1 << 16),
            child.wait(),
        )
        return stdout, stderr

    def _answer(self, status: int | None, stdout: bytes, stderr: bytes, workdir: Path) -> bytes:
        header_line, _, body = stdout.partition(b"\n")
        if status == 0 and header_line:
            try:
                header = json.loads(header_line)
            except ValueError:
                raise SqlError("InternalError", "the query process answered nonsense") from None
            if not header.get("writes_forbidden") and not self._warned:
                self._warned = True
                log.warning(
                    "this kernel has no Landlock: SQL query processes are kept from growing "
                    "files, not from opening them for writing (see docs/provenance.md)"
                )
            if header["ok"]:
                return body
            message = str(header["message"]).replace(str(workdir) + "/", "")
            if (
                self._mirror is not None
                and header["error"] == "InvalidQuery"
                and _names_a_segment(message)
            ):
                raise _MirrorUnreadable(message)
            raise SqlError(str(header["error"]), message)
        if self._stopped:
            raise SqlError("ServiceUnavailable", "the server is shutting down")
        if status == -signal.SIGXCPU:
            raise SqlError("QueryTimeout", "the query used up its CPU time")
        if status is not None and (status < 0 or b"MemoryError" in stderr):
            # Crashes under RLIMIT_AS (a failed allocation outside DuckDB's accounting, or
            # the kernel's OOM killer) end here.
            raise SqlError(
                "QueryMemoryLimit",
                f"the query exceeded the memory limit of {self.limits.memory_mib} MiB "
                f"(sql_memory_mib; the query process ended with status {status})",
            )
        log.error(
            "SQL worker failed (status %s): %s", status, stderr[-2000:].decode(errors="replace")
        )
        raise SqlError("InternalError", "the query process failed; see the server log")


class _MirrorUnreadable(Exception):
    pass


def _names_a_segment(message: str) -> bool:
    """DuckDB could not read a segment (rather than refusing the query)."""
    reading = message.startswith(("IO Error", "Invalid Input Error", "Invalid Error"))
    return reading and (_SEGMENT.search(message) is not None or "/dev/fd/" in message)


async def _read_at_most(stream: asyncio.StreamReader, limit: int) -> bytes:
    """The whole stream, which must not exceed `limit` bytes (the worker keeps its answers
    below it; a child that says more is killed)."""
    data = bytearray()
    while chunk := await stream.read(1 << 16):
        data += chunk
        if len(data) > limit:
            raise SqlError("InternalError", "the query process answered more than it may")
    return bytes(data)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _finish(awaitable: Awaitable[_T], discard: Callable[[_T], object] | None = None) -> _T:
    """Await something short that must complete even if the caller is cancelled (a mirror
    checkout, whose descriptors `discard` then closes; reaping a killed child)."""
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            result = await task
            if discard is not None:
                discard(result)
        raise
