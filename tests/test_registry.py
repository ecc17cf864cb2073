"""The registry as a library (no HTTP): the log, group commit, views rebuilt from the log."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import duckdb
import pytest

from s3facade.backends import BackendSet, ByteRange
from s3facade.backends.local import LocalCAS
from s3facade.registry import ObjectSpec, Provenance, Registry, WriteCondition
from s3facade.registry.access.settings import BucketSetting
from s3facade.registry.errors import BucketNotEmpty, NoSuchBucket, PreconditionFailed
from s3facade.registry.events import GENESIS_HASH, EventType, chain_hash

WHO = Provenance("AKIDTEST", "127.0.0.1:5555", "aws-cli/2.0 Python/3.11", "REQ1")


def open_registry(root: Path) -> Registry:
    local = LocalCAS(root / "blobs")
    return Registry.open(root, BackendSet({"local": local}, "local"))


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def put(registry: Registry, bucket: str, key: str, data: bytes) -> None:
    await registry.put_object(bucket, key, chunks(data), spec=ObjectSpec(), provenance=WHO)


def test_put_records_provenance_and_digests(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await registry.create_bucket("builds", "us-east-1", WHO)
        spec = ObjectSpec("application/zip", {"cache-control": "no-cache"}, {"commit": "abc"})
        version = await registry.put_object(
            "builds", "app.zip", chunks(b"artifact bytes"), spec=spec, provenance=WHO
        )
        assert version.sha256 == hashlib.sha256(b"artifact bytes").hexdigest()
        assert version.etag == hashlib.md5(b"artifact bytes").hexdigest()
        await registry.close()

    asyncio.run(scenario())
    db = duckdb.connect(str(tmp_path / "registry.duckdb"), read_only=True)
    rows = db.execute("SELECT type, bucket, key, data FROM events ORDER BY seq").fetchall()
    assert [r[:3] for r in rows] == [
        ("BucketCreated", "builds", None),
        ("ObjectWritten", "builds", "app.zip"),
    ]
    import json

    data = json.loads(rows[1][3])
    assert data["principal"] == "AKIDTEST"
    assert data["client_address"] == "127.0.0.1:5555"
    assert data["user_agent"].startswith("aws-cli/")
    assert data["request_id"] == "REQ1"
    assert data["size"] == len(b"artifact bytes")
    assert data["sha256"] == hashlib.sha256(b"artifact bytes").hexdigest()
    assert data["md5"] == hashlib.md5(b"artifact bytes").hexdigest()
    assert data["content_type"] == "application/zip"
    assert data["metadata"] == {"commit": "abc"}
    assert data["backend_id"] == "local"


def test_hash_chain_links_every_event(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await registry.create_bucket("chain", "us-east-1", WHO)
        for i in range(5):
            await put(registry, "chain", f"k{i}", f"v{i}".encode())
        await registry.close()

    asyncio.run(scenario())
    registry = open_registry(tmp_path)
    previous = GENESIS_HASH
    for seq, event in enumerate(registry.log.store.replay(), start=1):
        assert event.seq == seq
        assert event.prev_hash == previous
        assert event.hash == chain_hash(previous, event.canonical())
        previous = event.hash
    registry.log.close_sync()


def test_views_replayed_from_the_log_equal_the_persisted_views(tmp_path: Path) -> None:
    """Replay from the first event equals the views the registry kept (checkpoint + tail)."""

    async def scenario() -> dict[str, object]:
        registry = open_registry(tmp_path)
        await registry.create_bucket("one", "us-east-1", WHO)
        await registry.create_bucket("two", "us-east-1", WHO)
        await asyncio.gather(*(put(registry, "one", f"k/{i}", bytes([i]) * i) for i in range(50)))
        await put(registry, "one", "k/3", b"overwritten")
        await registry.delete_object("one", "k/7", WHO)
        await registry.delete_bucket("two", WHO)
        compared = await registry.compare_views()
        assert compared.identical, (compared.live, compared.rebuilt)
        page = registry.list_objects("one", max_keys=1000)
        await registry.close()
        return {"fingerprint": compared.live, "page": page}

    live = asyncio.run(scenario())
    for path in tmp_path.glob("views.*"):  # the cache gone: rebuilt from the log at open
        path.unlink()
    rebuilt = open_registry(tmp_path)
    assert [b.name for b in rebuilt.list_buckets()] == ["one"]
    assert rebuilt.list_objects("one", max_keys=1000) == live["page"]
    assert rebuilt.head_object("one", "k/3").size == len(b"overwritten")
    assert asyncio.run(rebuilt.compare_views()).live == live["fingerprint"]
    rebuilt.log.close_sync()


def test_a_half_built_generation_is_never_taken_for_the_live_views(tmp_path: Path) -> None:
    """A comparison killed mid-build leaves the next generation's file: the next start keeps
    the whole live views (and removes the leftover) instead of replaying into the partial
    one; a forced rebuild's swap makes its generation the live one."""

    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await registry.create_bucket("one", "us-east-1", WHO)
        for i in range(5):
            await put(registry, "one", f"k{i}", b"x")
        compared = await registry.compare_views(keep=True)  # the fresh file stays, as if killed
        assert compared.fresh.name == "views.2.sqlite" and compared.fresh.exists()
        await registry.close()

    asyncio.run(scenario())
    reopened = open_registry(tmp_path)
    assert reopened.views.path.name == "views.1.sqlite"
    assert not (tmp_path / "views.2.sqlite").exists()
    assert reopened.views.object_count("one") == 5

    async def forced() -> None:
        fresh = reopened.views.next_generation()
        with sqlite3.connect(tmp_path / "views.1.sqlite") as damage:  # differ from the log
            damage.execute("UPDATE versions SET size = size + 1 WHERE key = 'k4'")
        result = await reopened.rebuild(WHO, force=True)
        assert not result["identical"] and result["swapped"]
        assert reopened.views.path == fresh
        await reopened.close()

    asyncio.run(forced())
    again = open_registry(tmp_path)
    assert again.views.path.name == "views.2.sqlite"
    assert again.views.object_count("one") == 5
    again.log.close_sync()


def test_views_of_another_log_start_over_and_keep_no_setting_of_theirs(tmp_path: Path) -> None:
    """Views that do not belong to the log (copied from another data dir, or newer than a
    restored log) are emptied before replay: bucket policies, tags and cached bucket rows
    included, so no access setting survives that the log does not hold."""
    policy = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",'
        ' "Action": "s3:GetObject", "Resource": "arn:aws:s3:::one/*"}]}'
    )

    async def other(root: Path) -> None:
        registry = open_registry(root)
        await registry.create_bucket("one", "us-east-1", WHO)
        await registry.create_bucket("gone", "us-east-1", WHO)
        await registry.put_bucket_access("one", BucketSetting.POLICY, policy, WHO)
        await registry.put_bucket_tagging("one", {"team": "a"}, WHO)
        assert registry.views.bucket_access("one")  # cached, then replaced below
        await registry.close()

    async def ours(root: Path) -> None:
        registry = open_registry(root)
        await registry.create_bucket("one", "us-east-1", WHO)
        await put(registry, "one", "k", b"ours")
        await registry.close()

    asyncio.run(other(tmp_path / "a"))
    asyncio.run(ours(tmp_path / "b"))
    for path in (tmp_path / "b").glob("views.*"):
        path.unlink()
    for path in (tmp_path / "a").glob("views.*"):
        (tmp_path / "b" / path.name).write_bytes(path.read_bytes())
    reopened = open_registry(tmp_path / "b")
    assert [b.name for b in reopened.list_buckets()] == ["one"]
    assert reopened.views.bucket_access("one") == {}
    assert reopened.views.bucket_tags("one") is None
    assert reopened.head_object("one", "k").size == 4
    assert asyncio.run(reopened.compare_views()).identical
    reopened.log.close_sync()


def test_only_existing_buckets_are_cached_and_a_change_is_seen_at_once(tmp_path: Path) -> None:
    """Bucket rows and access settings are cached: lookups of names that do not exist (any
    client can send them) keep nothing, and a committed bucket event is seen by the next
    lookup."""
    policy = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",'
        ' "Action": "s3:GetObject", "Resource": "arn:aws:s3:::one/*"}]}'
    )

    async def scenario() -> None:
        registry = open_registry(tmp_path)
        views = registry.views
        for n in range(2000):
            assert views.bucket(f"missing-{n}") is None
            assert views.bucket_access(f"missing-{n}") == {}
        assert views._buckets == {} and views._access == {}
        await registry.create_bucket("one", "us-east-1", WHO)
        assert views.bucket("one") is not None and views.bucket_access("one") == {}
        assert set(views._buckets) == set(views._access) == {"one"}
        await registry.put_bucket_access("one", BucketSetting.POLICY, policy, WHO)
        assert "policy" in views.bucket_access("one")
        await registry.delete_bucket("one", WHO)
        assert views.bucket("one") is None and views.bucket_access("one") == {}
        await registry.close()

    asyncio.run(scenario())


def test_a_library_read_records_its_read(tmp_path: Path) -> None:
    """Reads through the library are audited like reads over HTTP: what was taken, and
    whether the reader took all of it."""

    async def scenario() -> list[dict[str, object]]:
        registry = open_registry(tmp_path)
        await registry.create_bucket("lib", "us-east-1", WHO)
        await put(registry, "lib", "k", b"0123456789" * 300_000)
        version = registry.head_object("lib", "k")
        whole = b"".join([block async for block in registry.read_object(version, WHO)])
        assert hashlib.sha256(whole).hexdigest() == version.sha256
        early = registry.read_object(version, WHO, method="LIBRARY")
        first = await anext(early)
        await early.aclose()  # the reader stops after one block
        ranged = registry.read_object(version, WHO, ByteRange(10, 19))
        assert b"".join([block async for block in ranged]) == b"0123456789"
        await registry.close()
        reopened = open_registry(tmp_path)
        reads = [e.data for e in reopened.log.store.of_type(EventType.OBJECT_READ)]
        reopened.log.close_sync()
        assert len(first) < len(whole)
        return reads

    reads = asyncio.run(scenario())
    assert [(r["method"], r["bytes_sent"], r["completed"], r["status"]) for r in reads] == [
        ("GET", 3_000_000, True, 200),
        ("LIBRARY", 0, False, 200),
        ("GET", 10, True, 206),
    ]
    assert reads[2]["range"] == "bytes=10-19" and reads[0]["principal"] == "AKIDTEST"


def test_concurrent_writes_share_commits(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int]:
        registry = open_registry(tmp_path)
        await registry.create_bucket("group", "us-east-1", WHO)
        before = registry.log.commits
        await asyncio.gather(*(put(registry, "group", f"k{i}", b"x%d" % i) for i in range(64)))
        commits = registry.log.commits - before
        count = registry.views.object_count("group")
        await registry.close()
        return commits, count

    commits, count = asyncio.run(scenario())
    assert count == 64
    assert commits < 64  # group commit: several writes per transaction


def test_domain_refusals(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = open_registry(tmp_path)
        with pytest.raises(NoSuchBucket):
            await put(registry, "missing", "k", b"x")
        await registry.create_bucket("full", "us-east-1", WHO)
        await put(registry, "full", "k", b"x")
        with pytest.raises(BucketNotEmpty):
            await registry.delete_bucket("full", WHO)
        with pytest.raises(PreconditionFailed):
            await registry.put_object(
                "full", "k", chunks(b"y"), spec=ObjectSpec(), provenance=WHO,
                condition=WriteCondition(must_not_exist=True),
            )  # fmt: skip
        assert registry.head_object("full", "k").size == 1
        await registry.close()

    asyncio.run(scenario())
