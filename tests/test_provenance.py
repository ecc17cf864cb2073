"""Provenance end to end: real aws cli, rclone and boto3 sessions, then the registry
commands against the running server (--endpoint) and offline (--data-dir)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.clients import BIN, aws, cli, cli_json, rclone
from tests.conftest import ACCESS_KEY, RunningServer


def tool_version(output: str, name: str) -> str:
    token = next(t for t in output.split() if t.startswith(f"{name}/") or t.startswith("v"))
    return token.split("/", 1)[-1]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server, an aws cli + rclone + boto3 session against it, then the server stopped."""
    root = tmp_path_factory.mktemp("provenance")
    server = RunningServer(root / "data").start()
    files = root / "files"
    files.mkdir()
    artifact = files / "app-1.0.tar.gz"
    artifact.write_bytes(os.urandom(64 * 1024))
    synced = files / "synced.bin"
    synced.write_bytes(os.urandom(10_000))
    aws(server, "s3", "mb", "s3://releases")
    aws(
        server,
        "s3",
        "cp",
        str(artifact),
        "s3://releases/app/app-1.0.tar.gz",
        "--metadata",
        "source-repository=https://git.example/app,source-commit=0123abc,build-id=77,"
        "builder=ci-runner-3,pipeline-run=run-9",
    )
    aws(server, "s3", "cp", "s3://releases/app/app-1.0.tar.gz", str(root / "fetched.tar.gz"))
    rclone(
        server,
        "copyto",
        str(synced),
        "s3f:releases/rclone/synced.bin",
        "--header-upload",
        "x-amz-meta-source-commit: feedbee",
        "--header-upload",
        "x-amz-meta-pipeline-run: nightly-12",
    )
    rclone(server, "copyto", "s3f:releases/rclone/synced.bin", str(root / "synced-back.bin"))
    s3 = server.client()
    s3.copy_object(
        Bucket="releases", Key="promoted/app.tar.gz", CopySource="releases/app/app-1.0.tar.gz"
    )
    versions = {
        "aws": subprocess.run(
            [str(BIN / "aws"), "--version"], capture_output=True, text=True
        ).stdout
        + "",
        "rclone": subprocess.run(
            [str(BIN / "rclone"), "version"], capture_output=True, text=True
        ).stdout,
    }
    yield {
        "server": server,
        "root": root,
        "artifact": artifact,
        "synced": synced,
        "versions": versions,
    }
    server.stop()


def wait_for_reads(endpoint: str, url: str, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10  # read records lag by at most ~1 s
    while True:
        history: dict[str, Any] = cli_json("provenance", "--endpoint", endpoint, url)
        if len(history["reads"]) >= count or time.monotonic() > deadline:
            return history
        time.sleep(0.2)


def test_provenance_of_an_aws_cli_upload(session: Any) -> None:
    server = session["server"]
    history = wait_for_reads(server.endpoint, "s3://releases/app/app-1.0.tar.gz", 1)
    write = history["current"]["data"]
    assert write["principal"] == ACCESS_KEY
    assert write["tool"]["name"] == "aws-cli"
    assert write["tool"]["version"] in session["versions"]["aws"]
    assert write["sha256"] == hashlib.sha256(session["artifact"].read_bytes()).hexdigest()
    assert write["attached"] == {
        "source_repository": "https://git.example/app",
        "source_commit": "0123abc",
        "build_id": "77",
        "builder": "ci-runner-3",
        "pipeline_run": "run-9",
    }
    reads = history["reads"]
    assert any(r["data"]["method"] == "GET" and r["data"]["completed"] for r in reads)
    assert all(r["data"]["principal"] == ACCESS_KEY for r in reads)
    assert [c["key"] for c in history["copied_to"]] == ["promoted/app.tar.gz"]


def test_provenance_of_an_rclone_upload(session: Any) -> None:
    history = cli_json(
        "provenance", "--endpoint", session["server"].endpoint, "s3://releases/rclone/synced.bin"
    )
    write = history["current"]["data"]
    assert write["tool"]["name"] == "rclone"
    assert write["tool"]["version"] in session["versions"]["rclone"]
    assert write["sha256"] == hashlib.sha256(session["synced"].read_bytes()).hexdigest()
    assert "mtime" in write["metadata"]  # rclone's own habit, kept as metadata
    assert write["attached"] == {"source_commit": "feedbee", "pipeline_run": "nightly-12"}
    history = wait_for_reads(session["server"].endpoint, "s3://releases/rclone/synced.bin", 1)
    reads = [r["data"] for r in history["reads"] if r["data"]["method"] == "GET"]
    assert reads and reads[-1]["tool"]["name"] == "rclone"
    assert reads[-1]["bytes_sent"] == len(session["synced"].read_bytes())


def test_a_client_hanging_up_is_recorded(session: Any) -> None:
    import socket
    from urllib.parse import urlsplit

    s3 = session["server"].client()
    s3.put_object(Bucket="releases", Key="big/blob.bin", Body=os.urandom(8 * 1024 * 1024))
    url = urlsplit(
        s3.generate_presigned_url(
            "get_object", Params={"Bucket": "releases", "Key": "big/blob.bin"}
        )
    )
    with socket.create_connection((url.hostname, url.port)) as conn:
        conn.sendall(f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
        conn.recv(65536)  # a little of the body, then hang up
    history = wait_for_reads(session["server"].endpoint, "s3://releases/big/blob.bin", 1)
    read = history["reads"][-1]["data"]
    assert read["completed"] is False
    assert read["presigned"] is True
    assert 0 < read["bytes_sent"] < 8 * 1024 * 1024


def test_copy_records_its_source(session: Any) -> None:
    history = cli_json(
        "provenance", "--endpoint", session["server"].endpoint, "s3://releases/promoted/app.tar.gz"
    )
    source = history["current"]["data"]["derived_from"]
    assert source["bucket"] == "releases"
    assert source["key"] == "app/app-1.0.tar.gz"
    assert source["sha256"] == hashlib.sha256(session["artifact"].read_bytes()).hexdigest()
    assert [e["key"] for e in history["derived_from"]] == ["app/app-1.0.tar.gz"]


def test_log_sql_verify_rebuild_against_the_running_server(session: Any) -> None:
    endpoint = session["server"].endpoint
    events = cli_json("log", "--endpoint", endpoint, "--bucket", "releases")["events"]
    assert [e["seq"] for e in events] == sorted((e["seq"] for e in events), reverse=True)
    oldest = cli_json("log", "--endpoint", endpoint, "--bucket", "releases", "--oldest")
    assert [e["seq"] for e in oldest["events"]] == sorted(e["seq"] for e in events)
    assert {"BucketCreated", "ObjectWritten", "ObjectRead"} <= {e["type"] for e in events}
    result = cli_json(
        "sql",
        "--endpoint",
        endpoint,
        "SELECT tool, count(*) AS n FROM writes WHERE key NOT LIKE 'big/%' "
        "GROUP BY tool ORDER BY tool",
    )
    assert result["columns"] == ["tool", "n"]
    assert dict(map(tuple, result["rows"])) == {"aws-cli": 1, "boto3": 1, "rclone": 1}
    refused = cli("sql", "--endpoint", endpoint, "DELETE FROM events", ok=False)
    assert refused.returncode == 2
    refused = cli(
        "sql", "--endpoint", endpoint, "SELECT * FROM read_text('/etc/hostname')", ok=False
    )
    assert refused.returncode == 2
    assert cli_json("verify", "--endpoint", endpoint)["ok"] is True
    rebuilt = cli_json("rebuild", "--endpoint", endpoint)
    assert rebuilt["identical"] is True
    assert rebuilt["rebuilt"]["objects"] == rebuilt["live"]["objects"] >= 3


def test_offline_commands_while_server_runs_are_refused(session: Any) -> None:
    busy = cli("log", "--data-dir", str(session["root"] / "data"), ok=False)
    assert busy.returncode == 2
    assert "--endpoint" in busy.stderr


def test_admin_api_requires_credentials(session: Any) -> None:
    import httpx

    response = httpx.get(f"{session['server'].endpoint}/-/provenance/releases/app/app-1.0.tar.gz")
    assert response.status_code == 403
    assert response.json()["error"] == "AccessDenied"


@pytest.fixture(scope="module")
def stopped(session: Any) -> Path:
    session["server"].stop()
    return Path(session["root"] / "data")


def test_offline_verify_attest_export(session: Any, stopped: Path) -> None:
    report = cli_json("verify", "--data-dir", str(stopped))
    assert report["ok"] is True
    assert report["blobs_checked"] >= 2
    statement = json.loads(
        cli("attest", "--data-dir", str(stopped), "s3://releases/app/app-1.0.tar.gz").stdout
    )
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    digest = hashlib.sha256(session["artifact"].read_bytes()).hexdigest()
    assert statement["subject"] == [
        {"name": "s3://releases/app/app-1.0.tar.gz", "digest": {"sha256": digest}}
    ]
    assert statement["predicate"]["attached"]["source_commit"] == "0123abc"
    out = session["root"] / "export"
    cli("export", "--data-dir", str(stopped), "--format", "parquet", str(out))
    count = duckdb.connect().execute(f"SELECT count(*) FROM '{out / 'events.parquet'}'").fetchone()
    assert count is not None and count[0] == report["events_checked"]
    assert cli_json("rebuild", "--data-dir", str(stopped))["identical"] is True


def tampered_copy(stopped: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(stopped, copy)
    return copy


def tamper(data_dir: Path, *statements: str) -> None:
    db = duckdb.connect(str(data_dir / "registry.duckdb"))
    for statement in statements:
        db.execute(statement)
    db.close()


def findings(data_dir: Path) -> list[dict[str, Any]]:
    result = cli("verify", "--data-dir", str(data_dir), "--json", ok=False)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    return list(report["findings"])


def test_verify_detects_an_edited_event(stopped: Path, tmp_path: Path) -> None:
    data = tampered_copy(stopped, tmp_path)
    tamper(data, "UPDATE events SET data = json_object('principal', 'mallory') WHERE seq = 2")
    found = findings(data)
    assert (found[0]["kind"], found[0]["seq"]) == ("event", 2)
    assert "edited" in found[0]["reason"]
    # The edit also broke the event's shape: the views cannot be rebuilt from it either.
    assert [f["kind"] for f in found[1:]] == ["views"]


def test_verify_detects_a_removed_event(stopped: Path, tmp_path: Path) -> None:
    data = tampered_copy(stopped, tmp_path)
    tamper(data, "DELETE FROM events WHERE seq = 4")
    [finding] = findings(data)
    assert (finding["kind"], finding["seq"]) == ("event", 4)
    assert "missing" in finding["reason"]


def test_verify_detects_reordered_events(stopped: Path, tmp_path: Path) -> None:
    data = tampered_copy(stopped, tmp_path)
    tamper(
        data,
        "UPDATE events SET seq = -1 WHERE seq = 3",
        "UPDATE events SET seq = 3 WHERE seq = 4",
        "UPDATE events SET seq = 4 WHERE seq = -1",
    )
    [finding] = findings(data)
    assert (finding["kind"], finding["seq"]) == ("event", 3)


def test_verify_detects_a_rewritten_event_with_recomputed_hash(
    stopped: Path, tmp_path: Path
) -> None:
    from s3facade.registry.events import canonical_encoding, chain_hash

    data = tampered_copy(stopped, tmp_path)
    db = duckdb.connect(str(data / "registry.duckdb"))
    seq, time_, type_, bucket, key, prev, data_text = db.execute(
        "SELECT seq, time, type, bucket, key, prev_hash, data FROM events WHERE seq = 2"
    ).fetchone()
    forged = {**json.loads(data_text), "principal": "mallory"}  # a plausible forgery
    digest = chain_hash(prev, canonical_encoding(seq, time_, type_, bucket, key, forged))
    db.execute("UPDATE events SET data = ?, hash = ? WHERE seq = 2", [json.dumps(forged), digest])
    db.close()
    finding, *others = findings(data)
    assert (finding["kind"], finding["seq"]) == ("event", 3)  # 3 no longer links to 2
    assert "does not link" in finding["reason"]
    # The forged owner is not the one the server applied to its views either.
    assert [other["kind"] for other in others] == ["views"]


def test_verify_detects_a_corrupted_blob(session: Any, stopped: Path, tmp_path: Path) -> None:
    data = tampered_copy(stopped, tmp_path)
    digest = hashlib.sha256(session["synced"].read_bytes()).hexdigest()
    blob = data / "blobs" / "sha256" / digest[:2] / digest[2:4] / digest
    blob.chmod(0o644)
    raw = bytearray(blob.read_bytes())
    raw[100] ^= 0xFF
    blob.write_bytes(bytes(raw))
    [finding] = findings(data)
    assert (finding["kind"], finding["digest"]) == ("blob", digest)
