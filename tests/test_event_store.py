"""The event store is the one place that holds SQL for the log; what it answers."""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import duckdb

from s3facade.backends import BackendSet
from s3facade.backends.local import LocalCAS
from s3facade.registry import ObjectSpec, Provenance, Registry
from s3facade.registry.audit import object_history
from s3facade.registry.event_store import COLUMNS, EVENT_COLUMNS, SCHEMA, EventStore
from s3facade.registry.events import EventType
from s3facade.registry.log import EventLog
from s3facade.registry.model import Versioning

ROOT = Path(__file__).resolve().parent.parent
WHO = Provenance("AKIDTEST", "127.0.0.1:5555", "aws-cli/2.0 Python/3.11", "REQ1")
LOG_SQL = re.compile(r"\b(FROM|INTO|UPDATE|TABLE)\s+events\b", re.IGNORECASE)


def test_no_module_but_the_store_writes_sql_for_the_log() -> None:
    """The sandboxed SQL worker names the table only to present it to admin queries."""
    holders = {
        path.relative_to(ROOT).as_posix()
        for package in ("registry", "s3facade", "backends")
        for path in (ROOT / package).rglob("*.py")
        if LOG_SQL.search(path.read_text())
    }
    # lake_child.py is the shared log's side of the store, run under the lake's DuckDB.
    assert holders == {
        "registry/event_store.py",
        "registry/sql_worker.py",
        "registry/lake_child.py",
    }


def test_the_schema_and_columns_come_from_one_definition() -> None:
    assert COLUMNS.split(", ") == [name for name, _ in EVENT_COLUMNS]
    for name, kind in EVENT_COLUMNS:
        assert f"{name} {kind}" in SCHEMA
    # The lake's table (a file of another environment: read, not imported) has the same
    # columns, in the same order, and the gateway that wrote each row last.
    tree = ast.parse((ROOT / "registry/lake_child.py").read_text())
    constants = {
        target.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id in ("EVENTS", "TAIL")
    }
    lake = re.findall(r"(\w+) (BIGINT|TIMESTAMP|VARCHAR|JSON)", constants["EVENTS"])
    assert lake == [*EVENT_COLUMNS, ("gateway", "VARCHAR")]
    assert constants["TAIL"].startswith(f"SELECT {COLUMNS} FROM events ")


def test_the_store_answers_the_narrow_questions(tmp_path: Path) -> None:
    async def scenario() -> None:
        registry = Registry.open(tmp_path, BackendSet({"local": LocalCAS(tmp_path / "b")}, "local"))
        await registry.create_bucket("one", "us-east-1", WHO)
        for body in (b"first", b"second"):
            await registry.put_object("one", "k", _once(body), spec=ObjectSpec(), provenance=WHO)
        await registry.put_object("one", "other", _once(b"x"), spec=ObjectSpec(), provenance=WHO)
        source = registry.head_object("one", "k")
        await registry.copy_object(source, "one", "copy", spec=ObjectSpec(), provenance=WHO)
        await registry.close()

    asyncio.run(scenario())
    store = EventStore(tmp_path / "registry.duckdb", read_only=True)
    try:
        seq, digest, time = store.head()
        assert seq == 5 and store.stored_hash(seq) == digest and time is not None
        assert [e.seq for e in store.scan(after=1, through=3)] == [2, 3]
        assert [e.type for e in store.key_history("one", "k")] == [EventType.OBJECT_WRITTEN] * 2
        assert [e.key for e in store.copies_of("one", "k")] == ["copy"]
        second = list(store.key_history("one", "k"))[1].data["sha256"]
        assert [e.seq for e in store.writes_of_content("one", "k", second)] == [3]
        assert [e.seq for e in store.recent(since=None, bucket="one", limit=2)] == [1, 2]
        assert store.recent(since=time + timedelta(seconds=1), bucket=None, limit=9) == []
        assert store.newest_of(EventType.OBJECT_WRITTEN).seq == 5  # type: ignore[union-attr]
        assert store.first_after(4).seq == 5  # type: ignore[union-attr]
        assert len(store.blobs_named_after(3)) == 2  # "x" and the copy's bytes (= "second")
        assert set(store.uncollected_blobs()) == store.blobs_named_after(0)
        export = tmp_path / "events.parquet"
        store.export_parquet(export, 2, 3)
        assert export.stat().st_size > 0
    finally:
        store.close()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_the_copies_of_a_key_come_from_an_index_that_is_not_believed_alone(
    tmp_path: Path,
) -> None:
    """copies_of reads the `copies` table (every event's JSON took seconds at ten million
    events); a log from before the table gains it when opened writable, and a row of it
    that names an event which is no copy of the key is not believed."""

    async def scenario() -> None:
        registry = Registry.open(tmp_path, BackendSet({"local": LocalCAS(tmp_path / "b")}, "local"))
        await registry.create_bucket("one", "us-east-1", WHO)
        await registry.put_object("one", "k", _once(b"bytes"), spec=ObjectSpec(), provenance=WHO)
        source = registry.head_object("one", "k")
        for target in ("copy-1", "copy-2"):
            await registry.copy_object(source, "one", target, spec=ObjectSpec(), provenance=WHO)
        await registry.close()

    asyncio.run(scenario())
    log = tmp_path / "registry.duckdb"
    db = duckdb.connect(str(log))
    assert db.execute("SELECT seq, bucket, key FROM copies ORDER BY seq").fetchall() == [
        (3, "one", "k"),
        (4, "one", "k"),
    ]
    db.execute("DROP TABLE copies")  # as a log written before the index
    db.close()
    store = EventStore(log, read_only=True)  # cannot build it: reads every event instead
    assert [e.key for e in store.copies_of("one", "k")] == ["copy-1", "copy-2"]
    assert [e.key for e in store.copies_of("one", "k", newest=1)] == ["copy-2"]
    store.close()
    EventStore(log).close()  # writable: builds the index from the events
    db = duckdb.connect(str(log))
    assert db.execute("SELECT count(*) FROM copies").fetchone() == (2,)
    db.execute("INSERT INTO copies VALUES (2, 'one', 'other')")  # a false entry
    db.close()
    store = EventStore(log, read_only=True)
    try:
        assert [e.key for e in store.copies_of("one", "k")] == ["copy-1", "copy-2"]
        assert [e.key for e in store.copies_of("one", "k", newest=1)] == ["copy-2"]
        assert list(store.copies_of("one", "other")) == []  # event 2 copied nothing
    finally:
        store.close()


def test_a_versions_history_can_be_its_newest_events_and_its_write(tmp_path: Path) -> None:
    """The console's page of a version read or changed countless times holds a bounded
    number of its events, but never loses the write that made the version."""

    async def scenario() -> str:
        registry = Registry.open(tmp_path, BackendSet({"local": LocalCAS(tmp_path / "b")}, "local"))
        await registry.create_bucket("one", "us-east-1", WHO)
        await registry.put_bucket_versioning("one", Versioning.ENABLED, WHO)
        await registry.put_object("one", "k", _once(b"old"), spec=ObjectSpec(), provenance=WHO)
        old = registry.head_object("one", "k").version_id
        await registry.put_object("one", "k", _once(b"new"), spec=ObjectSpec(), provenance=WHO)
        for n in range(30):
            await registry.put_object_tagging("one", "k", old, {"n": str(n)}, WHO)
            await registry.put_object_tagging("one", "k", None, {"m": str(n)}, WHO)
        await registry.close()
        return old

    old = asyncio.run(scenario())
    log = EventLog(tmp_path / "registry.duckdb", read_only=True)
    try:
        whole = object_history(log, "one", "k", old)
        page = object_history(log, "one", "k", old, newest=5)
    finally:
        log.close_sync()
    assert len(whole.events) == 31  # its write and its 30 tag changes
    assert [e.type for e in page.events] == [EventType.OBJECT_WRITTEN] + [EventType.TAGS_SET] * 5
    assert page.events[1:] == whole.events[-5:] and page.events[0] == whole.events[0]
    assert {e.data.get("version_id") for e in page.events} == {old}
