"""`verify --incremental`: from the last clean verify's head, only the newer events and the
blobs written since; a rewrite before that point is still caught."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.clients import cli, cli_json
from tests.conftest import RunningServer
from tests.test_log_trust import put_objects, rewrite_log, start


def verified(data_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((data_dir.parent / "data.log-anchor.verified").read_text())
    return data


def test_incremental_verify_walks_only_what_came_since(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start(data_dir)
    try:
        put_objects(server, "first", 20)
        whole = cli_json("verify", "--endpoint", server.endpoint)
        assert whole["ok"] is True and whole["incremental_from"] is None
        assert verified(data_dir)["seq"] == whole["last_seq"]
        assert whole["blobs_checked"] == 20

        put_objects(server, "second", 5)
        again = cli_json("verify", "--endpoint", server.endpoint, "--incremental")
        assert again["ok"] is True
        assert again["incremental_from"] == whole["last_seq"]
        assert again["events_checked"] == again["last_seq"] - whole["last_seq"]
        assert again["blobs_checked"] == 5  # only the new objects' bytes
        assert verified(data_dir)["seq"] == again["last_seq"]

        put_objects(server, "third", 1)
        newest = _blob_of(server, "third", "obj-0")
        newest.chmod(0o644)
        newest.write_bytes(b"not what was written")
        report = cli("verify", "--endpoint", server.endpoint, "--incremental", "--json", ok=False)
        findings = json.loads(report.stdout)["findings"]
        assert report.returncode == 1 and [f["kind"] for f in findings] == ["blob"]
    finally:
        server.stop()


def _blob_of(server: RunningServer, bucket: str, key: str) -> Path:
    digest = cli_json("provenance", f"s3://{bucket}/{key}", "--endpoint", server.endpoint)
    sha = digest["current"]["data"]["sha256"]
    return server.data_dir / "blobs" / "sha256" / sha[:2] / sha[2:4] / sha


def test_incremental_verify_catches_a_rewrite_before_its_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start(data_dir)
    put_objects(server, "early", 5)
    assert cli_json("verify", "--endpoint", server.endpoint)["ok"] is True
    server.stop()

    def forge(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        events[2]["data"]["principal"] = "mallory"
        return events

    rewrite_log(data_dir / "registry.duckdb", forge)
    report = cli("verify", "--data-dir", str(data_dir), "--incremental", "--json", ok=False)
    data = json.loads(report.stdout)
    assert report.returncode == 1
    assert data["incremental_from"] is None  # it fell back to the whole walk
    assert "verified" in {f["kind"] for f in data["findings"]}
