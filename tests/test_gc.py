"""Blob garbage collection: exactly the unreferenced blobs go, everything live still reads.

The first half drives the registry as a library (as tests/test_registry.py does): a
randomised model of overwrites, deletes, versions, locks, legal holds, copies and
multipart uploads, checked against the files on disk after every pass; and races of a
put against a gc of the same content. The second half drives a real server with boto3
and the `s3facade gc` command (--endpoint, offline, background pass).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from s3facade.backends import BackendSet, BlobReceipt, Hasher, StagedBlob
from s3facade.backends.local import LocalCAS
from s3facade.registry import (
    CompletedPart,
    ObjectSpec,
    ObjectVersion,
    Provenance,
    Registry,
    WriteCondition,
)
from s3facade.registry.errors import NoSuchKey, ObjectLocked
from s3facade.registry.events import EventType
from s3facade.registry.gc import GC_PRINCIPAL, collect_garbage
from s3facade.registry.model import DefaultRetention, LockMode, Versioning
from s3facade.registry.multipart import MIN_PART_SIZE
from tests.clients import cli, cli_json
from tests.conftest import RunningServer
from tests.upstream_services import config_file

WHO = Provenance("AKIDTEST", "127.0.0.1:5555", "pytest/1", "REQ1")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def disk(root: Path) -> dict[str, int]:
    """digest -> size of every committed blob of the local CAS under `root`."""
    return {p.name: p.stat().st_size for p in (root / "sha256").glob("*/*/*") if p.is_file()}


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read_sha(registry: Registry, version: ObjectVersion) -> str:
    digest = hashlib.sha256()
    async for block in registry.read_object(version, WHO):
        digest.update(block)
    return digest.hexdigest()


def open_registry(root: Path, cas: LocalCAS | None = None) -> Registry:
    cas = cas if cas is not None else LocalCAS(root / "blobs")
    return Registry.open(root, BackendSet({"local": cas}, "local"))


async def put(registry: Registry, bucket: str, key: str, data: bytes) -> ObjectVersion:
    return await registry.put_object(bucket, key, chunks(data), spec=ObjectSpec(), provenance=WHO)


async def make_buckets(registry: Registry) -> None:
    await registry.create_bucket("plain", "us-east-1", WHO)
    await registry.create_bucket("versioned", "us-east-1", WHO)
    await registry.put_bucket_versioning("versioned", Versioning.ENABLED, WHO)
    await registry.create_bucket("locked", "us-east-1", WHO, object_lock=True)
    default = DefaultRetention(LockMode.GOVERNANCE, days=1)
    await registry.put_object_lock_configuration("locked", default, WHO)


def collected_events(registry: Registry) -> list[dict[str, Any]]:
    return [e.data for e in registry.log.store.replay() if e.type is EventType.BLOBS_COLLECTED]


# -- the randomised model ---------------------------------------------------------------

PAYLOADS = [b"", b"a", b"bb", b"shared content", bytes(range(256)) * 40, b"z" * 3000]
BUCKETS = ("plain", "versioned", "locked")
KEYS = ("k0", "k1", "dir/k2")


@dataclass
class Model:
    """What should be live, kept independently of the registry's views."""

    # (bucket, key) -> [(version id, sha256 or None for a delete marker)], newest first
    versions: dict[tuple[str, str], list[tuple[str, str | None]]] = field(default_factory=dict)
    # upload id -> (bucket, key, part number -> (etag, sha256))
    uploads: dict[str, tuple[str, str, dict[int, tuple[str, str]]]] = field(default_factory=dict)

    def live(self) -> set[str]:
        digests = {d for vs in self.versions.values() for _, d in vs if d is not None}
        for _, _, parts in self.uploads.values():
            digests |= {digest for _, digest in parts.values()}
        return digests

    def add(self, bucket: str, key: str, version: ObjectVersion, digest: str | None) -> None:
        versions = self.versions.setdefault((bucket, key), [])
        if bucket == "plain":
            versions.clear()  # the "null" version is replaced
        versions.insert(0, (version.version_id, digest))


async def random_step(registry: Registry, model: Model, rng: random.Random) -> None:
    bucket, key = rng.choice(BUCKETS), rng.choice(KEYS)
    # Often one of a few shared contents (deduplicated across keys), else fresh bytes.
    payload = rng.choice(PAYLOADS) if rng.random() < 0.4 else rng.randbytes(rng.randint(1, 5000))
    op = rng.choice(
        ["put"] * 5 + ["copy", "delete", "delete_version", "hold", "mp_create"] + ["mp_part"] * 3
        + ["mp_complete", "mp_abort"]
    )  # fmt: skip
    if op == "put":
        model.add(bucket, key, await put(registry, bucket, key, payload), sha(payload))
    elif op == "copy":
        sources = [bk for bk, vs in model.versions.items() if vs and vs[0][1] is not None]
        if sources:
            source = registry.head_object(*rng.choice(sources))
            if (source.bucket, source.key) != (bucket, key):
                copied = await registry.copy_object(
                    source, bucket, key, spec=ObjectSpec(), provenance=WHO
                )
                model.add(bucket, key, copied, source.sha256)
    elif op == "delete":
        outcome = await registry.delete_object(bucket, key, WHO)
        if outcome.delete_marker:
            marker = registry.views.version(bucket, key, str(outcome.version_id))
            assert marker is not None
            model.add(bucket, key, marker, None)
        else:
            model.versions.pop((bucket, key), None)
    elif op == "delete_version" and model.versions.get((bucket, key)):
        version_id, _ = rng.choice(model.versions[(bucket, key)])
        try:
            await registry.delete_object(bucket, key, WHO, version_id=version_id)
        except ObjectLocked:
            return  # retention or legal hold: the version (and its bytes) must stay
        remaining = [v for v in model.versions[(bucket, key)] if v[0] != version_id]
        model.versions[(bucket, key)] = remaining
    elif op == "hold" and bucket == "locked" and model.versions.get((bucket, key)):
        version_id, digest = rng.choice(model.versions[(bucket, key)])
        if digest is not None:
            await registry.put_object_legal_hold(bucket, key, version_id, rng.random() < 0.5, WHO)
    elif op == "mp_create":
        upload = await registry.uploads.create(
            bucket, key, spec=ObjectSpec(), provenance=WHO, checksum_algorithm=None,
            checksum_type=None,
        )  # fmt: skip
        model.uploads[upload.upload_id] = (bucket, key, {})
    elif op == "mp_part" and model.uploads:
        upload_id = rng.choice(sorted(model.uploads))
        u_bucket, u_key, parts = model.uploads[upload_id]
        number = rng.randint(1, 3)
        part = await registry.uploads.upload_part(
            u_bucket, u_key, upload_id, number, chunks(payload), provenance=WHO
        )
        parts[number] = (part.etag, part.sha256)
    elif op == "mp_complete" and any(parts for _, _, parts in model.uploads.values()):
        upload_id = rng.choice(sorted(u for u, (_, _, p) in model.uploads.items() if p))
        u_bucket, u_key, parts = model.uploads.pop(upload_id)
        number = rng.choice(sorted(parts))  # one part: small parts are fine when alone
        etag, part_sha = parts[number]
        version = await registry.uploads.complete(
            u_bucket, u_key, upload_id, [CompletedPart(number, etag)], provenance=WHO,
            condition=WriteCondition(),
        )  # fmt: skip
        assert version.sha256 == part_sha  # one part: the object is that part's content
        model.add(u_bucket, u_key, version, version.sha256)
    elif op == "mp_abort" and model.uploads:
        upload_id = rng.choice(sorted(model.uploads))
        u_bucket, u_key, _ = model.uploads.pop(upload_id)
        await registry.uploads.abort(u_bucket, u_key, upload_id, WHO)


async def check_pass(registry: Registry, model: Model, blobs: Path, *, dry_run: bool) -> int:
    before = disk(blobs)
    expected_garbage = set(before) - model.live()
    report = await collect_garbage(registry, dry_run=dry_run)
    assert not report.problems
    collected = {blob.sha256 for blob in report.collected}
    assert collected == expected_garbage
    assert report.collected_bytes == sum(before[d] for d in expected_garbage)
    if dry_run:
        assert disk(blobs) == before
        assert not report.event_seqs
    else:
        assert set(disk(blobs)) == model.live()
        if collected:
            last = collected_events(registry)[-1]
            assert {b["sha256"] for b in last["blobs"]} == collected
            assert last["bytes"] == report.collected_bytes
    # Every version the model holds still reads back with its SHA-256.
    for (bucket, key), versions in model.versions.items():
        for version_id, digest in versions:
            if digest is not None:
                version = registry.head_object(bucket, key, version_id)
                assert await read_sha(registry, version) == digest
    return 0 if dry_run else len(collected)


@pytest.mark.parametrize("seed", range(6))
def test_gc_removes_exactly_the_unreferenced_blobs(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)

    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await make_buckets(registry)
        model, removed = Model(), 0
        for _ in range(150):
            await random_step(registry, model, rng)
            if rng.random() < 0.08:
                dry_run = rng.random() < 0.3
                removed += await check_pass(registry, model, tmp_path / "blobs", dry_run=dry_run)
        removed += await check_pass(registry, model, tmp_path / "blobs", dry_run=False)
        assert removed > 0  # the run did make garbage
        locked = list(registry.views.all_versions("locked"))
        assert any(v.protected(registry.clock()) for v in locked)  # and kept locked versions
        # The model agrees with the views (so "live" above was not taken from gc itself).
        assert {d for _, d, _ in registry.views.live_blobs()} == model.live()
        await registry.close()
        # Reopened (views replayed from the log): nothing left to do, nothing lost.
        reopened = open_registry(tmp_path)
        again = await collect_garbage(reopened)
        assert (again.candidates, again.collected) == (0, [])
        await check_pass(reopened, model, tmp_path / "blobs", dry_run=False)
        await reopened.close()

    asyncio.run(scenario())


# -- targeted cases --------------------------------------------------------------------


def test_completed_and_aborted_multipart_parts_are_collected(tmp_path: Path) -> None:
    big, small, aborted, pending = (
        os.urandom(MIN_PART_SIZE),
        b"tail",
        b"aborted part",
        b"open part",
    )

    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await make_buckets(registry)
        for bucket in ("plain", "locked"):
            done = await registry.uploads.create(
                bucket, "mp", spec=ObjectSpec(), provenance=WHO, checksum_algorithm=None,
                checksum_type=None,
            )  # fmt: skip
            p1 = await registry.uploads.upload_part(
                bucket, "mp", done.upload_id, 1, chunks(big), provenance=WHO
            )
            p2 = await registry.uploads.upload_part(
                bucket, "mp", done.upload_id, 2, chunks(small), provenance=WHO
            )
            version = await registry.uploads.complete(
                bucket, "mp", done.upload_id,
                [CompletedPart(1, p1.etag), CompletedPart(2, p2.etag)],
                provenance=WHO, condition=WriteCondition(),
            )  # fmt: skip
            assert version.sha256 == sha(big + small)
        gone = await registry.uploads.create(
            "plain", "ab", spec=ObjectSpec(), provenance=WHO, checksum_algorithm=None,
            checksum_type=None,
        )  # fmt: skip
        await registry.uploads.upload_part("plain", "ab", gone.upload_id, 1, chunks(aborted),
                                           provenance=WHO)  # fmt: skip
        await registry.uploads.abort("plain", "ab", gone.upload_id, WHO)
        still = await registry.uploads.create(
            "plain", "open", spec=ObjectSpec(), provenance=WHO, checksum_algorithm=None,
            checksum_type=None,
        )  # fmt: skip
        await registry.uploads.upload_part("plain", "open", still.upload_id, 1, chunks(pending),
                                           provenance=WHO)  # fmt: skip

        report = await collect_garbage(registry)
        assert {b.sha256 for b in report.collected} == {sha(big), sha(small), sha(aborted)}
        assert set(disk(tmp_path / "blobs")) == {sha(big + small), sha(pending)}
        for bucket in ("plain", "locked"):
            assert await read_sha(registry, registry.head_object(bucket, "mp")) == sha(big + small)
        [event] = collected_events(registry)
        assert event["principal"] == GC_PRINCIPAL
        assert event["bytes"] == len(big) + len(small) + len(aborted)
        assert event["count"] == 3
        assert {(b["backend_id"], b["sha256"], b["size"]) for b in event["blobs"]} == {
            ("local", sha(big), len(big)),
            ("local", sha(small), len(small)),
            ("local", sha(aborted), len(aborted)),
        }
        await registry.close()

    asyncio.run(scenario())


def test_shared_content_survives_deleting_one_key(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await make_buckets(registry)
        await put(registry, "plain", "a", b"same bytes")
        await put(registry, "versioned", "b", b"same bytes")
        await registry.delete_object("plain", "a", WHO)
        report = await collect_garbage(registry)
        assert report.collected == []
        assert await read_sha(registry, registry.head_object("versioned", "b")) == sha(
            b"same bytes"
        )
        # A delete marker hides "b" but its version still holds the bytes.
        await registry.delete_object("versioned", "b", WHO)
        assert (await collect_garbage(registry)).collected == []
        [version] = [v for v in registry.views.versions("versioned", "b") if v.sha256]
        await registry.delete_object("versioned", "b", WHO, version_id=version.version_id)
        report = await collect_garbage(registry)
        assert [b.sha256 for b in report.collected] == [sha(b"same bytes")]
        assert disk(tmp_path / "blobs") == {}
        await registry.close()

    asyncio.run(scenario())


def test_a_write_tells_the_log_since_when_it_holds_its_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a shared log's gc relies on (registry.log refuses a write with BytesCollected
    when another gateway removed its bytes after this hold began): the hold begins before
    the bytes are durable and lasts until the event is appended."""

    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await make_buckets(registry)
        data, held = b"held while in flight", []
        append = registry.log.append

        async def spied(events: Sequence[Any]) -> Any:
            held.append(registry.log.blob_held_since(sha(data)))
            return await append(events)

        monkeypatch.setattr(registry.log, "append", spied)
        before = time.monotonic()
        await put(registry, "plain", "k", data)
        [since] = held
        assert since is not None and before <= since <= time.monotonic()
        assert registry.log.blob_held_since(sha(data)) is None  # let go after the commit
        await registry.close()

    asyncio.run(scenario())


def test_dry_run_removes_nothing_and_records_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await make_buckets(registry)
        await put(registry, "plain", "k", b"old")
        await put(registry, "plain", "k", b"new")
        before, last_seq = disk(tmp_path / "blobs"), registry.log.last_seq
        report = await collect_garbage(registry, dry_run=True)
        assert [b.sha256 for b in report.collected] == [sha(b"old")]
        assert disk(tmp_path / "blobs") == before
        assert registry.log.last_seq == last_seq
        report = await collect_garbage(registry)
        assert [b.sha256 for b in report.collected] == [sha(b"old")]
        assert report.collected_bytes == 3
        assert collected_events(registry)[-1]["bytes"] == 3
        # Collected blobs are not candidates again: no backend lookup per pass for them.
        assert (await collect_garbage(registry)).candidates == 0
        # Written again after collection: a candidate again once orphaned.
        await put(registry, "plain", "k", b"old")
        await put(registry, "plain", "k", b"newer")
        report = await collect_garbage(registry)
        assert {b.sha256 for b in report.collected} == {sha(b"old"), sha(b"new")}
        await registry.close()

    asyncio.run(scenario())


def test_blobs_the_log_never_named_are_found_by_listing(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await make_buckets(registry)
        await put(registry, "plain", "k", b"kept")
        # Bytes committed whose event never was (a crash in between, a refused write):
        # only the local CAS's listing of its digests can find them.
        orphan = await registry.backends["local"].put(chunks(b"never logged"))
        report = await collect_garbage(registry)
        assert [b.sha256 for b in report.collected] == [orphan.sha256]
        assert set(disk(tmp_path / "blobs")) == {sha(b"kept")}
        await registry.close()

    asyncio.run(scenario())


# -- a put racing a gc of the same content ------------------------------------------------


class _GatedStaged:
    def __init__(self, inner: StagedBlob, cas: GatedCAS) -> None:
        self._inner = inner
        self._cas = cas

    @property
    def receipt(self) -> BlobReceipt:
        return self._inner.receipt

    async def commit(self) -> bool:
        self._cas.commit_entered.set()  # the writer holds the digest shared from here
        if self._cas.commit_gate is not None:
            await self._cas.commit_gate.wait()
        outcome = await self._inner.commit()
        self._cas.commit_outcomes.append(outcome)
        return outcome

    async def discard(self) -> None:
        await self._inner.discard()


class GatedCAS(LocalCAS):
    """A local CAS whose commit and delete can be held at a gate, to force interleavings."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.commit_entered = asyncio.Event()
        self.commit_gate: asyncio.Event | None = None
        self.commit_outcomes: list[bool] = []
        self.delete_entered = asyncio.Event()
        self.delete_gate: asyncio.Event | None = None

    async def stage(
        self, chunks: AsyncIterable[bytes], hashers: Sequence[Hasher] = ()
    ) -> StagedBlob:
        return _GatedStaged(await super().stage(chunks, hashers), self)

    async def delete(self, digest: str) -> bool:
        self.delete_entered.set()  # gc holds the digest exclusively from before here
        if self.delete_gate is not None:
            await self.delete_gate.wait()
        return await super().delete(digest)


async def orphan(registry: Registry, content: bytes) -> None:
    await put(registry, "plain", "victim", content)
    await put(registry, "plain", "victim", b"filler")


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.005)


def test_put_waits_for_a_gc_holding_its_digest_then_recreates_the_blob(tmp_path: Path) -> None:
    x = b"content X"

    async def scenario() -> None:
        cas = GatedCAS(tmp_path / "blobs")
        registry = open_registry(tmp_path, cas)
        await make_buckets(registry)
        await orphan(registry, x)
        cas.commit_outcomes.clear()
        cas.delete_gate = asyncio.Event()
        gc = asyncio.create_task(collect_garbage(registry))
        await cas.delete_entered.wait()  # gc holds X exclusively, about to delete it
        writer = asyncio.create_task(put(registry, "plain", "racer", x))
        await settle()
        assert not writer.done()  # staged, waiting for the digest
        cas.delete_gate.set()
        report, version = await asyncio.gather(gc, writer)
        assert [b.sha256 for b in report.collected] == [sha(x)]
        assert cas.commit_outcomes == [True]  # the put stored the bytes again itself
        assert sha(x) in disk(tmp_path / "blobs")
        assert await read_sha(registry, version) == sha(x)
        assert (await collect_garbage(registry)).collected == []
        await registry.close()

    asyncio.run(scenario())


def test_gc_waits_for_a_put_holding_its_digest_then_keeps_the_blob(tmp_path: Path) -> None:
    x = b"content X"

    async def scenario() -> None:
        cas = GatedCAS(tmp_path / "blobs")
        registry = open_registry(tmp_path, cas)
        await make_buckets(registry)
        await orphan(registry, x)
        cas.commit_entered.clear()
        cas.commit_outcomes.clear()
        cas.commit_gate = asyncio.Event()
        writer = asyncio.create_task(put(registry, "plain", "racer", x))
        await cas.commit_entered.wait()  # the put holds X shared; its event is not written
        gc = asyncio.create_task(collect_garbage(registry))
        await settle()
        assert not gc.done()  # X was a candidate when planned: gc waits for the digest
        cas.commit_gate.set()
        version, report = await asyncio.gather(writer, gc)
        assert cas.commit_outcomes == [False]  # deduplicated against the orphan
        assert report.collected == [] and report.kept == 1
        assert not cas.delete_entered.is_set()
        assert await read_sha(registry, version) == sha(x)
        await registry.close()

    asyncio.run(scenario())


def test_random_races_of_put_and_gc_never_lose_the_put(tmp_path: Path) -> None:
    rng = random.Random(7)

    async def after(delay: float, coro: Any) -> Any:
        await asyncio.sleep(delay)
        return await coro

    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await make_buckets(registry)
        for i in range(40):
            content = b"race %d " % i * rng.randint(1, 5000)
            await orphan(registry, content)
            version, _ = await asyncio.gather(
                after(rng.random() * 0.01, put(registry, "plain", f"racer-{i}", content)),
                after(rng.random() * 0.01, collect_garbage(registry)),
            )
            assert sha(content) in disk(tmp_path / "blobs")
            assert await read_sha(registry, version) == sha(content)
        await registry.close()

    asyncio.run(scenario())


def test_copies_racing_deletes_and_gc_keep_their_bytes(tmp_path: Path) -> None:
    """A copy looks its source up, then holds the digest until its own version commits
    (as the CopyObject handler does); a delete of the source and a gc race it."""
    rng = random.Random(11)

    async def after(delay: float, coro: Any) -> Any:
        await asyncio.sleep(delay)
        return await coro

    async def copy(registry: Registry, i: int) -> ObjectVersion | None:
        try:
            source = registry.head_object("plain", f"src-{i}")
            return await registry.copy_object(
                source, "versioned", f"dst-{i}", spec=ObjectSpec(), provenance=WHO
            )
        except NoSuchKey:  # the delete won, before the lookup or before the digest lock
            return None

    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await make_buckets(registry)
        for i in range(40):
            content = b"copied %d " % i * rng.randint(1, 5000)
            await put(registry, "plain", f"src-{i}", content)
            copied, *_ = await asyncio.gather(
                after(rng.random() * 0.01, copy(registry, i)),
                after(rng.random() * 0.01, registry.delete_object("plain", f"src-{i}", WHO)),
                after(rng.random() * 0.01, collect_garbage(registry)),
            )
            await collect_garbage(registry)
            if copied is not None:
                assert await read_sha(registry, copied) == sha(content)
            else:
                assert sha(content) not in disk(tmp_path / "blobs")
        await registry.close()

    asyncio.run(scenario())


def test_overlapping_passes_remove_each_blob_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = open_registry(tmp_path)
        await make_buckets(registry)
        for i in range(30):
            await put(registry, "plain", "k", b"version %d" % i)
        reports = await asyncio.gather(*(collect_garbage(registry) for _ in range(3)))
        removed = [b.sha256 for report in reports for b in report.collected]
        assert sorted(removed) == sorted(sha(b"version %d" % i) for i in range(29))
        assert set(disk(tmp_path / "blobs")) == {sha(b"version 29")}
        events = collected_events(registry)
        assert sum(event["count"] for event in events) == 29
        await registry.close()

    asyncio.run(scenario())


# -- the command, against a real server -----------------------------------------------------


@dataclass
class Garbage:
    live: dict[str, bytes]  # sha256 -> content (objects and open parts)
    garbage: dict[str, bytes]
    objects: dict[str, bytes]  # key -> content, for reading back
    open_part: bytes  # part 1 of the upload left open on "open"


def make_garbage(s3: Any, bucket: str) -> Garbage:
    """Overwrites, deletes, shared content, a completed and an aborted multipart upload and
    an open one, through boto3 with its default settings."""
    blobs = {name: os.urandom(1000 + i) for i, name in enumerate("ABCSQR")}
    big, tail = os.urandom(MIN_PART_SIZE), os.urandom(777)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k1", Body=blobs["A"])
    s3.put_object(Bucket=bucket, Key="k1", Body=blobs["B"])  # A is garbage
    s3.put_object(Bucket=bucket, Key="k2", Body=blobs["C"])
    s3.delete_object(Bucket=bucket, Key="k2")  # C is garbage
    s3.put_object(Bucket=bucket, Key="s1", Body=blobs["S"])
    s3.put_object(Bucket=bucket, Key="s2", Body=blobs["S"])
    s3.delete_object(Bucket=bucket, Key="s1")  # S stays: s2 has it
    done = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    parts = [
        {"PartNumber": n, "ETag": s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=done, PartNumber=n, Body=body)["ETag"]}
        for n, body in ((1, big), (2, tail))
    ]  # fmt: skip
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=done, MultipartUpload={"Parts": parts}
    )  # both parts are garbage now
    aborted = s3.create_multipart_upload(Bucket=bucket, Key="ab")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="ab", UploadId=aborted, PartNumber=1, Body=blobs["Q"])
    s3.abort_multipart_upload(Bucket=bucket, Key="ab", UploadId=aborted)  # Q is garbage
    still = s3.create_multipart_upload(Bucket=bucket, Key="open")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="open", UploadId=still, PartNumber=1, Body=blobs["R"])
    live = [blobs["B"], blobs["S"], big + tail, blobs["R"]]
    garbage = [blobs["A"], blobs["C"], big, tail, blobs["Q"]]
    return Garbage(
        live={sha(b): b for b in live},
        garbage={sha(b): b for b in garbage},
        objects={"k1": blobs["B"], "s2": blobs["S"], "mp": big + tail},
        open_part=blobs["R"],
    )


def check_reads(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, content in objects.items():
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert sha(body) == sha(content)


def reported(data: dict[str, Any]) -> dict[str, int]:
    assert all(b["backend_id"] == "local" for b in data["collected"])
    return {b["sha256"]: b["size"] for b in data["collected"]}


def gc_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "BlobsCollected"]


@pytest.fixture(scope="module")
def gc_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = RunningServer(tmp_path_factory.mktemp("gc") / "data").start()
    yield server
    server.stop()


def test_gc_command_against_a_running_server(gc_server: RunningServer) -> None:
    s3, blobs = gc_server.client(), gc_server.data_dir / "blobs"
    made = make_garbage(s3, "gc-endpoint")
    assert set(disk(blobs)) == set(made.live) | set(made.garbage)

    dry = cli_json("gc", "--endpoint", gc_server.endpoint, "--dry-run")
    assert dry["dry_run"] is True
    assert reported(dry) == {d: len(b) for d, b in made.garbage.items()}
    assert set(disk(blobs)) == set(made.live) | set(made.garbage)  # nothing removed

    data = cli_json("gc", "--endpoint", gc_server.endpoint)
    assert reported(data) == {d: len(b) for d, b in made.garbage.items()}
    assert data["collected_bytes"] == sum(map(len, made.garbage.values()))
    assert set(disk(blobs)) == set(made.live)
    check_reads(s3, "gc-endpoint", made.objects)
    uploads = s3.list_multipart_uploads(Bucket="gc-endpoint")["Uploads"]
    [still] = [u["UploadId"] for u in uploads if u["Key"] == "open"]
    parts = s3.list_parts(Bucket="gc-endpoint", Key="open", UploadId=still)["Parts"]
    assert [p["Size"] for p in parts] == [len(made.open_part)]  # its part survived

    [event] = gc_events(cli_json("log", "--endpoint", gc_server.endpoint)["events"])
    assert event["principal"] == "s3facade:gc"
    assert event["trigger"] == "admin"
    assert event["bytes"] == data["collected_bytes"]
    assert {b["sha256"] for b in event["blobs"]} == set(made.garbage)

    again = cli_json("gc", "--endpoint", gc_server.endpoint)
    assert (again["candidates"], again["collected"]) == (0, [])
    assert cli_json("verify", "--endpoint", gc_server.endpoint)["ok"] is True


def test_gc_keeps_noncurrent_and_locked_versions(gc_server: RunningServer) -> None:
    """Needs the versioning and Object Lock handlers (PutBucketVersioning, lock headers)."""
    s3, blobs = gc_server.client(), gc_server.data_dir / "blobs"
    s3.create_bucket(Bucket="gc-versioned")
    s3.put_bucket_versioning(Bucket="gc-versioned", VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket="gc-locked", ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket="gc-locked",
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    contents = {name: os.urandom(2000 + i) for i, name in enumerate(["v1", "v2", "v3", "l1", "l2"])}
    s3.put_object(Bucket="gc-versioned", Key="k", Body=contents["v1"])
    s3.put_object(Bucket="gc-versioned", Key="k", Body=contents["v2"])  # v1 noncurrent
    s3.delete_object(Bucket="gc-versioned", Key="k")  # a marker on top of both
    gone = s3.put_object(Bucket="gc-versioned", Key="j", Body=contents["v3"])["VersionId"]
    s3.delete_object(Bucket="gc-versioned", Key="j", VersionId=gone)  # v3 is garbage
    s3.put_object(Bucket="gc-locked", Key="k", Body=contents["l1"])
    s3.put_object(Bucket="gc-locked", Key="k", Body=contents["l2"])  # l1 noncurrent, locked
    s3.put_object(Bucket="gc-locked", Key="h", Body=contents["v1"], ObjectLockLegalHoldStatus="ON")
    before = disk(blobs)

    data = cli_json("gc", "--endpoint", gc_server.endpoint)
    assert set(reported(data)) == {sha(contents["v3"])}
    assert set(disk(blobs)) == set(before) - {sha(contents["v3"])}
    for bucket in ("gc-versioned", "gc-locked"):
        versions = s3.list_object_versions(Bucket=bucket).get("Versions", [])
        assert versions
        for version in versions:
            body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
            assert sha(body["Body"].read()) in {sha(c) for c in contents.values()}
    assert len(s3.list_object_versions(Bucket="gc-versioned")["Versions"]) == 2
    assert len(s3.list_object_versions(Bucket="gc-locked")["Versions"]) == 3


def test_offline_gc_on_a_stopped_server(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data").start()
    try:
        made = make_garbage(server.client(), "gc-offline")
        busy = cli("gc", "--data-dir", str(server.data_dir), ok=False)
        assert busy.returncode == 2 and "--endpoint" in busy.stderr
    finally:
        server.stop()
    blobs, data_dir = server.data_dir / "blobs", str(server.data_dir)

    dry = cli_json("gc", "--data-dir", data_dir, "--dry-run")
    assert set(reported(dry)) == set(made.garbage)
    assert set(disk(blobs)) == set(made.live) | set(made.garbage)

    data = cli_json("gc", "--data-dir", data_dir)
    assert set(reported(data)) == set(made.garbage)
    assert set(disk(blobs)) == set(made.live)
    [event] = gc_events(cli_json("log", "--data-dir", data_dir)["events"])
    assert (event["trigger"], event["bytes"]) == ("offline", data["collected_bytes"])
    assert cli_json("verify", "--data-dir", data_dir)["ok"] is True
    table = cli("gc", "--data-dir", data_dir).stdout
    assert "0 candidate(s)" in table

    server.start()  # the log gc wrote to serves again
    try:
        check_reads(server.client(), "gc-offline", made.objects)
    finally:
        server.stop()
    missing = cli("gc", "--data-dir", str(tmp_path / "nowhere"), ok=False)
    assert missing.returncode == 2 and "no registry" in missing.stderr


def test_background_gc_pass(tmp_path: Path) -> None:
    config = tmp_path / "s3facade.toml"
    config.write_text("[server]\ngc_interval_seconds = 0.3\n")
    server = RunningServer(tmp_path / "data", extra_args=["--config", str(config)]).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="gc-background")
        s3.put_object(Bucket="gc-background", Key="k", Body=b"first")
        s3.put_object(Bucket="gc-background", Key="k", Body=b"second")
        deadline = time.monotonic() + 20
        while sha(b"first") in disk(server.data_dir / "blobs"):
            assert time.monotonic() < deadline, "background gc did not run"
            time.sleep(0.1)
        assert set(disk(server.data_dir / "blobs")) == {sha(b"second")}
        assert s3.get_object(Bucket="gc-background", Key="k")["Body"].read() == b"second"
        deadline = time.monotonic() + 10
        while not (events := gc_events(cli_json("log", "--endpoint", server.endpoint)["events"])):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert events[0]["trigger"] == "background"
        assert events[0]["blobs"] == [{"backend_id": "local", "sha256": sha(b"first"), "size": 5}]
    finally:
        server.stop()


def test_gc_is_per_backend(tmp_path: Path, moto_upstream: Any) -> None:
    """The same content on two backends: only the copy nothing references on its own
    backend goes (the upstream backend has no digest listing; the log suffices)."""
    prefix = f"gc-{os.urandom(4).hex()}/"
    config = config_file(
        tmp_path / "s3facade.toml",
        {"moto": moto_upstream.table(prefix=prefix)},
        {"default": "local", "buckets": {"gc-up-*": "moto"}},
    )
    server = RunningServer(tmp_path / "data", extra_args=["--config", str(config)]).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="gc-local")
        s3.create_bucket(Bucket="gc-up-one")
        s3.put_object(Bucket="gc-local", Key="k", Body=b"content X")
        s3.put_object(Bucket="gc-up-one", Key="k", Body=b"content X")
        s3.put_object(Bucket="gc-up-one", Key="k", Body=b"content Y")  # X orphaned on moto
        data = cli_json("gc", "--endpoint", server.endpoint)
        assert [(b["backend_id"], b["sha256"]) for b in data["collected"]] == [
            ("moto", sha(b"content X"))
        ]
        stored = [key.rsplit("/", 1)[-1] for key in moto_upstream.keys(f"{prefix}sha256/")]
        assert stored == [sha(b"content Y")]
        assert set(disk(server.data_dir / "blobs")) == {sha(b"content X")}
        assert s3.get_object(Bucket="gc-local", Key="k")["Body"].read() == b"content X"
        assert s3.get_object(Bucket="gc-up-one", Key="k")["Body"].read() == b"content Y"
    finally:
        server.stop()
