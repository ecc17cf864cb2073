"""The Parquet mirror the SQL sandbox reads (registry.sql_mirror), on a real EventLog: it
matches the log after any sequence of appends, stays at a bounded number of segments, and
rebuilds itself whenever it does not match the log."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import duckdb
import pytest

from s3facade.registry.events import Event, EventType
from s3facade.registry.log import EventLog
from s3facade.registry.payloads import ObjectWritten
from s3facade.registry.sql import SqlLimits, SqlSandbox
from s3facade.registry.sql_mirror import MAX_SEGMENTS, EventMirror


@pytest.fixture
def event_log(tmp_path: Path) -> Iterator[EventLog]:
    log = open_log(tmp_path / "data")
    yield log
    log.close_sync()


def open_log(directory: Path) -> EventLog:
    directory.mkdir(parents=True, exist_ok=True)
    return EventLog(directory / "registry.duckdb")


def append(log: EventLog, count: int, prefix: str = "k") -> None:
    events = [
        Event(EventType.OBJECT_WRITTEN, "bucket", f"{prefix}{i}", written(i).to_data())
        for i in range(count)
    ]

    async def run() -> None:
        await log.append(events)

    asyncio.run(run())


def written(i: int) -> ObjectWritten:
    return ObjectWritten(
        principal="AKIDTEST", content_type="binary/octet-stream", headers={}, metadata={},
        size=i, sha256=f"{i:064x}", md5=f"{i:032x}", etag=f"{i:032x}", checksums={},
        backend_id="local", version_id="null",
    )  # fmt: skip


def mirrored(mirror: EventMirror) -> list[tuple[int, str]]:
    files = [str(mirror.directory / s.name) for s in mirror.segments]
    rows = (
        duckdb.connect()
        .execute("SELECT seq, hash FROM read_parquet(?) ORDER BY seq", [files])
        .fetchall()
    )
    return [(int(seq), str(digest)) for seq, digest in rows]


def logged(log: EventLog) -> list[tuple[int, str]]:
    return [(e.seq, e.hash) for e in log.store.replay()]


def on_disk(mirror: EventMirror) -> list[str]:
    return sorted(p.name for p in mirror.directory.iterdir())


def test_the_mirror_follows_the_log_in_few_segments(event_log: EventLog, tmp_path: Path) -> None:
    mirror = EventMirror.beside(event_log)
    rng = random.Random(7)
    most = 0
    for round_ in range(60):
        # Mostly shrinking batches (the worst case for the segment count), some big ones.
        append(event_log, rng.choice([1, 1, 2, 3, 5, 40, 60 - round_]), prefix=f"r{round_}-")
        work = tmp_path / f"query-{round_}"
        work.mkdir()
        checkout = mirror.checkout(work)
        segments = mirror.segments
        assert segments[0].first == 1 and segments[-1].last == event_log.last_seq
        assert all(a.last + 1 == b.first for a, b in pairwise(segments))
        assert sorted(checkout.paths) == on_disk(mirror) == sorted(s.name for s in segments)
        assert sorted(p.name for p in work.iterdir()) == sorted(checkout.paths)  # hard links
        most = max(most, len(segments))
        assert mirrored(mirror) == logged(event_log)
    assert most == MAX_SEGMENTS  # the cap was reached, and held
    assert mirror.rebuilds == 0


def test_a_damaged_mirror_is_rebuilt_at_start(event_log: EventLog, tmp_path: Path) -> None:
    append(event_log, 20)
    EventMirror.beside(event_log).checkout(make(tmp_path / "a"))
    append(event_log, 3)
    mirror = EventMirror.beside(event_log)
    mirror.checkout(make(tmp_path / "b"))
    [_, second] = mirror.segments
    (mirror.directory / second.name).write_bytes(b"PAR1 not really")  # unreadable
    (mirror.directory / ".partial-events-x.parquet").write_bytes(b"half")  # a crash's leftover
    restarted = EventMirror.beside(event_log)
    restarted.checkout(make(tmp_path / "c"))
    assert restarted.rebuilds == 1
    assert mirrored(restarted) == logged(event_log)
    assert on_disk(restarted) == [s.name for s in restarted.segments]


def test_overlapping_segments_left_by_a_crash_are_rebuilt(
    event_log: EventLog, tmp_path: Path
) -> None:
    append(event_log, 5)
    mirror = EventMirror.beside(event_log)
    mirror.checkout(make(tmp_path / "a"))
    append(event_log, 5)
    mirror.checkout(make(tmp_path / "b"))  # merged: events 1-10 in one segment
    [merged] = mirror.segments
    stale = mirror.directory / "events-000000000001-000000000005.parquet"
    shutil.copy(mirror.directory / merged.name, stale)  # as if the merge's delete was lost
    restarted = EventMirror.beside(event_log)
    restarted.checkout(make(tmp_path / "c"))
    assert restarted.rebuilds == 1
    assert mirrored(restarted) == logged(event_log)


def test_a_mirror_of_another_log_is_rebuilt(tmp_path: Path) -> None:
    first = open_log(tmp_path / "one")
    append(first, 12, prefix="first-")
    shared = tmp_path / "mirror"
    EventMirror(first, shared).checkout(make(tmp_path / "a"))
    first.close_sync()
    shorter = open_log(tmp_path / "two")  # its head is before the mirror's
    append(shorter, 7, prefix="second-")
    mirror = EventMirror(shorter, shared)
    mirror.checkout(make(tmp_path / "b"))
    assert (mirror.rebuilds, mirrored(mirror)) == (1, logged(shorter))
    append(shorter, 5, prefix="third-")  # same length as the first log now, other hashes
    again = EventMirror(shorter, shared)
    assert again.segments == []
    again.checkout(make(tmp_path / "c"))
    assert again.rebuilds == 0  # it matches: its last hash is this log's
    other = open_log(tmp_path / "three")
    append(other, 12, prefix="other-")
    swapped = EventMirror(other, shared)
    swapped.checkout(make(tmp_path / "d"))
    assert (swapped.rebuilds, mirrored(swapped)) == (1, logged(other))
    shorter.close_sync()
    other.close_sync()


def test_queries_read_a_mirror_on_another_file_system(tmp_path: Path) -> None:
    """Hard links cannot cross file systems: the child gets the segments as descriptors."""
    shm = Path("/dev/shm")
    assert shm.stat().st_dev != Path(tmp_path).stat().st_dev
    log = open_log(tmp_path / "log")
    directory = shm / f"s3facade-test-{tmp_path.name}"
    try:
        append(log, 9)
        sandbox = SqlSandbox.online(EventMirror(log, directory), SqlLimits(memory_mib=512))
        answer = json.loads(asyncio.run(sandbox.query("SELECT count(*), max(seq) FROM writes")))
        assert answer["rows"] == [[9, 9]]
        paths = json.loads(asyncio.run(sandbox.query("SELECT current_setting('allowed_paths')")))
        assert paths["rows"][0][0][0].startswith(str(directory))  # the documented leak
    finally:
        log.close_sync()
        shutil.rmtree(directory, ignore_errors=True)


def test_a_segment_damaged_while_serving_is_rebuilt_and_the_query_answered(
    event_log: EventLog,
) -> None:
    append(event_log, 6)
    mirror = EventMirror.beside(event_log)
    sandbox = SqlSandbox.online(mirror, SqlLimits(memory_mib=512))

    async def scenario() -> tuple[bytes, bytes]:
        first = await sandbox.query("SELECT count(*) FROM events")
        [segment] = mirror.segments
        (mirror.directory / segment.name).write_bytes(b"garbage")
        return first, await sandbox.query("SELECT count(*) FROM events")

    first, second = asyncio.run(scenario())
    assert json.loads(first)["rows"] == json.loads(second)["rows"] == [[6]]
    assert mirror.rebuilds == 1


def make(directory: Path) -> Path:
    directory.mkdir(parents=True)
    return directory
