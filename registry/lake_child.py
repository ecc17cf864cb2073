"""The shared log's own process (docs/scale-out.md; not in service yet).

Run by the Python of `.venv-lake` (`make lake-env`): DuckDB 1.5.5 and the DuckLake, httpfs
and postgres extensions from PyPI, which cannot load into the gateway's DuckDB 2.0. So this
file is executed by path, never imported by the gateway, and uses only the standard
library and duckdb.

    .venv-lake/bin/python registry/lake_child.py --check

attaches a DuckLake in a temporary directory, writes and reads one event row, and prints
what it found as JSON: the environment works offline, from its pinned wheels alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

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
    args = parser.parse_args()
    if not args.check:
        parser.error("nothing to do (--check)")
    print(json.dumps(check()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
