"""Why the views live in SQLite: the same table of N versions in SQLite and in DuckDB.

    .venv/bin/python -m bench.view_store_choice [--versions 100000]

Each store gets the versions table as the views need it (bucket, key, seq as the primary
key, a version row's columns), filled in transactions of 10,000 rows, then: point lookups
of a key's newest version (what every HEAD and GET does) and pages of 1,000 keys after a
random key (what every listing does), p50/p99, and the process's RSS. Run once per store
in a child process, so one store's memory does not count against the other.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS_PER_TRANSACTION = 10_000


def keys(count: int) -> list[str]:
    return [f"builds/{n % 1000:04d}/artifact-{n:09d}.bin" for n in range(count)]


def _sqlite(path: Path, names: list[str]) -> dict[str, Any]:
    import sqlite3

    db = sqlite3.connect(path / "views.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE versions (bucket TEXT, key TEXT, seq INTEGER, version_id TEXT, "
        "size INTEGER, sha256 TEXT, extra TEXT, PRIMARY KEY (bucket, key, seq DESC)) WITHOUT ROWID"
    )
    began = time.perf_counter()
    for first in range(0, len(names), ROWS_PER_TRANSACTION):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO versions VALUES (?, ?, ?, 'null', 10, ?, '{}')",
            [
                ("b", name, n, f"{n:064x}")
                for n, name in enumerate(names[first : first + ROWS_PER_TRANSACTION], first)
            ],
        )
        db.execute("COMMIT")
    inserts = len(names) / (time.perf_counter() - began)
    return _measure(db, names, inserts)


def _duckdb(path: Path, names: list[str]) -> dict[str, Any]:
    import duckdb

    db = duckdb.connect(str(path / "views.duckdb"))
    db.execute(
        "CREATE TABLE versions (bucket VARCHAR, key VARCHAR, seq BIGINT, version_id VARCHAR, "
        "size INTEGER, sha256 VARCHAR, extra VARCHAR, PRIMARY KEY (bucket, key, seq))"
    )
    began = time.perf_counter()
    for first in range(0, len(names), ROWS_PER_TRANSACTION):
        db.executemany(
            "INSERT INTO versions VALUES (?, ?, ?, 'null', 10, ?, '{}')",
            [
                ("b", name, n, f"{n:064x}")
                for n, name in enumerate(names[first : first + ROWS_PER_TRANSACTION], first)
            ],
        )
    inserts = len(names) / (time.perf_counter() - began)
    return _measure(db, names, inserts)


def _measure(db: Any, names: list[str], inserts: float) -> dict[str, Any]:
    rng = random.Random(1)
    point, page = [], []
    for _ in range(500):
        began = time.perf_counter()
        db.execute(
            "SELECT * FROM versions WHERE bucket = ? AND key = ? ORDER BY seq DESC LIMIT 1",
            ["b", rng.choice(names)],
        ).fetchone()
        point.append((time.perf_counter() - began) * 1000)
    for _ in range(50):
        began = time.perf_counter()
        db.execute(
            "SELECT key FROM versions WHERE bucket = ? AND key > ? ORDER BY key LIMIT 1000",
            ["b", rng.choice(names)],
        ).fetchall()
        page.append((time.perf_counter() - began) * 1000)
    point.sort()
    page.sort()
    rss = int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
    return {
        "inserts_per_s": round(inserts),
        "point_ms": [round(point[250], 3), round(point[494], 3)],
        "page_ms": [round(page[25], 2), round(page[49], 2)],
        "rss_mib": round(rss),
    }


def child(store: str, versions: int) -> None:
    with tempfile.TemporaryDirectory(prefix="s3facade-store-") as tmp:
        run = _sqlite if store == "sqlite" else _duckdb
        print(json.dumps(run(Path(tmp), keys(versions))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", type=int, default=100_000)
    parser.add_argument("--child", choices=["sqlite", "duckdb"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.versions)
        return
    results = {}
    for store in ("sqlite", "duckdb"):
        output = subprocess.run(
            [sys.executable, "-m", "bench.view_store_choice", "--child", store,
             "--versions", str(args.versions)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        results[store] = json.loads(output)
    sqlite, duckdb = results["sqlite"], results["duckdb"]
    results["ratio_sqlite_over_duckdb"] = {
        "inserts_per_s": round(sqlite["inserts_per_s"] / duckdb["inserts_per_s"], 1),
        "point_p99": round(sqlite["point_ms"][1] / duckdb["point_ms"][1], 3),
        "page_p99": round(sqlite["page_ms"][1] / duckdb["page_ms"][1], 3),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
