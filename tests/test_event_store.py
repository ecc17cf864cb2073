"""The event store is the one place that holds SQL for the log; what it answers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from s3facade.backends import BackendSet
from s3facade.backends.local import LocalCAS
from s3facade.registry import ObjectSpec, Provenance, Registry
from s3facade.registry.event_store import COLUMNS, EVENT_COLUMNS, SCHEMA, EventStore
from s3facade.registry.events import EventType

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
    assert holders == {"registry/event_store.py", "registry/sql_worker.py"}


def test_the_schema_and_columns_come_from_one_definition() -> None:
    assert COLUMNS.split(", ") == [name for name, _ in EVENT_COLUMNS]
    for name, kind in EVENT_COLUMNS:
        assert f"{name} {kind}" in SCHEMA


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
