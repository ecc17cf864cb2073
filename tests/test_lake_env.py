"""The shared log's own environment (docs/scale-out.md): `make lake-env` installs DuckDB 1.5.5
with DuckLake's extensions from pinned wheels, and the lake process attaches a DuckLake,
writes and reads an event row with nothing downloaded at run time."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from s3facade.registry.errors import LogUnavailable
from s3facade.registry.lake_store import LakeProcess, LakeSettings

ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "registry" / "lake_child.py"
LAKE_PYTHON = ROOT / os.environ.get("S3FACADE_LAKE_VENV", ".venv-lake") / "bin" / "python"


def lake_python() -> Path:
    if not LAKE_PYTHON.exists():  # `make test` builds it; a bare pytest run builds it here
        subprocess.run(["make", "-C", str(ROOT), "lake-env"], check=True, timeout=900)
    return LAKE_PYTHON


def test_the_lake_process_runs_on_its_own_pinned_duckdb_offline() -> None:
    # No proxy and no network: extensions must come from the install, not be downloaded.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    env |= {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    done = subprocess.run(
        [str(lake_python()), str(CHILD), "--check"],
        capture_output=True, text=True, timeout=120, env=env, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["duckdb"] == "1.5.5"
    assert {"ducklake", "httpfs", "postgres_scanner"} <= set(found["loaded"])
    assert found["rows"] == [[1, "check"]]
    assert duckdb.__version__.startswith("2.")  # the gateway's own stays on 2.0


def test_the_lake_process_imports_nothing_of_the_gateway() -> None:
    """It runs under another DuckDB: an import of the project would load 2.0-only code."""
    tree = ast.parse(CHILD.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    assert imported - {"__future__", "duckdb"} <= set(sys.stdlib_module_names)


def test_a_lake_process_that_does_not_answer_is_killed_and_the_call_fails(
    tmp_path: Path,
) -> None:
    """A hung lake process (a store that never answers) must not hold a commit, and the
    deployment's lock, for ever."""
    hung = tmp_path / "python"
    hung.write_text('#!/bin/sh\necho $$ > "$0.pid"\nexec sleep 600\n')
    hung.chmod(0o755)
    settings = LakeSettings(
        catalog="dbname=unused", data_path="s3://unused/", endpoint="http://127.0.0.1:9",
        gateway_id="gw1", access_key_id="k", secret_access_key="s", python=hung,
    )  # fmt: skip
    process = LakeProcess(settings, "writer", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(LogUnavailable, match="no answer in 1 s"):
        process.call("query", "SELECT 1", [])
    assert time.monotonic() - started < 10
    pid = int((tmp_path / "python.pid").read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left behind
        os.kill(pid, 0)
