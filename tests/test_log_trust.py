"""Findings 1, 4 and 5 of the trust issue: the log cannot shrink or be rewritten unnoticed.

A lost, truncated or garbled WAL (DuckDB drops what it cannot read, silently), a log
re-hashed after an edit, an edited tail, a missing log: the server refuses to start, offline
gc refuses to delete bytes, verify reports it; accepting a loss is explicit and recorded.
Every test drives a real `s3facade serve` process and the real CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.clients import cli, cli_json
from tests.conftest import RunningServer

Edit = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
OBJECTS = 30


def server_config(path: Path, **settings: Any) -> Path:
    lines = ["[server]"] + [f"{name} = {json.dumps(value)}" for name, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def start(data_dir: Path, *args: str, **settings: Any) -> RunningServer:
    config = server_config(data_dir.parent / "s3facade.toml", gc_interval_seconds=0, **settings)
    return RunningServer(data_dir, extra_args=["--config", str(config), *args]).start()


def refused_start(data_dir: Path, *args: str) -> str:
    """The server's message when it will not start."""
    with pytest.raises(RuntimeError, match="server exited") as refused:
        start(data_dir, *args)
    return str(refused.value)


def blob_files(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "blobs" / "sha256").rglob("*") if p.is_file()}


def put_objects(server: RunningServer, bucket: str, count: int = OBJECTS) -> dict[str, bytes]:
    s3 = server.client()
    s3.create_bucket(Bucket=bucket)
    bodies = {f"obj-{n}": f"{bucket} object {n} ".encode() * (n + 1) for n in range(count)}
    for key, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return bodies


def log_files(data_dir: Path) -> list[Path]:
    return [data_dir / "registry.duckdb", data_dir / "registry.duckdb.wal"]


def rewrite_log(db: Path, edit: Edit) -> None:
    """What an attacker with the data dir does: edit events, then recompute every hash."""
    from s3facade.registry.events import GENESIS_HASH, canonical_encoding, chain_hash

    con = duckdb.connect(str(db))
    columns = ["seq", "time", "type", "bucket", "key", "data", "prev_hash", "hash"]
    rows = con.execute(f"SELECT {', '.join(columns)} FROM events ORDER BY seq").fetchall()
    events = edit(
        [dict(zip(columns, row, strict=True)) | {"data": json.loads(row[5])} for row in rows]
    )
    previous = GENESIS_HASH
    for seq, event in enumerate(events, 1):
        canonical = canonical_encoding(
            seq, event["time"], event["type"], event["bucket"], event["key"], event["data"]
        )
        event |= {"seq": seq, "prev_hash": previous, "hash": chain_hash(previous, canonical)}
        previous = event["hash"]
    con.execute("DELETE FROM events")
    for event in events:
        values = [event[c] if c != "data" else json.dumps(event["data"]) for c in columns]
        con.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
    con.close()


# -- finding 4: a lost or damaged WAL -----------------------------------------------------


@pytest.fixture
def killed_with_wal(tmp_path: Path) -> tuple[Path, dict[str, bytes], Path]:
    """A server killed with SIGKILL whose acknowledged writes live only in the WAL; a copy
    of its log files is kept in `saved`."""
    data_dir = tmp_path / "data"
    server = start(data_dir, checkpoint_wal_mib=1024)  # never checkpoints during the test
    bodies = put_objects(server, "wal-loss")
    server.stop(signal.SIGKILL)
    assert (data_dir / "registry.duckdb.wal").stat().st_size > 0
    saved = tmp_path / "saved"
    saved.mkdir()
    for path in log_files(data_dir):
        shutil.copy2(path, saved / path.name)
    return data_dir, bodies, saved


def restore(saved: Path, data_dir: Path) -> None:
    for path in log_files(data_dir):
        shutil.copy2(saved / path.name, path)


def remove_wal(wal: Path) -> None:
    wal.unlink()


def garble_wal(wal: Path) -> None:
    wal.write_bytes(os.urandom(wal.stat().st_size))


def truncate_wal(wal: Path) -> None:
    os.truncate(wal, wal.stat().st_size // 2)


@pytest.mark.parametrize("damage", [remove_wal, garble_wal, truncate_wal])
def test_a_lost_wal_is_refused_and_its_bytes_are_kept(
    killed_with_wal: tuple[Path, dict[str, bytes], Path], damage: Callable[[Path], None]
) -> None:
    data_dir, bodies, saved = killed_with_wal
    blobs = blob_files(data_dir)
    assert len(blobs) == OBJECTS
    damage(data_dir / "registry.duckdb.wal")

    message = refused_start(data_dir)
    assert "anchor" in message and "--accept-log-loss" in message
    assert "Traceback" not in message

    gc = cli("gc", "--data-dir", str(data_dir), ok=False)  # offline gc: the same check
    assert gc.returncode == 2 and "anchor" in gc.stderr
    assert blob_files(data_dir) == blobs  # not one acknowledged blob deleted

    verify = cli("verify", "--data-dir", str(data_dir), "--json", ok=False)
    assert verify.returncode == 1 and "Traceback" not in verify.stderr
    assert "anchor" in {f["kind"] for f in json.loads(verify.stdout)["findings"]}

    restore(saved, data_dir)  # the documented recovery: the log from a backup
    server = start(data_dir)
    try:
        s3 = server.client()
        for key, body in bodies.items():
            assert s3.get_object(Bucket="wal-loss", Key=key)["Body"].read() == body
        assert cli_json("verify", "--endpoint", server.endpoint)["ok"] is True
    finally:
        server.stop()


def test_accepting_a_loss_is_recorded_and_gc_keeps_the_orphaned_bytes(
    killed_with_wal: tuple[Path, dict[str, bytes], Path],
) -> None:
    data_dir, _, _ = killed_with_wal
    blobs = blob_files(data_dir)
    remove_wal(data_dir / "registry.duckdb.wal")

    server = start(data_dir, "--accept-log-loss")
    try:
        events = cli_json("log", "--endpoint", server.endpoint)["events"]
        [accepted] = [e for e in events if e["type"] == "LogLossAccepted"]
        assert accepted["data"]["anchor"]["seq"] > accepted["data"]["head"]["seq"]
        assert {b["sha256"] for b in accepted["data"]["kept_blobs"]} == blobs
        report = cli_json("gc", "--endpoint", server.endpoint)
        assert report["collected"] == []
        assert blob_files(data_dir) == blobs
    finally:
        server.stop()
    server = start(data_dir)  # anchored anew: no flag needed any more
    server.stop()


def test_a_missing_log_beside_stored_blobs_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start(data_dir)
    put_objects(server, "missing-log", 3)
    server.stop()
    for path in log_files(data_dir):
        path.unlink(missing_ok=True)
    assert "missing" in refused_start(data_dir)
    (tmp_path / "data.log-anchor").unlink()  # the anchor gone too: the blobs still tell
    assert "holds blobs" in refused_start(data_dir)
    assert len(blob_files(data_dir)) == 3


def test_the_wal_is_checkpointed_while_serving(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start(data_dir, checkpoint_wal_mib=1)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="checkpoints")
        wal = data_dir / "registry.duckdb.wal"
        largest = 0
        metadata = {"note": "x" * 1500}  # ~2 KiB per event: ~4 MiB of log in all
        for n in range(2000):
            s3.put_object(Bucket="checkpoints", Key=f"k{n}", Body=b"", Metadata=metadata)
            if n % 50 == 0 and wal.exists():
                largest = max(largest, wal.stat().st_size)
        # ~3 MiB of events went through a WAL that never held more than about 1 MiB.
        assert (data_dir / "registry.duckdb").stat().st_size > 1 << 20  # folded in
        assert 0 < largest < 2 << 20
    finally:
        server.stop()


# -- finding 5: a re-hashed or edited log -------------------------------------------------


@pytest.fixture
def locked_then_stopped(tmp_path: Path) -> tuple[Path, str]:
    """A stopped server whose log holds a COMPLIANCE-locked version; returns the data dir
    and the log head (SEQ:HASH) as an auditor would have saved it."""
    data_dir = tmp_path / "data"
    server = start(data_dir)
    s3 = server.client()
    s3.create_bucket(Bucket="evidence", ObjectLockEnabledForBucket=True)
    s3.put_object(
        Bucket="evidence",
        Key="release.tar",
        Body=b"the release",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate="2999-01-01T00:00:00Z",
    )
    put_objects(server, "others", 5)
    head = cli_json("verify", "--endpoint", server.endpoint)
    server.stop()
    return data_dir, f"{head['last_seq']}:{head['last_hash']}"


def strip_lock(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        if event["key"] == "release.tar":
            event["data"].update(lock_mode=None, retain_until=None, legal_hold=False)
    return events


def drop_signed_heads(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in strip_lock(events) if e["type"] != "LogHeadSigned"]


def delete_release(server: RunningServer) -> int:
    s3 = server.client()
    version = s3.list_object_versions(Bucket="evidence")["Versions"][0]["VersionId"]
    try:
        s3.delete_object(Bucket="evidence", Key="release.tar", VersionId=version)
    except s3.exceptions.ClientError as error:
        return int(error.response["ResponseMetadata"]["HTTPStatusCode"])
    return 204


def test_a_rehashed_log_is_refused_at_start(locked_then_stopped: tuple[Path, str]) -> None:
    data_dir, _ = locked_then_stopped
    rewrite_log(data_dir / "registry.duckdb", strip_lock)
    assert "rewritten" in refused_start(data_dir)
    assert "anchor" in refused_start(data_dir)


def test_a_rehashed_log_without_its_anchor_is_caught_by_the_signed_heads(
    locked_then_stopped: tuple[Path, str],
) -> None:
    data_dir, _ = locked_then_stopped
    rewrite_log(data_dir / "registry.duckdb", strip_lock)
    (data_dir.parent / "data.log-anchor").unlink()
    assert "signed head" in refused_start(data_dir)
    verify = cli("verify", "--data-dir", str(data_dir), "--json", ok=False)
    kinds = {f["kind"] for f in json.loads(verify.stdout)["findings"]}
    assert verify.returncode == 1 and "signature" in kinds


def test_a_saved_head_proves_a_stripped_log_was_rewritten(
    locked_then_stopped: tuple[Path, str],
) -> None:
    """The strongest attack on the data dir alone: re-hash, remove every signed head and
    the anchor. The server then starts (a log from before anchors looks the same, and says
    so in its log), but a head saved elsewhere no longer fits, and the lock's removal shows
    in the log as an anchor created late."""
    data_dir, saved_head = locked_then_stopped
    rewrite_log(data_dir / "registry.duckdb", drop_signed_heads)
    (data_dir.parent / "data.log-anchor").unlink()
    server = start(data_dir)
    try:
        report = cli(
            "verify", "--endpoint", server.endpoint, "--head", saved_head, "--json", ok=False
        )
        assert report.returncode == 1
        assert "head" in {f["kind"] for f in json.loads(report.stdout)["findings"]}
        types = [e["type"] for e in cli_json("log", "--endpoint", server.endpoint)["events"]]
        assert "LogAnchorCreated" in types
    finally:
        server.stop()


def test_the_intact_log_extends_its_saved_head(locked_then_stopped: tuple[Path, str]) -> None:
    data_dir, saved_head = locked_then_stopped
    server = start(data_dir)
    try:
        put_objects(server, "later", 2)
        report = cli_json("verify", "--endpoint", server.endpoint, "--head", saved_head)
        assert report["ok"] is True
        assert report["signed_heads"]["last_signed_seq"] is not None
        assert delete_release(server) == 403  # the lock still holds
    finally:
        server.stop()
    assert cli_json("verify", "--data-dir", str(data_dir), "--head", saved_head)["ok"] is True


def test_an_edited_tail_is_refused(locked_then_stopped: tuple[Path, str]) -> None:
    """Edited without re-hashing: the events after the anchor are re-hashed at start."""
    data_dir, _ = locked_then_stopped
    con = duckdb.connect(str(data_dir / "registry.duckdb"))
    seq = con.execute("SELECT max(seq) FROM events").fetchone()[0]  # type: ignore[index]
    con.execute('UPDATE events SET data = \'{"principal":"someone-else"}\' WHERE seq = ?', [seq])
    con.close()
    assert "edited" in refused_start(data_dir)


def test_verify_reports_an_unknown_event_type_without_a_traceback(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start(data_dir)
    put_objects(server, "unknown-type", 1)
    server.stop()

    def forge(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*events, {**events[-1], "type": "ObjectTeleported"}]

    rewrite_log(data_dir / "registry.duckdb", forge)
    result = cli("verify", "--data-dir", str(data_dir), "--json", ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    reasons = " ".join(f["reason"] for f in json.loads(result.stdout)["findings"])
    assert "ObjectTeleported" in reasons


# -- finding 1 (the rest): no silent view swap, no gc on views that differ from the log -----


def test_a_rebuild_that_finds_a_difference_changes_nothing_and_blocks_gc(tmp_path: Path) -> None:
    """Library level: views that drifted from the log (what a forged or deleted event did
    before SQL became read-only) are reported, not swapped in, and gc refuses to run."""
    import asyncio
    import sqlite3

    from s3facade.backends import BackendSet
    from s3facade.backends.local import LocalCAS
    from s3facade.registry import ObjectSpec, Provenance, Registry
    from s3facade.registry.errors import LogUntrusted
    from s3facade.registry.gc import collect_garbage

    who = Provenance("AKIDADMIN", "127.0.0.1:1", "test", "REQ")

    async def body() -> Any:
        yield b"kept bytes"

    async def scenario() -> None:
        cas = LocalCAS(tmp_path / "data" / "blobs")
        registry = Registry.open(tmp_path / "data", BackendSet({"local": cas}, "local"))
        await registry.create_bucket("held", "us-east-1", who)
        await registry.put_object("held", "k", body(), spec=ObjectSpec(), provenance=who)
        # The views drift from the log (a damaged cache, a bug): the version is gone there.
        with sqlite3.connect(registry.views.path) as views:
            views.execute("DELETE FROM versions")
            views.execute("DELETE FROM current")

        result = await registry.rebuild(who)
        assert (result["identical"], result["swapped"]) == (False, False)
        assert registry.views.latest("held", "k") is None  # nothing swapped in
        with pytest.raises(LogUntrusted, match="differ"):
            await collect_garbage(registry)
        assert len(blob_files(tmp_path / "data")) == 1

        forced = await registry.rebuild(who, force=True)
        assert forced["swapped"] is True
        assert registry.head_object("held", "k").size == 10
        assert (await collect_garbage(registry)).collected == []
        assert len(blob_files(tmp_path / "data")) == 1
        rebuilt = [e for e in registry.log.store.replay() if e.type == "ViewsRebuilt"]
        assert [e.data["principal"] for e in rebuilt] == ["AKIDADMIN"]
        await registry.close()

    asyncio.run(scenario())


def test_rebuild_on_a_consistent_server_records_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start(data_dir)
    try:
        put_objects(server, "consistent", 3)
        before = cli_json("log", "--endpoint", server.endpoint)["events"]
        for args in ([], ["--force"]):
            result = cli_json("rebuild", "--endpoint", server.endpoint, *args)
            assert (result["identical"], result["swapped"]) == (True, False)
        after = cli_json("log", "--endpoint", server.endpoint)["events"]
        assert [e for e in after if e["type"] == "ViewsRebuilt"] == []
        assert len(after) == len(before)
        assert cli_json("gc", "--endpoint", server.endpoint)["problems"] == []
    finally:
        server.stop()
    offline = cli("rebuild", "--data-dir", str(data_dir), "--force", ok=False)
    assert offline.returncode == 2 and "--endpoint" in offline.stderr


def test_stripping_the_newest_signed_heads_is_caught(
    locked_then_stopped: tuple[Path, str],
) -> None:
    """An edit after the last surviving signed head, with every later signed head removed
    and the anchor deleted: the unsigned stretch (hours of events, one interval allowed)
    gives it away at start and to verify."""
    from datetime import timedelta

    data_dir, _ = locked_then_stopped
    server = start(data_dir)
    server.client().put_object(Bucket="others", Key="later.bin", Body=b"written later")
    server.stop()
    con = duckdb.connect(str(data_dir / "registry.duckdb"))
    signed = con.execute("SELECT max(seq) FROM events WHERE type = 'LogHeadSigned'").fetchone()
    first_signed = con.execute(  # the head the first server signed when it stopped
        "SELECT min(seq) FROM events WHERE type = 'LogHeadSigned'"
    ).fetchone()
    con.close()
    assert signed is not None and first_signed is not None and signed[0] > first_signed[0]

    def later_and_stripped(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = []
        for event in events:
            if event["seq"] > first_signed[0]:
                if event["type"] == "LogHeadSigned":
                    continue
                event["time"] += timedelta(hours=2)  # a later session, as it would be
                if event["key"] == "later.bin":
                    event["data"]["principal"] = "someone-else"
            kept.append(event)
        return kept

    rewrite_log(data_dir / "registry.duckdb", later_and_stripped)
    (data_dir.parent / "data.log-anchor").unlink()
    assert "covered by no signed head" in refused_start(data_dir)
    verify = cli("verify", "--data-dir", str(data_dir), "--json", ok=False)
    reasons = [f["reason"] for f in json.loads(verify.stdout)["findings"]]
    assert verify.returncode == 1
    assert any("covered by no signed head" in reason for reason in reasons)
