"""The SQL sandbox's costs: one query's child process, and keeping the Parquet mirror fresh.

Runs the registry's SQL as a library (no HTTP) on a temp dir with a log of N write-sized
events: the mirror's first build (all N events), a refresh after k new events (what a
query pays when k events arrived since the previous one), the check of an existing mirror
at a server's first query, then the median time of a query online (mirror refresh + child)
and offline (the child attaches the log file).

    .venv/bin/python -m bench.sql_sandbox [--events 100000] [--queries 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from s3facade.registry.events import Event, EventType
from s3facade.registry.log import EventLog
from s3facade.registry.sql import SqlLimits, SqlSandbox
from s3facade.registry.sql_mirror import EventMirror


def write_event(n: int) -> Event:
    data = {
        "principal": "bench", "client_address": "127.0.0.1:1", "user_agent": "bench/1.0",
        "tool": {"name": "bench", "version": "1.0"}, "request_id": f"R{n:016d}",
        "version_id": "null", "size": n, "sha256": f"{n:064x}", "etag": f"{n:032x}",
        "metadata": {"build-id": str(n)}, "tags": {}, "attached": {}, "backend_id": "local",
    }  # fmt: skip
    return Event(EventType.OBJECT_WRITTEN, "bench", f"key/{n}", data)


async def fill(log: EventLog, first: int, count: int) -> None:
    for start in range(first, first + count, 1000):
        await log.append([write_event(n) for n in range(start, min(start + 1000, first + count))])


def refresh(mirror: EventMirror, target: Path) -> None:
    mirror.checkout(target).close()


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


async def median_seconds(sandbox: SqlSandbox, sql: str, times: int) -> float:
    durations = []
    for _ in range(times):
        started = time.perf_counter()
        await sandbox.query(sql)
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


async def run(root: Path, events: int, queries: int) -> dict[str, float]:
    log = EventLog(root / "registry.duckdb")
    await fill(log, 0, events)
    mirror = EventMirror.beside(log)
    work = root / "work"
    work.mkdir()
    result = {"events": float(events)}
    result["mirror_build_s"] = timed(partial(refresh, mirror, work))
    for new in (1, 100, 10_000):
        await fill(log, log.last_seq, new)
        target = root / f"work-{new}"
        target.mkdir()
        result[f"refresh_{new}_new_s"] = timed(partial(refresh, mirror, target))
    result["segments"] = float(len(mirror.segments))
    restarted = root / "work-restart"  # a server start: every segment checked once
    restarted.mkdir()
    result["mirror_check_at_start_s"] = timed(partial(refresh, EventMirror.beside(log), restarted))
    online = SqlSandbox.online(mirror, SqlLimits())
    answer = json.loads(await online.query("SELECT count(*) FROM writes"))
    assert answer["rows"] == [[log.last_seq]]
    for name, sql in QUERIES.items():
        result[f"online_{name}_median_s"] = await median_seconds(online, sql, queries)
    await log.close()
    offline = SqlSandbox.offline(root / "registry.duckdb", SqlLimits())
    for name, sql in QUERIES.items():
        result[f"offline_{name}_median_s"] = await median_seconds(offline, sql, queries)
    return result


QUERIES = {
    "select_1": "SELECT 1",  # the child's start-up alone
    "count_writes": "SELECT count(*) FROM writes",
    "sha256_of_one_key": "SELECT sha256 FROM writes WHERE key = 'key/4242'",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="s3facade-bench-") as root:
        print(json.dumps(asyncio.run(run(Path(root), args.events, args.queries)), indent=2))


if __name__ == "__main__":
    main()
