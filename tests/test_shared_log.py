"""Several gateways, one log (docs/scale-out.md): real PostgreSQL (postgres.sh), moto in
server mode for the lake's files and the objects' bytes, and three `s3facade serve`
processes on their own ports, driven by boto3 concurrently, one client per gateway."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from botocore.exceptions import ClientError

from s3facade.registry import log as log_module
from s3facade.registry.errors import BytesCollected, LogUnavailable
from s3facade.registry.event_store import row_of
from s3facade.registry.events import Event, seal
from s3facade.registry.lake_store import LakeEventStore, LakeProcess, LakeSettings
from s3facade.registry.log import EventLog
from s3facade.registry.payloads import BlobsCollected, ObjectRead, PartUploaded
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer
from tests.shared_log_services import POSTGRES_SH, GatewayCluster, Postgres
from tests.upstream_services import FaultProxy, Upstream

_T = TypeVar("_T")
VISIBLE_WITHIN = 10.0  # seconds: a generous bound for a loaded CI machine (measured: bench)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    if not POSTGRES_SH.exists():
        pytest.fail(f"{POSTGRES_SH} not found (set S3FACADE_POSTGRES_SH)")
    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(
    postgres: Postgres, moto_upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayCluster]:
    running = GatewayCluster(
        tmp_path_factory.mktemp("cluster"), moto_upstream, postgres.dsn, count=3
    ).start()
    yield running
    running.stop()


_names = itertools.count()


def new_bucket(client: Any, **options: Any) -> str:
    name = f"shared-{next(_names)}-{uuid.uuid4().hex[:6]}"
    client.create_bucket(Bucket=name, **options)
    return name


def eventually(check: Callable[[], _T], within: float = VISIBLE_WITHIN) -> _T:
    """check()'s value once it stops raising (a ClientError or an AssertionError)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return check()
        except (ClientError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def versions(client: Any, bucket: str) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, delete marker), as ListObjectVersions orders them."""
    found = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in page.get("Versions", []):
            found.append((entry["Key"], entry["VersionId"], entry["IsLatest"], False))
        for entry in page.get("DeleteMarkers", []):
            found.append((entry["Key"], entry["VersionId"], entry["IsLatest"], True))
    return sorted(found)


def verify(gateway: RunningServer) -> subprocess.CompletedProcess[str]:
    return admin(gateway, "verify")


def verified_everywhere(cluster: GatewayCluster) -> None:
    """`verify` passes on every gateway (each walks the one chain)."""
    for gateway in cluster.gateways:
        checked = verify(gateway)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def admin(gateway: RunningServer, *command: str) -> subprocess.CompletedProcess[str]:
    """An s3facade command run against a gateway (--endpoint)."""
    env = {
        **os.environ,
        "S3FACADE_ACCESS_KEY_ID": ACCESS_KEY,
        "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    return subprocess.run(
        [sys.executable, "-m", "s3facade", *command, "--endpoint", gateway.endpoint],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def test_a_write_is_read_at_once_where_it_was_made_and_soon_everywhere(
    cluster: GatewayCluster,
) -> None:
    clients = cluster.clients()
    bucket = new_bucket(clients[0])
    for writer, client in enumerate(clients):
        body = f"from gateway {writer}".encode()
        client.put_object(Bucket=bucket, Key=f"k{writer}", Body=body)
        # Read-your-writes: the writing gateway applied its commit before acknowledging.
        assert client.get_object(Bucket=bucket, Key=f"k{writer}")["Body"].read() == body
        for reader in clients:
            got = eventually(lambda r=reader, w=writer: r.get_object(Bucket=bucket, Key=f"k{w}"))
            assert got["Body"].read() == body
    listings = [eventually(lambda c=c: _keys(c, bucket, expect=len(clients))) for c in clients]
    assert listings == [[f"k{i}" for i in range(len(clients))]] * len(clients)


def _keys(client: Any, bucket: str, expect: int) -> list[str]:
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) == expect
    return keys


def test_a_name_made_on_one_gateway_is_there_at_once_on_every_other(
    cluster: GatewayCluster,
) -> None:
    """A miss (no such bucket, key, version or upload) takes on the log's news before it
    answers, and every write does first: a client that got its answer from one gateway
    finds what it made on any other, with no wait for a poll."""
    first, second, third = cluster.clients()
    bucket = new_bucket(first)
    second.put_object(Bucket=bucket, Key="made", Body=b"here")
    assert third.get_object(Bucket=bucket, Key="made")["Body"].read() == b"here"
    upload = third.create_multipart_upload(Bucket=bucket, Key="parts")["UploadId"]
    part = b"p" * (5 << 20)
    etags = [
        client.upload_part(
            Bucket=bucket, Key="parts", UploadId=upload, PartNumber=number, Body=part
        )["ETag"]
        for number, client in ((1, first), (2, second))
    ]
    second.complete_multipart_upload(
        Bucket=bucket, Key="parts", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]},
    )  # fmt: skip
    assert first.head_object(Bucket=bucket, Key="parts")["ContentLength"] == 2 * len(part)


def test_conditional_writes_racing_on_several_gateways_let_exactly_one_win(
    cluster: GatewayCluster,
) -> None:
    clients = cluster.clients()
    bucket = new_bucket(clients[0])
    eventually(lambda: [c.head_bucket(Bucket=bucket) for c in clients])
    start = threading.Barrier(12)

    def create_once(attempt: int) -> tuple[int, str]:
        client = clients[attempt % len(clients)]
        start.wait()
        try:
            client.put_object(
                Bucket=bucket, Key="once", Body=f"attempt {attempt}".encode(), IfNoneMatch="*"
            )
        except ClientError as exc:
            return attempt, exc.response["Error"]["Code"]
        return attempt, "ok"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(create_once, range(12)))
    winners = [attempt for attempt, outcome in outcomes if outcome == "ok"]
    assert len(winners) == 1, outcomes
    assert {o for _, o in outcomes} - {"ok"} <= {"PreconditionFailed", "ConditionalRequestConflict"}
    body = f"attempt {winners[0]}".encode()
    for client in clients:
        got = eventually(lambda c=client: c.get_object(Bucket=bucket, Key="once"))
        assert got["Body"].read() == body
        assert len(versions(client, bucket)) == 1


def test_a_lock_set_on_one_gateway_holds_on_the_others(cluster: GatewayCluster) -> None:
    first, second, third = cluster.clients()
    bucket = new_bucket(first, ObjectLockEnabledForBucket=True)
    until = datetime.now(UTC) + timedelta(days=1)
    kept = first.put_object(
        Bucket=bucket, Key="kept", Body=b"retained", ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )["VersionId"]  # fmt: skip
    # Tried at once on another gateway than the one that set each protection (before
    # that gateway's poll could have brought it: the delete takes on the log first).
    with pytest.raises(ClientError) as refused:
        second.delete_object(Bucket=bucket, Key="kept", VersionId=kept)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    held = first.put_object(Bucket=bucket, Key="held", Body=b"on hold")["VersionId"]
    eventually(lambda: third.head_object(Bucket=bucket, Key="held", VersionId=held))
    third.put_object_legal_hold(
        Bucket=bucket, Key="held", VersionId=held, LegalHold={"Status": "ON"}
    )
    with pytest.raises(ClientError) as refused:
        first.delete_object(Bucket=bucket, Key="held", VersionId=held)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    for client in (first, second, third):
        got = eventually(lambda c=client: c.get_object(Bucket=bucket, Key="kept", VersionId=kept))
        assert got["Body"].read() == b"retained"
        assert c_get(client, bucket, "held", held) == b"on hold"


def c_get(client: Any, bucket: str, key: str, version: str) -> bytes:
    body: bytes = client.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
    return body


def test_many_writers_on_the_same_keys_leave_one_history_on_every_gateway(
    cluster: GatewayCluster,
) -> None:
    clients = cluster.clients()
    bucket = new_bucket(clients[0])
    clients[0].put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    eventually(lambda: [c.head_bucket(Bucket=bucket) for c in clients])

    def write(number: int) -> tuple[str, str]:
        client, key = clients[number % len(clients)], f"key-{number % 4}"
        if number % 7 == 6:  # deletes race with the writes: markers in the same history
            return key, client.delete_object(Bucket=bucket, Key=key)["VersionId"]
        put = client.put_object(Bucket=bucket, Key=key, Body=f"write {number}".encode())
        return key, put["VersionId"]

    with ThreadPoolExecutor(12) as pool:
        acknowledged = list(pool.map(write, range(120)))
    assert len(set(acknowledged)) == len(acknowledged)  # no version id given twice

    def agree() -> list[tuple[str, str, bool, bool]]:
        seen = [versions(c, bucket) for c in clients]
        assert seen[1:] == seen[:-1]
        return seen[0]

    history = eventually(agree)
    assert sorted((key, version) for key, version, _, _ in history) == sorted(acknowledged)
    assert sum(latest for _, _, latest, _ in history) == 4  # one current version per key
    verified_everywhere(cluster)
    # The log's SQL, on any gateway, counts the same writes of this bucket.
    query = f"SELECT count(*) AS n FROM writes WHERE bucket = '{bucket}'"
    counted = [admin(g, "sql", "--json", query) for g in cluster.gateways]
    assert all(done.returncode == 0 for done in counted), [d.stderr for d in counted]
    puts = sum(1 for number in range(120) if number % 7 != 6)
    assert [json.loads(done.stdout)["rows"][0][0] for done in counted] == [puts] * 3


def test_a_gateway_killed_mid_write_loses_nothing_acknowledged(cluster: GatewayCluster) -> None:
    clients = cluster.clients()
    bucket = new_bucket(clients[0])
    eventually(lambda: [c.head_bucket(Bucket=bucket) for c in clients])
    victim = clients[1]
    acknowledged: list[str] = []
    stop = threading.Event()

    def write(worker: int) -> None:
        for number in itertools.count():
            if stop.is_set():
                return
            key = f"w{worker}-{number}"
            try:
                victim.put_object(Bucket=bucket, Key=key, Body=key.encode())
            except Exception:
                return  # the gateway died under this request: not acknowledged
            acknowledged.append(key)

    with ThreadPoolExecutor(6) as pool:
        running = [pool.submit(write, worker) for worker in range(6)]
        eventually(lambda: _at_least(acknowledged, 30), within=60)
        cluster.kill(1)
        stop.set()
        for future in running:
            future.result()
    survivors = [clients[0], clients[2]]
    for client in survivors:
        listed = eventually(lambda c=client: _all_listed(c, bucket, acknowledged))
        for key in acknowledged:
            assert key in listed
    cluster.restart(1)  # catches up from the log
    restarted = cluster.gateways[1].client()
    listings = [eventually(lambda c=c: _all_listed(c, bucket, acknowledged)) for c in clients]
    listings[1] = _all_listed(restarted, bucket, acknowledged)
    assert listings[0] == listings[1] == listings[2]
    for key in acknowledged[:20]:
        assert restarted.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    restarted.put_object(Bucket=bucket, Key="after-restart", Body=b"again")
    eventually(lambda: clients[0].head_object(Bucket=bucket, Key="after-restart"))
    verified_everywhere(cluster)


def _one_count(done: subprocess.CompletedProcess[str]) -> int:
    assert done.returncode == 0, done.stderr
    count = int(json.loads(done.stdout)["rows"][0][0])
    assert count > 0  # the SQL mirror may lag the log by a refresh
    return count


def _at_least(items: list[str], count: int) -> None:
    assert len(items) >= count


def _all_listed(client: Any, bucket: str, expected: list[str]) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    listed = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert set(expected) <= set(listed)
    return listed


def test_compaction_beside_live_writers_keeps_every_event_and_who_wrote_it(
    cluster: GatewayCluster,
) -> None:
    """The gateways compact every 2 s during these tests (one at a time); here once more
    by hand while every gateway writes, then the lake is read with plain SQL."""
    settings = _settings(cluster, "reader")
    # No retries: a write that failed beside the compaction fails the test.
    clients = [g.client(retries={"max_attempts": 1}) for g in cluster.gateways]
    bucket = new_bucket(clients[0])
    eventually(lambda: [c.head_bucket(Bucket=bucket) for c in clients])
    stop = threading.Event()

    def write(client: Any) -> int:
        written = 0
        while not stop.is_set():
            client.put_object(Bucket=bucket, Key=f"c{written}", Body=b"x")
            written += 1
        return written

    store = LakeEventStore(settings)
    try:
        with ThreadPoolExecutor(3) as pool:
            writers = [pool.submit(write, client) for client in clients]
            done = eventually(lambda: _maintained(store), within=60)
            stop.set()
            assert all(writer.result() > 0 for writer in writers)
        assert set(done) == {"flushed", "merged", "expired", "cleaned"}
        reader = LakeProcess(settings, "reader")
        try:
            rows = reader.call(
                "query", "SELECT gateway, count(*), max(seq) FROM events GROUP BY 1", []
            )
        finally:
            reader.close()
        by_gateway = {gateway: count for gateway, count, _ in rows}
        assert {"gw1", "gw2", "gw3"} <= set(by_gateway)
        head = max(last for _, _, last in rows)
        assert sum(by_gateway.values()) == head  # seq 1..head, none twice, none missing
    finally:
        store.close()
    verified_everywhere(cluster)


def test_a_commit_left_unpublished_is_taken_on_by_the_next_writer(
    cluster: GatewayCluster,
) -> None:
    """A gateway killed between its lake commit and publishing it (the head row and the
    recent rows in PostgreSQL) leaves events the head row does not name: the next commit
    sees that the lake's snapshot moved, reads them from the lake and seals after them."""
    clients = cluster.clients()
    bucket = new_bucket(clients[0])
    clients[0].put_object(Bucket=bucket, Key="read-by-the-lost", Body=b"x")
    store = LakeEventStore(_settings(cluster, "lost"))
    store.order.publish = lambda rows, snapshot: None  # type: ignore[method-assign]
    try:
        store.order.lock()
        try:
            seq, digest, _ = store.head()
            previous = store.begin(seq)
            seq, digest = (previous[-1].seq, previous[-1].hash) if previous else (seq, digest)
            read = ObjectRead(
                principal="lost", client_address="127.0.0.1:1", user_agent="test",
                request_id="LOST", version_id="null", sha256="0" * 64, etag="0" * 32,
                method="GET",
            ).event(bucket, "read-by-the-lost")  # fmt: skip
            lost = seal(read, seq + 1, datetime.now(UTC).replace(tzinfo=None), digest)
            store.write([row_of(lost)])
        finally:
            store.order.unlock()
    finally:
        store.close()
    for number, client in enumerate(clients):
        client.put_object(Bucket=bucket, Key=f"after-{number}", Body=b"y")
    verified_everywhere(cluster)
    query = f"SELECT count(*) FROM reads WHERE bucket = '{bucket}' AND principal = 'lost'"
    counted = eventually(lambda: _one_count(admin(cluster.gateways[2], "sql", "--json", query)))
    assert counted == 1


def _settings(cluster: GatewayCluster, gateway_id: str) -> LakeSettings:
    return LakeSettings(
        catalog=cluster.catalog,
        data_path=f"s3://{cluster.store.bucket}/{cluster.schema}/events/",
        endpoint=cluster.store.endpoint,
        gateway_id=gateway_id,
        access_key_id=cluster.store.access_key,
        secret_access_key=cluster.store.secret_key,
        metadata_schema=cluster.schema,
    )


def _maintained(store: LakeEventStore) -> dict[str, int]:
    done = store.maintain()
    assert done is not None  # None: a gateway was compacting; try again
    return done


def test_without_its_catalog_a_gateway_refuses_writes_with_503_and_records_nothing(
    postgres: Postgres, moto_upstream: Upstream, tmp_path: Path
) -> None:
    proxy = FaultProxy(postgres.port)
    alone = GatewayCluster(tmp_path, moto_upstream, postgres.through(proxy.port), count=1)
    try:
        alone.start()
        client = alone.gateways[0].client(retries={"max_attempts": 1})
        bucket = new_bucket(client)
        client.put_object(Bucket=bucket, Key="before", Body=b"1")
        proxy.refuse()
        with pytest.raises(ClientError) as refused:
            client.put_object(Bucket=bucket, Key="during", Body=b"2")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        # Reads go on from the views; their records wait for the catalog.
        assert client.get_object(Bucket=bucket, Key="before")["Body"].read() == b"1"
        time.sleep(1.5)  # a flush of the records failed meanwhile
        proxy.accept()
        proxy.clear()
        eventually(lambda: client.put_object(Bucket=bucket, Key="after", Body=b"3"), within=30)
        listed = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert listed == ["after", "before"]
        query = f"SELECT count(*) FROM reads WHERE bucket = '{bucket}' AND key = 'before'"
        counted = eventually(lambda: _one_count(admin(alone.gateways[0], "sql", "--json", query)))
        assert counted == 1
        checked = verify(alone.gateways[0])
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        alone.stop()
        proxy.close()


def test_a_gateway_far_behind_takes_on_the_log_in_bounded_pieces(
    cluster: GatewayCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However far behind a gateway is, it holds at most FOLLOW_CHUNK of the others'
    events in memory at a time, and ends at the same head."""
    writer = EventLog(tmp_path / "a.duckdb", store=LakeEventStore(_settings(cluster, "a")))
    follower = EventLog(tmp_path / "b.duckdb", store=LakeEventStore(_settings(cluster, "b")))
    try:
        assert follower.shared
        monkeypatch.setattr(log_module, "FOLLOW_CHUNK", 10)
        pieces: list[int] = []
        store = follower.store
        assert isinstance(store, LakeEventStore)
        taken = store.published_since

        def spied(after: int, through: int) -> list[Any]:
            pieces.append(through - after)
            return taken(after, through)

        monkeypatch.setattr(store, "published_since", spied)
        read = ObjectRead(
            principal="far", client_address="127.0.0.1:1", user_agent="test",
            request_id="FAR", version_id="null", sha256="0" * 64, etag="0" * 32, method="GET",
        )  # fmt: skip
        writer.append_now([read.event("far-behind", f"k{n}") for n in range(25)])
        assert follower.poll_shared() >= 25  # and whatever the gateways wrote meanwhile
        assert follower.last_seq >= writer.last_seq  # the chain checked all the way
        assert max(pieces) <= 10 and sum(pieces) >= 25
    finally:
        writer.close_sync()
        follower.close_sync()


def test_a_read_record_the_log_keeps_refusing_is_let_go_and_writes_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read records wait while a shared log cannot record, but not for ever: one the lake
    refused for itself would otherwise ride in, and fail, every batch after it."""
    monkeypatch.setattr(log_module, "RECORDS_KEPT_SECONDS", 0.3)
    monkeypatch.setattr(log_module, "RECORD_LAG_SECONDS", 0.05)
    read = ObjectRead(
        principal="r", client_address="127.0.0.1:1", user_agent="test", request_id="R",
        version_id="null", sha256="0" * 64, etag="0" * 32, method="GET",
    ).event("b", "poison")  # fmt: skip
    write = ObjectRead(
        principal="w", client_address="127.0.0.1:1", user_agent="test", request_id="W",
        version_id="null", sha256="0" * 64, etag="0" * 32, method="GET",
    ).event("b", "fine")  # fmt: skip

    async def scenario() -> list[str | None]:
        log = EventLog(tmp_path / "log.duckdb")
        commit = log._commit_batch
        failures = [0]

        def refusing(batch: list[Any]) -> list[Any]:
            if any(e.key == "poison" for pending in batch for e in pending.events):
                failures[0] += 1
                raise LogUnavailable("the lake refused (InvalidInputException): poison")
            return commit(batch)

        monkeypatch.setattr(log, "_commit_batch", refusing)
        log.record([read])
        await asyncio.sleep(0.1)  # its flush failed: put back
        with pytest.raises(LogUnavailable):
            await log.append([write])  # rides in with the record, fails with it
        await asyncio.sleep(0.5)  # past RECORDS_KEPT_SECONDS: the record is let go
        [committed] = await log.append([write])
        assert committed.key == "fine" and failures[0] >= 2
        keys = [e.key for e in log.store.scan()]
        await log.close()
        return keys

    assert asyncio.run(scenario()) == ["fine"]


def _stored(cluster: GatewayCluster, body: bytes) -> bool:
    """Whether the byte store holds `body`'s blob (backends.upstream's layout)."""
    digest = hashlib.sha256(body).hexdigest()
    key = f"{cluster.schema}/bytes/sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    found = cluster.store.client().list_objects_v2(Bucket=cluster.store.bucket, Prefix=key)
    return found.get("KeyCount", 0) > 0


def test_gc_on_one_gateway_removes_only_what_no_gateway_references(
    cluster: GatewayCluster,
) -> None:
    clients = cluster.clients()
    bucket = new_bucket(clients[0])
    salt = uuid.uuid4().hex.encode()
    doomed, kept, shared = b"doomed " + salt, b"kept " + salt, b"shared " + salt
    clients[0].put_object(Bucket=bucket, Key="a", Body=doomed)
    clients[1].put_object(Bucket=bucket, Key="a", Body=kept)  # doomed: referenced no more
    clients[2].put_object(Bucket=bucket, Key="b", Body=shared)
    clients[1].put_object(Bucket=bucket, Key="c", Body=shared)
    # A locked version that is no longer current, on another gateway: its bytes stay.
    locked_bucket = new_bucket(clients[2], ObjectLockEnabledForBucket=True)
    retained = b"retained " + salt
    locked = clients[2].put_object(
        Bucket=locked_bucket, Key="k", Body=retained, ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=1),
    )["VersionId"]  # fmt: skip
    clients[1].put_object(Bucket=locked_bucket, Key="k", Body=b"newer " + salt)
    clients[0].delete_object(Bucket=locked_bucket, Key="k")
    assert _stored(cluster, doomed)
    done = admin(cluster.gateways[0], "gc", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    removed = {blob["sha256"] for blob in json.loads(done.stdout)["collected"]}
    digest = {body: hashlib.sha256(body).hexdigest() for body in (doomed, kept, shared, retained)}
    assert digest[doomed] in removed
    assert not {digest[kept], digest[shared], digest[retained]} & removed
    assert not _stored(cluster, doomed)
    for client in clients:
        assert client.get_object(Bucket=bucket, Key="a")["Body"].read() == kept
        assert client.get_object(Bucket=bucket, Key="b")["Body"].read() == shared
        assert c_get(client, locked_bucket, "k", locked) == retained
    # The removal is in the shared log: no gateway's next pass takes it for a candidate.
    again = json.loads(admin(cluster.gateways[2], "gc", "--json").stdout)
    assert digest[doomed] not in {blob["sha256"] for blob in again["collected"]}
    verified_everywhere(cluster)


def test_gc_racing_writes_of_the_same_bytes_on_other_gateways_loses_no_version(
    cluster: GatewayCluster,
) -> None:
    """Two gateways keep overwriting two keys with three bodies (so one body at a time is
    referenced by nothing) while a third collects again and again: every write the
    clients were told succeeded is readable, whole, from every gateway afterwards. The
    writers pause now and then, so that passes find a body unreferenced since they were
    planned; they go on until a pass removed one (at most 40 s)."""
    clients = cluster.clients()
    bucket = new_bucket(clients[0])
    salt = uuid.uuid4().hex.encode()
    bodies = [b"body %d %s" % (n, salt) for n in range(3)]
    digests = {hashlib.sha256(body).hexdigest() for body in bodies}
    last: dict[str, bytes] = {}
    removed: set[str] = set()
    started = time.monotonic()

    def racing() -> bool:
        elapsed = time.monotonic() - started
        return elapsed < 6 or (elapsed < 40 and not removed & digests)

    def overwrite(client: Any, key: str, offset: int) -> None:
        pause = random.Random(offset)
        for turn in itertools.count(offset):
            if not racing():
                return
            body = bodies[turn % 3]
            client.put_object(Bucket=bucket, Key=key, Body=body)
            last[key] = body
            time.sleep(pause.choice((0, 0, 0.05, 0.3)))

    def collect() -> None:
        while racing():
            done = admin(cluster.gateways[2], "gc", "--json")
            assert done.returncode == 0, done.stdout + done.stderr
            removed.update(blob["sha256"] for blob in json.loads(done.stdout)["collected"])

    with ThreadPoolExecutor(3) as pool:
        running = [
            pool.submit(overwrite, clients[0], "x", 0),
            pool.submit(overwrite, clients[1], "y", 1),
            pool.submit(collect),
        ]
        for future in running:
            future.result()
    assert removed & digests  # it did race

    def reads(client: Any, key: str, body: bytes) -> None:
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body

    for client in clients:
        for key, body in last.items():
            eventually(functools.partial(reads, client, key, body))
    verified_everywhere(cluster)


def test_a_write_whose_bytes_gc_removed_elsewhere_meanwhile_is_refused(
    cluster: GatewayCluster, tmp_path: Path
) -> None:
    """A write that held its digest (its bytes durable) before this gateway took on another
    gateway's BlobsCollected naming it is refused: its bytes may be gone. One that began
    to hold it after, re-made them, and commits."""
    writer = EventLog(tmp_path / "w.duckdb", store=LakeEventStore(_settings(cluster, "w")))
    collector = EventLog(tmp_path / "c.duckdb", store=LakeEventStore(_settings(cluster, "c")))
    held: dict[str, float] = {}
    writer.blob_held_since = held.get
    gone, other = (hashlib.sha256(uuid.uuid4().bytes).hexdigest() for _ in range(2))

    def part(digest: str) -> Any:
        return PartUploaded(
            principal="w", upload_id="U", part_number=1, size=1, sha256=digest,
            etag="0" * 32, checksums={}, backend_id="store",
        ).event("refused-bytes", "k")  # fmt: skip

    removal = BlobsCollected(
        principal="s3facade:gc", trigger="test", count=1, bytes=1,
        blobs=[{"backend_id": "store", "sha256": gone, "size": 1}],
        bytes_per_backend={"store": 1},
    ).event()  # fmt: skip

    async def scenario() -> None:
        held[gone] = held[other] = time.monotonic()  # durable before the removal
        collector.append_now([removal])
        with pytest.raises(BytesCollected):
            await writer.append([part(gone)])
        [kept] = await writer.append([part(other)])
        assert kept.data["sha256"] == other
        held[gone] = time.monotonic()  # made again after the removal was taken on
        [again] = await writer.append([part(gone)])
        assert again.data["sha256"] == gone
        await writer.close()

    try:
        asyncio.run(scenario())
    finally:
        collector.close_sync()


def _two_logs(
    cluster: GatewayCluster, tmp_path: Path, bucket: str
) -> tuple[EventLog, EventLog, Event]:
    """Two gateways' logs on the cluster's lake ("h" and "o"), and a read record to append."""
    holder = EventLog(tmp_path / "h.duckdb", store=LakeEventStore(_settings(cluster, "h")))
    other = EventLog(tmp_path / "o.duckdb", store=LakeEventStore(_settings(cluster, "o")))
    read = ObjectRead(
        principal="o", client_address="127.0.0.1:1", user_agent="test", request_id="O",
        version_id="null", sha256="0" * 64, etag="0" * 32, method="GET",
    ).event(bucket, "k")  # fmt: skip
    return holder, other, read


def test_while_a_gateway_holds_the_order_only_its_own_commits_go_on(
    cluster: GatewayCluster, tmp_path: Path
) -> None:
    """What gc's turns rely on (EventLog.ordered): caught up with the whole log, the holder
    commits; another gateway's commit waits until the turn ends, and comes after."""
    holder, other, read = _two_logs(cluster, tmp_path, "ordered")

    async def scenario() -> None:
        [before] = other.append_now([read])
        loop = asyncio.get_running_loop()
        async with holder.ordered() as held:
            assert holder.last_seq >= before.seq and held()
            waiting = loop.run_in_executor(None, other.append_now, [read])
            [mine] = await holder.append([read])
            await asyncio.sleep(0.5)
            assert not waiting.done()
            assert held()  # its own commit took and let go of the lock once more
        [theirs] = await waiting
        assert theirs.seq > mine.seq
        await holder.close()

    try:
        asyncio.run(scenario())
    finally:
        other.close_sync()


def test_a_turn_cancelled_while_it_takes_the_order_lets_it_go(
    cluster: GatewayCluster, tmp_path: Path
) -> None:
    """A gc pass's task cancelled while its turn is taking the deployment's lock (on the
    writer thread, where it cannot be stopped) must not leave the lock held: every other
    gateway's commits would wait for it, then fail, for as long as this one runs."""
    holder, other, read = _two_logs(cluster, tmp_path, "cancelled-turn")

    async def turn() -> None:
        async with holder.ordered():
            await asyncio.sleep(60)

    async def scenario() -> None:
        for _ in range(3):  # cancelled before, while and after the lock is taken
            for delay in (0.0, 0.01, 0.2):
                task = asyncio.create_task(turn())
                await asyncio.sleep(delay)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await holder.on_writer(lambda: None)  # what the writer thread had to do is done
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        await loop.run_in_executor(None, other.append_now, [read])
        assert time.monotonic() - began < 5  # not the lock's 10 s timeout
        await holder.close()

    try:
        asyncio.run(scenario())
    finally:
        other.close_sync()
