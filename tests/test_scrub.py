"""The scrub finds exactly the damaged blobs, at the configured rate, without holding the
server; and the registry's verified reads, driven as a library."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from s3facade.admin_client import AdminError
from s3facade.backends import BackendSet
from s3facade.backends.local import LocalCAS
from s3facade.registry import ObjectSpec, ObjectVersion, Provenance, Registry
from s3facade.registry.errors import NoSuchKey, StoredBytesDamaged
from s3facade.registry.events import EventType
from s3facade.registry.scrub import Scrubber
from tests.conftest import RunningServer
from tests.integrity_helpers import (
    MiB,
    admin,
    blob_path,
    damage_events,
    damage_metric,
    events,
    flip_byte,
    ready,
    sha,
)

WHO = Provenance("AKIDTEST", "127.0.0.1:5555", "pytest/1", "REQ1")


@pytest.fixture(scope="module")
def slow_scrub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Scrubs at 1 MiB/s; no background pass (the admin route triggers them)."""
    root = tmp_path_factory.mktemp("scrub")
    config = root / "s3facade.toml"
    config.write_text("[server]\nscrub_mib_per_second = 1\nscrub_interval_seconds = 0\n")
    server = RunningServer(root / "data", extra_args=["--config", str(config)]).start()
    yield server
    server.stop()


def test_scrub_names_exactly_the_damaged_blob(slow_scrub_server: RunningServer) -> None:
    server = slow_scrub_server
    s3 = server.client()
    s3.create_bucket(Bucket="scrubbed")
    contents = [os.urandom(4000 + i) for i in range(5)]
    for i, data in enumerate(contents):
        s3.put_object(Bucket="scrubbed", Key=f"k{i}", Body=data)
    flip_byte(blob_path(server, contents[2]), 100)
    assert ready(server)["status"] == "ok"  # nothing read it yet

    report = admin(server).json("POST", "/-/admin/scrub")
    assert (report["blobs"], report["blobs_checked"]) == (5, 5)
    assert report["bytes_checked"] == sum(map(len, contents))
    assert [d["sha256"] for d in report["damaged"]] == [sha(contents[2])]
    assert report["problems"] == [] and report["stopped_early"] is False

    [event] = damage_events(server, sha(contents[2]))
    assert (event["detected_by"], event["bucket"], event["key"]) == ("scrub", None, None)
    damaged = [e["data"]["sha256"] for e in events(server, "BlobDamaged")]
    assert damaged == [sha(contents[2])]  # undamaged blobs are not reported
    [summary] = [e for e in events(server, "ScrubPassCompleted") if e["seq"] == report["event_seq"]]
    assert summary["data"]["blobs_checked"] == 5
    assert summary["data"]["damaged_count"] == 1
    assert summary["data"]["bytes"] == sum(map(len, contents))
    assert summary["data"]["principal"] == "s3facade:integrity"
    assert summary["data"]["trigger"] == "admin"
    body = ready(server)
    assert body["status"] == "degraded"
    assert body["scrub"]["last_pass"]["event_seq"] == report["event_seq"]
    assert damage_metric(server, "scrub") == 1

    again = admin(server).json("POST", "/-/admin/scrub")  # known damage: reported, not re-logged
    assert [d["sha256"] for d in again["damaged"]] == [sha(contents[2])]
    assert len(damage_events(server, sha(contents[2]))) == 1


def test_scrub_keeps_to_its_rate_and_the_server_keeps_serving(
    slow_scrub_server: RunningServer,
) -> None:
    server = slow_scrub_server
    s3 = server.client()
    s3.create_bucket(Bucket="paced")
    for i in range(3):
        s3.put_object(Bucket="paced", Key=f"big{i}", Body=os.urandom(MiB))
    result: dict[str, Any] = {}

    def scrub() -> None:
        started = time.monotonic()
        result["report"] = admin(server).json("POST", "/-/admin/scrub")
        result["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=scrub)
    thread.start()
    time.sleep(0.8)
    heads = []
    for _ in range(3):
        started = time.monotonic()
        s3.head_object(Bucket="paced", Key="big0")
        heads.append(time.monotonic() - started)
    assert ready(server)["scrub"]["running"] is True
    with pytest.raises(AdminError) as busy:
        admin(server).json("POST", "/-/admin/scrub")
    assert (busy.value.status, busy.value.code) == (409, "ScrubInProgress")
    thread.join(timeout=30)

    report = result["report"]
    assert report["bytes_checked"] >= 3 * MiB
    # 1 MiB/s: the first MiB may go at once, the pace holds back the rest.
    assert result["seconds"] >= 2.0 and report["duration_seconds"] >= 2.0
    assert max(heads) < 0.5, heads


def test_background_scrub_pass(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await registry.create_bucket("background", "us-east-1", WHO)
        await put(registry, "background", "k", b"background bytes")
        scrubber = Scrubber(registry, mib_per_second=16)
        task = asyncio.create_task(scrubber.run_periodically(0.2))
        deadline = time.monotonic() + 10
        while not scrub_events(registry):
            assert time.monotonic() < deadline, "no background pass"
            await asyncio.sleep(0.05)
        scrubber.stop()
        await asyncio.wait_for(task, timeout=5)
        [event] = scrub_events(registry)[:1]
        assert (event["trigger"], event["blobs_checked"], event["damaged_count"]) == (
            "background",
            1,
            0,
        )
        await registry.close()

    asyncio.run(scenario())


# -- verified reads, as a library ------------------------------------------------------


def open_registry(root: Path) -> Registry:
    return Registry.open(root, BackendSet({"local": LocalCAS(root / "blobs")}, "local"))


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def put(registry: Registry, bucket: str, key: str, data: bytes) -> ObjectVersion:
    return await registry.put_object(bucket, key, chunks(data), spec=ObjectSpec(), provenance=WHO)


def scrub_events(registry: Registry) -> list[dict[str, Any]]:
    return [e.data for e in registry.log.store.replay() if e.type is EventType.SCRUB_PASS_COMPLETED]


def damage_of(registry: Registry) -> list[dict[str, Any]]:
    return [e.data for e in registry.log.store.replay() if e.type is EventType.BLOB_DAMAGED]


def local_path(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest[:2] / digest[2:4] / digest


def test_the_last_block_is_held_back_until_the_digest_matches(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await registry.create_bucket("lib", "us-east-1", WHO)
        data = os.urandom(3 * MiB + 10)
        version = await put(registry, "lib", "k", data)
        intact = b"".join([block async for block in registry.read_object(version, WHO)])
        assert intact == data
        flip_byte(local_path(tmp_path, version.sha256), 5)
        received = b""
        with pytest.raises(StoredBytesDamaged) as raised:
            async for block in registry.read_object(version, WHO):
                received += block
        assert len(received) == 3 * MiB  # everything but the last block
        assert raised.value.found != version.sha256 and len(raised.value.found) == 64
        [event] = damage_of(registry)
        assert event["found"] == raised.value.found
        assert registry.integrity.known(version.backend_id, version.sha256) is not None
        await registry.close()

    asyncio.run(scenario())


def test_a_blob_longer_than_recorded_is_damage(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await registry.create_bucket("lib", "us-east-1", WHO)
        version = await put(registry, "lib", "k", b"short")
        path = local_path(tmp_path, version.sha256)
        path.chmod(0o644)
        with path.open("ab") as f:
            f.write(b" and more")
        with pytest.raises(StoredBytesDamaged, match="more than 5 bytes"):
            await anext(registry.read_object(version, WHO))
        await registry.close()

    asyncio.run(scenario())


def test_a_version_deleted_and_collected_during_a_read_is_not_damage(tmp_path: Path) -> None:
    """The bytes of a version deleted (and collected) after the GET looked it up: 404 and
    nothing recorded, not 500 and a false damage report."""

    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await registry.create_bucket("lib", "us-east-1", WHO)
        version = await put(registry, "lib", "k", b"soon gone")
        await registry.delete_object("lib", "k", WHO)
        local_path(tmp_path, version.sha256).unlink()  # as gc would
        with pytest.raises(NoSuchKey):
            await anext(registry.read_object(version, WHO))
        assert damage_of(registry) == []
        await registry.close()

    asyncio.run(scenario())


def test_repaired_blob_is_no_longer_known_damage(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await registry.create_bucket("lib", "us-east-1", WHO)
        version = await put(registry, "lib", "k", b"fix me")
        path = local_path(tmp_path, version.sha256)
        flip_byte(path, 0)
        with pytest.raises(StoredBytesDamaged):
            await anext(registry.read_object(version, WHO))
        assert registry.integrity.summary()["count"] == 1
        flip_byte(path, 0)  # restored, e.g. from a backup
        assert b"".join([b async for b in registry.read_object(version, WHO)]) == b"fix me"
        assert registry.integrity.summary()["count"] == 0
        await registry.close()

    asyncio.run(scenario())


def test_scrub_tells_collected_garbage_from_missing_bytes(tmp_path: Path) -> None:
    """Found missing during a pass: damage if a version still uses the blob, nothing if it
    was deleted (and its bytes collected) after the pass took its snapshot."""

    def content(size: int, first: bool) -> bytes:
        while True:  # the scrub goes in digest order: the big one first, the others after
            data = os.urandom(size)
            if (sha(data) < "1") == first:
                return data

    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await registry.create_bucket("lib", "us-east-1", WHO)
        big, gone, lost = content(MiB, True), content(100, False), content(100, False)
        for key, data in (("big", big), ("gone", gone), ("lost", lost)):
            await put(registry, "lib", key, data)
        local_path(tmp_path, sha(lost)).unlink()  # damage: "lost" still names it
        scrubber = Scrubber(registry, mib_per_second=2)  # ~0.5 s on the big blob first
        running = asyncio.create_task(scrubber.run_pass())
        await asyncio.sleep(0.2)
        assert not running.done()
        await registry.delete_object("lib", "gone", WHO)
        local_path(tmp_path, sha(gone)).unlink()  # as gc would, after the snapshot
        report = await running
        assert [(d.sha256, d.found) for d in report.damaged] == [(sha(lost), "missing")]
        assert [e["sha256"] for e in damage_of(registry)] == [sha(lost)]
        await registry.close()

    asyncio.run(scenario())
