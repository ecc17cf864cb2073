"""Admin SQL is read-only by construction: each query runs in a confined child process over
a Parquet mirror of the log (registry.sql). Real servers, real sockets, the real CLI.

The attacks come from the security finding: writes hidden in CTEs, reading the server's
files, leaking its paths, exhausting its memory or time, and a client or a shutdown that
leaves a query behind. After each, the log must be byte-for-byte what it was.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3facade.admin_client import AdminClient, AdminError
from tests.clients import cli, cli_json
from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, RunningServer

TIMEOUT_SECONDS = 3
CONFIG = f"""
[server]
sql_timeout_seconds = {TIMEOUT_SECONDS}
sql_memory_mib = 512
sql_concurrency = 2
gc_interval_seconds = 0
lifecycle_interval_seconds = 0
"""
MARKER = "TOP-SECRET-7f3a9c"  # in every file a query must not read
FOREVER = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
HUGE = "SELECT count(*) FROM (SELECT unnest(generate_series(1, 300000000)))"


@dataclass
class Sandbox:
    server: RunningServer
    root: Path
    config: Path
    secrets: Path  # files outside the mirror that queries try to read

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir


def write_secrets(directory: Path) -> None:
    directory.mkdir()
    (directory / "x.csv").write_text(f"name,value\nkey,{MARKER}\n")
    (directory / "x.json").write_text(json.dumps({"value": MARKER}))
    (directory / "x.txt").write_text(MARKER)
    target = str(directory / "x.parquet").replace("'", "''")
    duckdb.connect().execute(f"COPY (SELECT '{MARKER}' AS value) TO '{target}' (FORMAT parquet)")
    for path in directory.iterdir():  # atime before mtime: the next read moves it (relatime)
        stat = path.stat()
        os.utime(path, (stat.st_mtime - 3600, stat.st_mtime))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("sql-sandbox")
    config = root / "s3facade.toml"
    config.write_text(CONFIG)
    write_secrets(root / "secrets")
    server = RunningServer(root / "data", extra_args=["--config", str(config)]).start()
    s3 = server.client()
    s3.create_bucket(Bucket="evidence")
    for i in range(3):
        s3.put_object(
            Bucket="evidence", Key=f"build/{i}.bin", Body=os.urandom(100 + i),
            Metadata={"source-commit": f"c0ffee{i}"},
        )  # fmt: skip
    s3.get_object(Bucket="evidence", Key="build/0.bin")["Body"].read()
    time.sleep(1.5)  # read records land within a second: the log is quiet from here on
    assert ask(server, "SELECT count(*) FROM events")[0] == 200  # the mirror exists now
    yield Sandbox(server, root, config, root / "secrets")
    server.stop()


def admin(server: RunningServer) -> AdminClient:
    return AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))


def ask(server: RunningServer, sql: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) of one query, signed like any admin request."""
    try:
        return 200, admin(server).json("POST", "/-/admin/sql", body=sql.encode())
    except AdminError as exc:
        return exc.status, {"error": exc.code, "message": str(exc)}


def log_events(server: RunningServer) -> list[dict[str, Any]]:
    """The whole log as the server's own connection reads it (not through SQL)."""
    events: list[dict[str, Any]] = admin(server).json(
        "GET", "/-/admin/log", {"limit": "100000", "oldest": "true"}
    )["events"]
    return events


def workers(server_pid: int) -> list[int]:
    """The server's sql_worker children still alive."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = next(line for line in status.splitlines() if line.startswith("PPid:"))
        zombie = "State:\tZ" in status
        if int(parent.split()[1]) == server_pid and b"sql_worker" in cmdline and not zombie:
            found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def peak_memory_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def files_outside_mirror(sandbox: Sandbox) -> dict[str, tuple[float, ...]]:
    """Every file under the test's root but the mirror and the server's log output: its
    size and mtime, and for the secrets its atime too (a read moves it). The DuckDB log
    itself is compared through `log_events` (the server reads it for every query)."""
    mirror = sandbox.data_dir / "sql-mirror"
    files: dict[str, tuple[float, ...]] = {}
    for path in sandbox.root.rglob("*"):
        if not path.is_file() or mirror in path.parents or path.name.endswith(".log"):
            continue
        stat = path.stat()
        if path.name.startswith("registry.duckdb"):
            files[str(path)] = ()
        elif sandbox.secrets in path.parents:
            files[str(path)] = (stat.st_size, stat.st_mtime, stat.st_atime)
        else:
            files[str(path)] = (stat.st_size, stat.st_mtime)
    return files


def test_writes_hidden_in_ctes_leave_the_log_unchanged(sandbox: Sandbox) -> None:
    server = sandbox.server
    before = log_events(server)
    attacks = [
        "WITH x AS (DELETE FROM events RETURNING 1) SELECT count(*) FROM x",
        "WITH x AS (UPDATE events SET data = '{}' WHERE seq = 2 RETURNING 1) SELECT * FROM x",
        "WITH x AS (INSERT INTO events SELECT * FROM events RETURNING 1) SELECT * FROM x",
        "SELECT 1; DELETE FROM events",
        "DELETE FROM events",
    ]
    for attack in attacks:
        refused = cli("sql", "--endpoint", server.endpoint, attack, ok=False)
        assert refused.returncode == 2, (attack, refused.stdout)
    after = log_events(server)
    assert after == before
    assert len(after) >= 5
    report = cli_json("verify", "--endpoint", server.endpoint)
    assert report["ok"] is True
    assert (report["events_checked"], report["last_hash"]) == (len(before), before[-1]["hash"])


def test_queries_cannot_read_server_files(sandbox: Sandbox) -> None:
    secrets = sandbox.secrets
    before = files_outside_mirror(sandbox)
    log_file = sandbox.data_dir / "registry.duckdb"
    reads = [
        f"SELECT * FROM '{secrets}/x.csv'",
        f"SELECT * FROM read_csv('{secrets}/x.csv')",
        f"SELECT * FROM read_text('{secrets}/x.txt')",
        f"SELECT * FROM read_blob('{secrets}/x.txt')",
        f"SELECT * FROM '{secrets}/*.csv'",
        f"SELECT * FROM glob('{secrets}/*')",
        f"SELECT * FROM '{secrets}/x.json'",
        f"SELECT * FROM read_json('{secrets}/x.json')",
        f"SELECT * FROM '{secrets}/x.parquet'",
        f"SELECT * FROM read_parquet('{secrets}/*.parquet')",
        f"SELECT * FROM parquet_metadata('{secrets}/x.parquet')",
        f"SELECT * FROM read_text('{log_file}')",
        "SELECT * FROM read_text('/proc/self/environ')",
        "SELECT * FROM read_csv('/etc/passwd')",
    ]
    for sql in reads:
        status, answer = ask(sandbox.server, sql)
        assert status == 400, (sql, answer)
        assert answer["error"] == "InvalidQuery"
        assert "Permission Error" in answer["message"]
        assert MARKER not in json.dumps(answer)
    assert files_outside_mirror(sandbox) == before  # nothing read (atime), written or made


def test_attach_install_load_copy_set_pragma_are_refused(sandbox: Sandbox) -> None:
    server, root = sandbox.server, sandbox.root
    before = log_events(server)
    files_before = files_outside_mirror(sandbox)
    statements = [
        f"ATTACH '{sandbox.data_dir}/registry.duckdb' AS log",
        f"ATTACH '{root}/new.duckdb' AS fresh",
        "INSTALL httpfs",
        "LOAD json",
        f"COPY (SELECT * FROM events) TO '{root}/stolen.csv'",
        f"COPY events TO '{root}/stolen.parquet' (FORMAT parquet)",
        f"EXPORT DATABASE '{root}/exported'",
        "SET enable_external_access = true",
        "SET memory_limit = '64GB'",
        "PRAGMA threads = 64",
        "CALL pragma_version()",
        "CHECKPOINT",
    ]
    for statement in statements[:2]:  # through the CLI, as an admin would
        refused = cli("sql", "--endpoint", server.endpoint, statement, "--json", ok=False)
        assert refused.returncode == 2, (statement, refused.stdout)
        assert "Invalid" in refused.stderr, refused.stderr  # InvalidRequest / InvalidQuery
    for statement in statements[2:]:
        status, answer = ask(server, statement)
        assert status == 400, (statement, answer)
        assert answer["error"] in ("InvalidRequest", "InvalidQuery"), answer
    # Even as a SELECT, the configuration cannot be widened: it is locked.
    status, answer = ask(server, "SELECT set_config('enable_external_access', 'true')")
    assert status == 400, answer
    assert log_events(server) == before
    assert files_outside_mirror(sandbox) == files_before
    assert not (root / "stolen.csv").exists() and not (root / "exported").exists()


def test_settings_reveal_no_server_path(sandbox: Sandbox) -> None:
    data_dir = str(sandbox.data_dir.resolve())
    questions = [
        "SELECT current_setting('temp_directory'), current_setting('secret_directory'), "
        "current_setting('allowed_directories'), current_setting('allowed_paths'), "
        "current_setting('home_directory'), current_setting('extension_directory')",
        "SELECT name, value FROM duckdb_settings()",
        "SELECT * FROM duckdb_databases()",
        "SELECT filename FROM read_parquet(current_setting('allowed_paths')[1], filename = true)",
    ]
    for question in questions:
        status, answer = ask(sandbox.server, question)
        assert status == 200, answer
        assert answer["rows"], question
        assert data_dir not in json.dumps(answer), (question, answer)
        assert "S3FACADE" not in json.dumps(answer)


def test_many_statement_shapes_change_nothing(sandbox: Sandbox) -> None:
    server, root = sandbox.server, sandbox.root
    before = log_events(server)
    files_before = files_outside_mirror(sandbox)
    statements = fuzzed_statements(random.Random(20261129), root, sandbox.data_dir, 300)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda sql: ask(server, sql), statements))
    for sql, (status, answer) in zip(statements, answers, strict=True):
        assert status in (200, 400), (sql, status, answer)
        assert MARKER not in json.dumps(answer), sql
    refused = sum(status == 400 for status, _ in answers)
    assert refused > len(statements) // 2  # the shapes mostly attack; they were refused
    assert log_events(server) == before
    assert files_outside_mirror(sandbox) == files_before


def fuzzed_statements(rng: random.Random, root: Path, data_dir: Path, count: int) -> list[str]:
    secret = root / "secrets"
    dml = [
        "DELETE FROM events",
        "DELETE FROM events WHERE seq > 1",
        "UPDATE events SET hash = 'forged' WHERE seq = 1",
        "UPDATE events SET data = json_object('principal', 'mallory')",
        "INSERT INTO events SELECT * FROM events",
        "INSERT INTO events VALUES (999, now(), 'ObjectWritten', 'b', 'k', '{}', 'x', 'y')",
    ]
    other = [
        "DROP TABLE events", "DROP VIEW writes", "CREATE TABLE t AS SELECT 1",
        "TRUNCATE events", "ALTER TABLE events ADD COLUMN forged INT",
        "CREATE OR REPLACE VIEW writes AS SELECT 1", "CREATE MACRO m() AS 1",
        f"COPY events TO '{root}/fuzz-copy.csv'",
        f"COPY (SELECT 1) TO '{root}/fuzz-copy.parquet' (FORMAT parquet)",
        f"ATTACH '{data_dir}/registry.duckdb' AS log2", f"ATTACH '{root}/fuzz.duckdb'",
        "DETACH log", "USE temp", "INSTALL httpfs", "LOAD httpfs", "CHECKPOINT",
        "SET enable_external_access = true", "RESET lock_configuration",
        "SET allowed_directories = ['/']", "PRAGMA memory_limit = '100GB'",
        f"EXPORT DATABASE '{root}/fuzz-export'", "CALL pragma_version()",
        "BEGIN TRANSACTION", "COMMIT", "ROLLBACK", "VACUUM", "ANALYZE",
    ]  # fmt: skip
    reads = [
        f"SELECT * FROM '{secret}/x.csv'", f"SELECT * FROM read_text('{secret}/x.txt')",
        f"SELECT * FROM '{secret}/*'", f"FROM read_json_auto('{secret}/x.json')",
        f"SELECT * FROM read_parquet('{secret}/x.parquet')",
        f"SELECT * FROM read_csv(['{secret}/x.csv'], header = false)",
        f"SELECT * FROM sniff_csv('{secret}/x.csv')",
    ]  # fmt: skip
    selects = [
        "SELECT count(*) FROM events", "FROM events LIMIT 1", "SELECT * FROM writes LIMIT 2",
        "VALUES (1), (2)", "SELECT 1 UNION ALL SELECT 2", "FROM buckets",
    ]  # fmt: skip

    def core() -> str:
        return rng.choice([*dml, *other, *reads, *selects])

    def shaped() -> str:
        shapes: list[Callable[[], str]] = [
            core,
            lambda: f"WITH x AS ({rng.choice(dml)} RETURNING *) SELECT count(*) FROM x",
            lambda: f"WITH x AS ({rng.choice(dml)} RETURNING seq) FROM x",
            lambda: (
                f"SELECT * FROM ({rng.choice(reads + selects)}) UNION ALL "
                f"SELECT * FROM ({rng.choice(reads + selects)})"
            ),
            lambda: f"SELECT (SELECT count(*) FROM ({rng.choice(reads + selects)}))",
            lambda: f"EXPLAIN {core()}",
            lambda: f"EXPLAIN ANALYZE {core()}",
            lambda: f"PREPARE p AS {core()}",
            lambda: f"PREPARE p AS {core()}; EXECUTE p",
            lambda: f"{rng.choice(selects)}; {core()}",
            lambda: f"{core()}; {rng.choice(selects)}",
            lambda: f"VALUES (1); {core()}",
            lambda: f"FROM events; {core()}",
            lambda: f"/* harmless */ {core()} -- really",
            lambda: f"\n  {core()} ;;\n",
            lambda: f"{core()};",
            lambda: f"CALL {rng.choice(['pragma_version()', 'duckdb_settings()'])}",
        ]
        text = rng.choice(shapes)()
        casing = rng.choice([str.upper, str.lower, str])
        # Only the keywords' casing changes; quoted paths must stay as they are.
        return text if "'" in text else casing(text)

    return [shaped() for _ in range(count)]


def test_runaway_queries_are_stopped_and_the_server_keeps_serving(sandbox: Sandbox) -> None:
    server, s3 = sandbox.server, sandbox.server.client()
    assert server.process is not None
    pid = server.process.pid
    with ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        running = [pool.submit(ask, server, FOREVER) for _ in range(2)]
        assert wait_until(lambda: len(workers(pid)) == 2, 2)
        # A third query finds both slots taken: refused at once, not queued.
        asked = time.monotonic()
        status, answer = ask(server, "SELECT 1")
        assert (status, answer["error"]) == (503, "SlowDown")
        assert time.monotonic() - asked < 1
        # S3 requests are answered promptly meanwhile.
        asked = time.monotonic()
        s3.head_object(Bucket="evidence", Key="build/1.bin")
        assert len(s3.get_object(Bucket="evidence", Key="build/1.bin")["Body"].read()) == 101
        assert time.monotonic() - asked < 2
        answers = [future.result() for future in running]
        elapsed = time.monotonic() - started
    for status, answer in answers:
        assert (status, answer["error"]) == (400, "QueryTimeout"), answer
    assert elapsed < TIMEOUT_SECONDS + 3
    for runaway in (HUGE, "SELECT length(repeat('x', 1000000000))"):
        status, answer = ask(server, runaway)
        assert (status, answer["error"]) == (400, "QueryMemoryLimit"), answer
        assert "exceeded the memory limit of 512 MiB" in answer["message"]
    assert wait_until(lambda: not workers(pid), 2)
    assert peak_memory_mib(pid) < 400
    assert ask(server, "SELECT 42 AS answer")[1]["rows"] == [[42]]  # and queries work again


def test_a_client_that_hangs_up_stops_its_query(sandbox: Sandbox) -> None:
    server = sandbox.server
    assert server.process is not None
    pid = server.process.pid
    signed = AWSRequest(method="POST", url=f"{server.endpoint}/-/admin/sql", data=FOREVER.encode())
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(signed)
    head = "".join(f"{name}: {value}\r\n" for name, value in signed.headers.items())
    request = (
        f"POST /-/admin/sql HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{head}"
        f"Content-Length: {len(FOREVER)}\r\n\r\n{FOREVER}"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(request.encode())
        assert wait_until(lambda: len(workers(pid)) == 1, 2)
        hung_up = time.monotonic()
    # Gone long before its timeout would have ended it.
    assert wait_until(lambda: not workers(pid), 1)
    assert time.monotonic() - hung_up < TIMEOUT_SECONDS - 1


def test_queries_see_every_write_and_the_mirror_stays_small(sandbox: Sandbox) -> None:
    server, s3 = sandbox.server, sandbox.server.client()
    mirror = sandbox.data_dir / "sql-mirror"
    # Shrinking batches make every new segment smaller than the last: merges are needed.
    for batch, count in enumerate(range(10, 0, -1)):
        for i in range(count):
            s3.put_object(Bucket="evidence", Key=f"fresh/{batch}/{i}", Body=b"%d" % i)
        status, answer = ask(
            server, f"SELECT count(*) FROM objects WHERE key LIKE 'fresh/{batch}/%'"
        )
        assert answer["rows"] == [[count]], answer
        segments = sorted(p.name for p in mirror.iterdir())
        assert 1 <= len(segments) <= 8, segments
    assert all(name.startswith("events-") for name in segments)
    events = log_events(server)
    status, answer = ask(server, "SELECT count(*), max(seq), max_by(hash, seq) FROM events")
    assert status == 200
    assert answer["rows"] == [[len(events), events[-1]["seq"], events[-1]["hash"]]]


def test_views_and_json_fields_online(sandbox: Sandbox) -> None:
    endpoint = sandbox.server.endpoint
    check_views(lambda sql: cli_json("sql", "--endpoint", endpoint, sql))


def check_views(query: Callable[[str], Any]) -> None:
    """The views and JSON fields, in one query (each query is a process or two)."""
    answer = query(
        """SELECT
        (SELECT list([w.key, w.sha256, e.data->>'sha256'] ORDER BY w.key) FROM writes w
         JOIN events e USING (seq) WHERE w.key LIKE 'build/%') AS writes,
        (SELECT attached FROM writes WHERE key = 'build/0.bin') AS attached,
        (SELECT [key, method, status::VARCHAR] FROM reads WHERE key = 'build/0.bin' LIMIT 1)
            AS read,
        (SELECT list([name, owner]) FROM buckets) AS buckets,
        (SELECT count(*) FROM objects WHERE key LIKE 'build/%') AS objects,
        (SELECT sum(range) FROM range(4)) AS table_function"""
    )
    assert answer["columns"] == [
        "writes", "attached", "read", "buckets", "objects", "table_function"
    ]  # fmt: skip
    [[writes, attached, read, buckets, objects, table_function]] = answer["rows"]
    assert [key for key, _, _ in writes] == ["build/0.bin", "build/1.bin", "build/2.bin"]
    assert all(view == raw and len(view) == 64 for _, view, raw in writes)
    assert attached == {"source_commit": "c0ffee0"}  # a JSON value, parsed
    assert read == ["build/0.bin", "GET", "200"]
    assert buckets == [["evidence", ACCESS_KEY]]
    assert objects == 3
    # Table functions that touch no file are allowed now (the old check refused them all).
    assert table_function == 6


def test_sigterm_during_a_query_stops_the_server_at_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("sql-sigterm")
    config = root / "s3facade.toml"
    config.write_text(CONFIG.replace(f"= {TIMEOUT_SECONDS}\n", "= 60\n"))  # a long timeout
    server = RunningServer(root / "data", extra_args=["--config", str(config)]).start()
    assert server.process is not None
    process = server.process
    try:
        server.client().create_bucket(Bucket="busy")
        # Offline, the child cannot attach a log the server holds: a clear message.
        busy = cli("sql", "--data-dir", str(server.data_dir), "SELECT 1", ok=False)
        assert busy.returncode == 2
        assert "--endpoint" in busy.stderr
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(ask, server, FOREVER)
            assert wait_until(lambda: len(workers(process.pid)) == 1, 5)
            [worker] = workers(process.pid)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
            assert time.monotonic() - signalled < 5
            status, answer = running.result(timeout=5)
        assert (status, answer["error"]) == (503, "ServiceUnavailable"), answer
        assert not Path(f"/proc/{worker}").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        server.process = None


@pytest.fixture(scope="module")
def stopped(sandbox: Sandbox) -> tuple[Path, list[dict[str, Any]]]:
    """The server's data dir once it stopped, and its log as the server last read it."""
    events = log_events(sandbox.server)
    sandbox.server.stop()
    return sandbox.data_dir, events


def test_offline_queries_use_the_same_sandbox(
    sandbox: Sandbox, stopped: tuple[Path, list[dict[str, Any]]]
) -> None:
    data_dir, events = stopped
    check_views(lambda sql: cli_json("sql", "--data-dir", str(data_dir), sql))
    for attack in (
        "WITH x AS (DELETE FROM events RETURNING 1) SELECT count(*) FROM x",
        f"SELECT * FROM '{sandbox.secrets}/x.csv'",
        f"COPY events TO '{sandbox.root}/offline.csv'",
    ):
        refused = cli("sql", "--data-dir", str(data_dir), attack, ok=False)
        assert refused.returncode == 2, refused.stdout
        assert MARKER not in refused.stdout + refused.stderr
    # The config file's limits apply offline too.
    config = ["--config", str(sandbox.config)]
    refused = cli("sql", "--data-dir", str(data_dir), *config, HUGE, ok=False)
    assert "exceeded the memory limit of 512 MiB" in refused.stderr
    report = cli_json("verify", "--data-dir", str(data_dir))
    assert report["ok"] is True
    # One more event than the server last showed: it signed its head when it stopped.
    assert report["events_checked"] == len(events) + 1
    assert report["signed_heads"]["last_signed_seq"] == events[-1]["seq"]
    assert "evidence" in cli("sql", "--data-dir", str(data_dir), "FROM buckets").stdout  # a table


# Runs the worker's own confinement and database set-up, then executes statements raw:
# whole strings, every statement in them, no statement-type check. What stays unchanged
# then is owed to the construction alone.
RAW_HARNESS = """
import importlib.util, json, sys
job = json.loads(sys.stdin.read())
spec = importlib.util.spec_from_file_location("sql_worker", job["worker"])
worker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(worker)
writes_forbidden = worker.confine(job["requests"][0])
outcomes = {"ran": 0, "failed": 0}
for request in job["requests"]:
    for statement in job["statements"]:
        database = worker.open_database(request)
        try:
            database.execute(statement)
            outcomes["ran"] += 1
        except Exception:
            outcomes["failed"] += 1
        database.close()
print(json.dumps({"writes_forbidden": writes_forbidden, **outcomes}))
"""


def test_without_the_statement_checks_nothing_changes_either(
    sandbox: Sandbox, stopped: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    import hashlib

    from s3facade.registry import sql_worker
    from s3facade.registry.event_store import EVENT_COLUMNS, USER_VIEWS

    data_dir, _ = stopped
    mirror = data_dir / "sql-mirror"
    segments = sorted(p.name for p in mirror.iterdir())
    for name in segments:  # the child's view of the mirror: hard links in its own directory
        os.link(mirror / name, tmp_path / name)
    digests = {name: hashlib.sha256((mirror / name).read_bytes()).hexdigest() for name in segments}
    before = cli_json("verify", "--data-dir", str(data_dir))
    files_before = files_outside_mirror(sandbox)
    log_file = data_dir / "registry.duckdb"
    escapes = [
        f"COMMIT; DETACH log; ATTACH '{log_file}' AS w; DELETE FROM w.events",
        f"COMMIT; DETACH log; ATTACH '{log_file}' AS w; UPDATE w.events SET hash = 'x'",
        f"COMMIT; COPY (SELECT 1) TO '{segments[0]}' (USE_TMP_FILE false)",
        f"COMMIT; COPY (SELECT 1) TO '{segments[-1]}' (FORMAT parquet, USE_TMP_FILE false)",
        f"COMMIT; COPY (SELECT 1) TO '{log_file}.wal' (USE_TMP_FILE false)",
        "COMMIT; CREATE TABLE t AS SELECT 1; CHECKPOINT",
    ]
    statements = escapes + fuzzed_statements(random.Random(4), sandbox.root, data_dir, 120)
    common = {
        "sql": "", "views": USER_VIEWS, "event_columns": EVENT_COLUMNS, "memory_mib": 512,
        "threads": 1, "cpu_seconds": 120,
        "parent_pid": os.getpid(), "max_result_bytes": 1 << 20,
    }  # fmt: skip
    job = {
        "worker": sql_worker.__file__,
        "statements": statements,
        "requests": [
            {**common, "database": str(log_file), "segments": []},
            {**common, "database": None, "segments": segments},
        ],
    }
    result = subprocess.run(
        [sys.executable, "-I", "-B", "-c", RAW_HARNESS],
        input=json.dumps(job), capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={"HOME": str(tmp_path), "PATH": os.defpath, "MALLOC_ARENA_MAX": "2"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["writes_forbidden"] is True  # Landlock: no file opens for writing
    assert outcome["ran"] + outcome["failed"] == 2 * len(statements)
    assert outcome["ran"] > 0  # the harness did run statements
    assert files_outside_mirror(sandbox) == files_before
    report = cli_json("verify", "--data-dir", str(data_dir))
    assert report["ok"] is True
    assert (report["events_checked"], report["last_hash"]) == (
        before["events_checked"],
        before["last_hash"],
    )
    assert sorted(p.name for p in mirror.iterdir()) == segments
    assert {n: hashlib.sha256((mirror / n).read_bytes()).hexdigest() for n in segments} == digests
