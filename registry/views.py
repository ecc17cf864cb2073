"""The views requests read: buckets, object versions and open uploads, derived from the log
and kept in SQLite on disk (`<data-dir>/views.sqlite`), so memory and start-up do not grow
with the number of versions.

`Views.apply` is the single place an event changes state. It runs on the log's writer
thread, in one SQLite transaction per log commit, right after the commit and before it is
acknowledged: a write is visible to the next request. The same transaction records the
last applied event (seq and hash). At start-up the views catch up by applying the log's
events after that one (read records are never replayed), so a crash between the log's
commit and the views' costs nothing: the log stays the authority and the views a cache
that `rebuild` recreates from it. Why SQLite: bench/view_store_choice.py (docs/provenance.md).

The file is `views.<generation>.sqlite` in the data dir: a rebuild that replaces the views
fills the next generation beside the live one and switches to it, so no connection ever
sees a file replaced under it. The highest generation present is the live one.

Reads on the event loop use one connection (point lookups take microseconds, a listing
page a few milliseconds); bulk reads (gc, scrub, lifecycle, fingerprints) run in worker
threads on connections of their own, each inside one read transaction: a consistent
snapshot that says which event it reflects (`applied`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, assert_never

from s3facade.registry import listing
from s3facade.registry.errors import CorruptLog
from s3facade.registry.events import GENESIS_HASH, CommittedEvent, EventType
from s3facade.registry.log import EventLog
from s3facade.registry.model import (
    NULL_VERSION,
    Bucket,
    DefaultRetention,
    ListingPage,
    Lock,
    LockMode,
    MultipartUpload,
    ObjectSpec,
    ObjectVersion,
    UploadPart,
    UploadsPage,
    Versioning,
    VersionsPage,
)
from s3facade.registry.payloads import (
    AccessDenied,
    BlobDamaged,
    BlobsCollected,
    BucketAccessSet,
    BucketCreated,
    BucketDeleted,
    BucketLifecycleSet,
    BucketObjectLockConfigured,
    BucketTagsSet,
    BucketVersioningSet,
    DeleteMarkerPlaced,
    LogAnchorCreated,
    LogHeadSigned,
    LogLossAccepted,
    MultipartUploadAborted,
    MultipartUploadCompleted,
    MultipartUploadCreated,
    ObjectAclSet,
    ObjectDeleted,
    ObjectImported,
    ObjectLegalHoldSet,
    ObjectRead,
    ObjectRetentionSet,
    ObjectTagsSet,
    ObjectWritten,
    PartUploaded,
    ScrubPassCompleted,
    Stored,
    ViewsRebuilt,
    payload_of,
)
from s3facade.registry.view_rows import (
    BUCKET_COLUMNS,
    FINGERPRINT_QUERIES,
    PART_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    UPLOAD_COLUMNS,
    VERSION_COLUMNS,
    bucket_from_row,
    bucket_row,
    dumps,
    part_from_row,
    part_row,
    to_us,
    upload_from_row,
    upload_row,
    version_from_row,
    version_row,
)

_CATCH_UP_BATCH = 5000
# The event types recorded for audit only (reads, refusals, gc, scrub, the log's own history):
# never replayed. Every other type changes a view, so a new type is replayed unless it is
# named here (and _Apply's match, checked exhaustively, must handle it either way).
AUDIT_TYPES = frozenset(
    {
        EventType.OBJECT_READ,
        EventType.ACCESS_DENIED,
        EventType.BLOBS_COLLECTED,
        EventType.BLOB_DAMAGED,
        EventType.SCRUB_PASS_COMPLETED,
        EventType.LOG_ANCHOR_CREATED,
        EventType.LOG_LOSS_ACCEPTED,
        EventType.LOG_HEAD_SIGNED,
        EventType.VIEWS_REBUILT,
    }
)
VIEW_TYPES = frozenset(EventType) - AUDIT_TYPES
# The events that change a bucket's row or its access settings (what Views caches).
BUCKET_TYPES = frozenset(t for t in EventType if t.value.startswith("Bucket"))
_BUCKETS_CACHED = 10_000
CACHE_MIB = 64  # SQLite's page cache per connection: the views' memory, whatever their size
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Counts:
    buckets: int
    keys: int  # keys with any version, delete markers included
    objects: int  # keys a plain GET finds
    versions: int  # versions and delete markers
    uploads: int


def connect(path: Path, *, cache_mib: int = CACHE_MIB) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    # Durable enough: the log is the authority, a transaction lost in a crash is replayed.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


class ViewReader:
    """Read queries over one connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute(sql, params).fetchone()

    @property
    def applied(self) -> tuple[int, str]:
        """The last event these views reflect (seq, hash)."""
        rows = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        return int(rows.get("applied_seq", 0)), str(rows.get("applied_hash", GENESIS_HASH))

    # -- buckets ----------------------------------------------------------------------------

    def bucket(self, name: str) -> Bucket | None:
        row = self._one(f"SELECT {BUCKET_COLUMNS} FROM buckets WHERE name = ?", [name])
        return None if row is None else bucket_from_row(row)

    def bucket_access(self, name: str) -> dict[str, Any]:
        """The bucket's access settings as recorded: setting name -> value."""
        rows = self._db.execute(
            "SELECT setting, value FROM bucket_access WHERE bucket = ?", [name]
        ).fetchall()
        return {setting: json.loads(value) for setting, value in rows}

    def object_acl(self, bucket: str, key: str, version_id: str) -> dict[str, Any] | None:
        """A version's ACL as recorded, or None: the default (its writer's FULL_CONTROL)."""
        row = self._one(
            "SELECT acl FROM object_acls WHERE bucket = ? AND key = ? AND version_id = ?",
            [bucket, key, version_id],
        )
        return None if row is None else dict(json.loads(row[0]))

    def bucket_tags(self, name: str) -> dict[str, str] | None:
        """The bucket's tag set, or None if it has none."""
        row = self._one("SELECT tags FROM bucket_tags WHERE bucket = ?", [name])
        return None if row is None else dict(json.loads(row[0]))

    def buckets(self) -> list[Bucket]:
        rows = self._db.execute(f"SELECT {BUCKET_COLUMNS} FROM buckets ORDER BY name")
        return [bucket_from_row(row) for row in rows]

    def object_count(self, bucket: str) -> int:
        """Keys with any version (delete markers included): a bucket with any is not empty."""
        row = self._one("SELECT keys FROM buckets WHERE name = ?", [bucket])
        return 0 if row is None else int(row[0])

    def upload_count(self, bucket: str) -> int:
        row = self._one("SELECT uploads FROM buckets WHERE name = ?", [bucket])
        return 0 if row is None else int(row[0])

    def counts(self) -> Counts:
        row = self._one(
            "SELECT count(*), sum(keys), sum(objects), sum(versions), sum(uploads) FROM buckets"
        )
        return Counts(*(int(value or 0) for value in row))

    # -- versions ---------------------------------------------------------------------------

    def versions(self, bucket: str, key: str) -> list[ObjectVersion]:
        """Newest first."""
        rows = self._db.execute(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE bucket = ? AND key = ? "
            "ORDER BY seq DESC",
            [bucket, key],
        )
        return [version_from_row(row) for row in rows]

    def latest(self, bucket: str, key: str) -> ObjectVersion | None:
        """The newest version, which may be a delete marker."""
        row = self._one(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE bucket = ? AND key = ? "
            "ORDER BY seq DESC LIMIT 1",
            [bucket, key],
        )
        return None if row is None else version_from_row(row)

    def current(self, bucket: str, key: str) -> ObjectVersion | None:
        """The object a plain GET returns: the newest version unless it is a delete marker."""
        latest = self.latest(bucket, key)
        return None if latest is None or latest.delete_marker else latest

    def version(self, bucket: str, key: str, version_id: str) -> ObjectVersion | None:
        row = self._one(
            f"SELECT {VERSION_COLUMNS} FROM versions "
            "WHERE bucket = ? AND key = ? AND version_id = ?",
            [bucket, key, version_id],
        )
        return None if row is None else version_from_row(row)

    def all_versions(self, bucket: str) -> Iterator[ObjectVersion]:
        """Keys in order, each newest first: for worker threads (it streams the bucket)."""
        rows = self._db.execute(
            f"SELECT {VERSION_COLUMNS} FROM versions WHERE bucket = ? ORDER BY key, seq DESC",
            [bucket],
        )
        for row in rows:
            yield version_from_row(row)

    # -- uploads ----------------------------------------------------------------------------

    def upload(self, upload_id: str, *, with_parts: bool = True) -> MultipartUpload | None:
        row = self._one(f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE upload_id = ?", [upload_id])
        if row is None:
            return None
        parts: dict[int, UploadPart] = {}
        if with_parts:
            rows = self._db.execute(
                f"SELECT {PART_COLUMNS} FROM parts WHERE upload_id = ? ORDER BY number",
                [upload_id],
            )
            parts = {part.number: part for part in map(part_from_row, rows)}
        return upload_from_row(row, parts)

    def part(self, upload_id: str, number: int) -> UploadPart | None:
        row = self._one(
            f"SELECT {PART_COLUMNS} FROM parts WHERE upload_id = ? AND number = ?",
            [upload_id, number],
        )
        return None if row is None else part_from_row(row)

    # -- listings ---------------------------------------------------------------------------

    def list_page(
        self, bucket: str, *, prefix: str = "", delimiter: str = "", after: str = "",
        max_keys: int = 1000,
    ) -> ListingPage:  # fmt: skip
        return listing.current_page(self._db, bucket, prefix, delimiter, after, max_keys)

    def list_versions(
        self, bucket: str, *, prefix: str = "", delimiter: str = "", key_marker: str = "",
        version_id_marker: str = "", max_keys: int = 1000,
    ) -> VersionsPage:  # fmt: skip
        return listing.versions_page(
            self._db, bucket, prefix, delimiter, key_marker, version_id_marker, max_keys
        )

    def list_uploads(
        self, bucket: str, *, prefix: str = "", delimiter: str = "", key_marker: str = "",
        upload_id_marker: str = "", max_uploads: int = 1000,
    ) -> UploadsPage:  # fmt: skip
        return listing.uploads_page(
            self._db, bucket, prefix, delimiter, key_marker, upload_id_marker, max_uploads
        )

    def all_uploads(self, bucket: str) -> Iterator[MultipartUpload]:
        rows = self._db.execute(
            f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE bucket = ? ORDER BY key, upload_id",
            [bucket],
        )
        for row in rows:
            yield upload_from_row(row, {})

    # -- blobs ------------------------------------------------------------------------------

    def blob_in_use(self, backend_id: str, sha256: str) -> bool:
        """Does any version or part of an unfinished upload name this blob?"""
        row = self._one(
            "SELECT EXISTS (SELECT 1 FROM versions WHERE backend_id = ? AND sha256 = ?) "
            "OR EXISTS (SELECT 1 FROM parts WHERE backend_id = ? AND sha256 = ?)",
            [backend_id, sha256, backend_id, sha256],
        )
        return bool(row[0])

    def live_blob_page(
        self, after: tuple[str, str] = ("", ""), limit: int = 1000
    ) -> list[tuple[str, str, int]]:
        """(backend id, sha256, size) of up to `limit` blobs in use after `after`, in
        (backend id, sha256) order, each once: a page of a walk over every blob in use."""
        rows: set[tuple[str, str, int]] = set()
        for table in ("versions", "parts"):
            rows.update(
                self._db.execute(
                    f"SELECT DISTINCT backend_id, sha256, size FROM {table} "
                    "WHERE (backend_id, sha256) > (?, ?) AND sha256 != '' "
                    "ORDER BY backend_id, sha256 LIMIT ?",
                    [*after, limit],
                )
            )
        page: list[tuple[str, str, int]] = []
        for row in sorted(rows):
            if page and page[-1][:2] == row[:2]:
                continue  # the same blob named twice (sizes agree: same digest)
            page.append(row)
        return page[:limit]

    def live_blobs(self, page: int = 1000) -> Iterator[tuple[str, str, int]]:
        """Every blob in use, page by page (each page its own short query)."""
        after = ("", "")
        while rows := self.live_blob_page(after, page):
            yield from rows
            after = rows[-1][:2]

    # -- comparison -------------------------------------------------------------------------

    def fingerprint(self) -> dict[str, Any]:
        """Counts and a SHA-256 over every row in order: equal views, equal fingerprints.
        Linear in the views' size: run it in a worker (bounded memory: rows stream)."""
        digest = hashlib.sha256()
        for sql in FINGERPRINT_QUERIES:
            for row in self._db.execute(sql):
                digest.update(dumps(list(row)).encode())
                digest.update(b"\n")
            digest.update(b"--\n")
        counts = self.counts()
        return {
            "buckets": counts.buckets,
            "objects": counts.objects,
            "versions": counts.versions,
            "uploads": counts.uploads,
            "sha256": digest.hexdigest(),
        }


class Views(ViewReader):
    """The views of one data dir: reads on the event loop's connection, writes on the log's
    writer thread's, snapshots on connections of their own."""

    def __init__(self, path: Path, *, building: bool = False) -> None:
        self.path = path
        reader = connect(path)
        self._prepare(reader)
        if building:  # not live until mark_live(): a crash mid-build leaves no live views
            reader.execute("INSERT OR REPLACE INTO meta VALUES ('building', '1')")
        super().__init__(reader)
        self._writer: sqlite3.Connection | None = None
        self._writer_lock = threading.Lock()  # one applying thread at a time
        # Every request reads its bucket's row and access settings (three quarters of a
        # GET's view queries); they change only with bucket events, so they are cached,
        # for buckets that exist only (names anyone can send must not fill the cache).
        # The epoch tells a lookup that raced such a change not to keep what it read.
        self._cache_lock = threading.Lock()
        self._cache_epoch = 0
        self._buckets: dict[str, Bucket] = {}
        self._access: dict[str, dict[str, Any]] = {}

    def bucket(self, name: str) -> Bucket | None:
        try:
            return self._buckets[name]
        except KeyError:
            epoch = self._cache_epoch
            found = super().bucket(name)
            if found is not None:
                self._keep(self._buckets, epoch, name, found)
            return found

    def bucket_access(self, name: str) -> dict[str, Any]:
        try:
            settings = self._access[name]
        except KeyError:
            epoch = self._cache_epoch
            settings = super().bucket_access(name)
            if self.bucket(name) is not None:
                self._keep(self._access, epoch, name, settings)
        return dict(settings)

    def _keep(self, cache: dict[str, Any], epoch: int, name: str, value: Any) -> None:
        with self._cache_lock:
            if epoch == self._cache_epoch and len(cache) < _BUCKETS_CACHED:
                cache[name] = value

    def _forget_buckets(self) -> None:
        """After a committed change: what lookups read before it is not kept."""
        with self._cache_lock:
            self._cache_epoch += 1
            self._buckets.clear()
            self._access.clear()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Views:
        """The live generation of a data dir's views (a new, empty one if there is none);
        leftovers of other generations are removed."""
        generations = sorted(_generations(data_dir), reverse=True)
        live = next((n for n in generations if _is_live(generation_path(data_dir, n))), None)
        for stale in generations:
            if stale != live:
                drop(generation_path(data_dir, stale))
        return cls.open(generation_path(data_dir, live or 1))

    def mark_live(self) -> None:
        """These views (built as the next generation) are whole: a restart may use them."""
        with self._writer_lock:
            self._writing().execute("DELETE FROM meta WHERE name = 'building'")

    def next_generation(self) -> Path:
        number = int(self.path.name.split(".")[1]) + 1
        path = generation_path(self.path.parent, number)
        drop(path)
        return path

    @staticmethod
    def _prepare(connection: sqlite3.Connection) -> None:
        connection.executescript(SCHEMA)
        row = connection.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if row is None:
            connection.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", [SCHEMA_VERSION])
        elif row[0] != SCHEMA_VERSION:
            raise ValueError(f"views schema {row[0]}, expected {SCHEMA_VERSION}")

    @classmethod
    def open(cls, path: Path) -> Views:
        """The views at `path`; files of another schema are dropped (they are a cache)."""
        try:
            return cls(path)
        except (ValueError, sqlite3.DatabaseError):
            drop(path)
            return cls(path)

    @contextmanager
    def snapshot(self) -> Iterator[ViewReader]:
        """A reader on a connection of its own, in one read transaction (for a worker)."""
        connection = connect(self.path)
        try:
            connection.execute("BEGIN")
            yield ViewReader(connection)
        finally:
            connection.close()

    def apply(self, events: Sequence[CommittedEvent]) -> None:
        """Apply committed events in one transaction and record the last as applied."""
        if not events:
            return
        with self._writer_lock:
            db = self._writing()
            db.execute("BEGIN IMMEDIATE")
            try:
                for event in events:
                    if event.type in VIEW_TYPES:
                        try:
                            _Apply(db).event(event)
                        except (KeyError, TypeError, ValueError, AttributeError) as exc:
                            raise CorruptLog(event.seq, repr(exc)) from exc
                last = events[-1]
                db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("applied_seq", str(last.seq)), ("applied_hash", last.hash)],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if any(event.type in BUCKET_TYPES for event in events):
                self._forget_buckets()

    def catch_up(
        self,
        log: EventLog,
        *,
        until: int | None = None,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Apply the log's view-changing events after the last applied one (up to `until`),
        then record the log's head (or `until`) as applied. Views that do not belong to
        this log (it lacks their last event, or has another there) start over from empty.
        Returns how many events were applied. Blocking: run it on the log's writer thread
        (or before serving), so no commit interleaves."""
        seq, digest = self.applied
        # The log's head, not the store's: a shared store may hold other gateways' newer
        # events, which the log applies itself when it takes them on.
        head = until if until is not None else log.last_seq
        if seq > head or (seq > 0 and log.store.stored_hash(seq) != digest):
            self._clear()
            seq = 0
        applied = 0
        batch: list[CommittedEvent] = []
        for event in log.store.scan(after=seq, through=head, types=VIEW_TYPES, strict=True):
            batch.append(event)
            if len(batch) == _CATCH_UP_BATCH:
                self.apply(batch)
                applied += len(batch)
                if progress is not None:
                    progress(len(batch))
                batch = []
                if stop is not None and stop.is_set():
                    return applied  # not caught up: the next start goes on from here
        self.apply(batch)
        applied += len(batch)
        if progress is not None and batch:
            progress(len(batch))
        if head > self.applied[0]:
            self._record_applied(head, log.store.stored_hash(head) or GENESIS_HASH)
        return applied

    def _record_applied(self, seq: int, digest: str) -> None:
        with self._writer_lock:
            db = self._writing()
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("applied_seq", str(seq)), ("applied_hash", digest)],
            )

    def _clear(self) -> None:
        with self._writer_lock:
            db = self._writing()
            db.execute("BEGIN IMMEDIATE")
            for table in (
                "versions", "current", "parts", "uploads", "buckets",
                "bucket_tags", "bucket_access", "object_acls",
            ):  # fmt: skip
                db.execute(f"DELETE FROM {table}")
            db.execute("DELETE FROM meta WHERE name LIKE 'applied_%'")
            db.execute("COMMIT")
        self._forget_buckets()

    def _writing(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = connect(self.path)
        return self._writer

    def close(self) -> None:
        self._db.close()
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


def generation_path(data_dir: Path, number: int) -> Path:
    return data_dir / f"views.{number}.sqlite"


def _generations(data_dir: Path) -> Iterator[int]:
    for path in data_dir.glob("views.*.sqlite"):
        number = path.name.split(".")[1]
        if number.isdigit():
            yield int(number)


def _is_live(path: Path) -> bool:
    """Whether a generation's file holds whole views: not one a rebuild or verify was still
    filling when it stopped, nor a damaged file."""
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            row = connection.execute("SELECT 1 FROM meta WHERE name = 'building'").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError:
        return False
    return row is None


def drop(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


class _Apply:
    """One event's changes to the tables, inside the caller's transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def event(self, event: CommittedEvent) -> None:
        bucket, key = event.bucket, event.key or ""
        payload = payload_of(event)
        match payload:
            case BucketCreated():
                created = Bucket(
                    name=bucket,
                    owner=payload.principal,
                    region=payload.region,
                    created=event.time,
                    versioning=Versioning.ENABLED if payload.object_lock else None,
                    object_lock=payload.object_lock,
                )
                self._db.execute(
                    f"INSERT OR REPLACE INTO buckets ({BUCKET_COLUMNS}) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?)",
                    bucket_row(created),
                )
            case BucketDeleted():
                for table in ("versions", "current"):
                    self._db.execute(f"DELETE FROM {table} WHERE bucket = ?", [bucket])
                self._db.execute(
                    "DELETE FROM parts WHERE upload_id IN "
                    "(SELECT upload_id FROM uploads WHERE bucket = ?)",
                    [bucket],
                )
                self._db.execute("DELETE FROM uploads WHERE bucket = ?", [bucket])
                for table in ("bucket_tags", "bucket_access", "object_acls"):
                    self._db.execute(f"DELETE FROM {table} WHERE bucket = ?", [bucket])
                self._db.execute("DELETE FROM buckets WHERE name = ?", [bucket])
            case BucketVersioningSet():
                self._bucket(bucket, "versioning", Versioning(payload.status).value)
            case BucketObjectLockConfigured():
                rule = payload.default_retention
                default = None
                if rule is not None:
                    default = DefaultRetention(LockMode(rule["mode"]), rule["days"], rule["years"])
                self._bucket(
                    bucket, "default_retention", dumps(default.as_dict()) if default else None
                )
            case BucketLifecycleSet():
                rules = payload.rules
                self._bucket(bucket, "lifecycle", dumps(list(rules)) if rules is not None else None)
            case BucketTagsSet():
                self._db.execute("DELETE FROM bucket_tags WHERE bucket = ?", [bucket])
                if payload.tags is not None:
                    self._db.execute(
                        "INSERT INTO bucket_tags VALUES (?, ?)", [bucket, dumps(dict(payload.tags))]
                    )
            case BucketAccessSet():
                self._db.execute(
                    "DELETE FROM bucket_access WHERE bucket = ? AND setting = ?",
                    [bucket, payload.setting],
                )
                if payload.value is not None:
                    self._db.execute(
                        "INSERT INTO bucket_access VALUES (?, ?, ?)",
                        [bucket, payload.setting, dumps(payload.value)],
                    )
            case ObjectWritten() | ObjectImported():
                self._add_version(_version_from(event, payload), payload.acl)
            case MultipartUploadCompleted():
                self._forget_upload(payload.upload_id)
                self._add_version(_version_from(event, payload), payload.acl)
            case DeleteMarkerPlaced():
                self._add_version(_marker_from(event, payload))
            case ObjectDeleted():
                version_id = payload.version_id
                self._change_key(bucket, key, lambda: self._remove(bucket, key, version_id))
            case ObjectRetentionSet():
                until = payload.retain_until
                self._update_version(
                    bucket, key, payload.version_id,
                    lock_mode=LockMode(payload.mode).value if payload.mode else None,
                    retain_until=to_us(datetime.fromisoformat(until)) if until else None,
                    retention_source="PutObjectRetention",
                )  # fmt: skip
            case ObjectLegalHoldSet():
                hold = int(bool(payload.status))
                self._update_version(bucket, key, payload.version_id, legal_hold=hold)
            case ObjectTagsSet():
                self._update_version(bucket, key, payload.version_id, tags=dumps(payload.tags))
            case ObjectAclSet():
                self._set_object_acl(bucket, key, payload.version_id, payload.acl)
            case MultipartUploadCreated():
                asked = payload.requested_lock
                upload = MultipartUpload(
                    upload_id=payload.upload_id,
                    bucket=bucket,
                    key=key,
                    initiated=event.time,
                    owner=payload.principal,
                    spec=ObjectSpec(
                        payload.content_type,
                        payload.headers,
                        payload.metadata,
                        payload.tags,
                        payload.acl,
                    ),
                    checksum_algorithm=payload.checksum_algorithm,
                    checksum_type=payload.checksum_type,
                    lock=Lock.from_dict(asked) if asked else None,
                )
                self._db.execute(
                    f"INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    upload_row(upload),
                )
                self._db.execute(
                    "UPDATE buckets SET uploads = uploads + 1 WHERE name = ?", [bucket]
                )
            case PartUploaded():
                part = UploadPart(
                    number=payload.part_number,
                    size=payload.size,
                    etag=payload.etag,
                    sha256=payload.sha256,
                    checksums=payload.checksums,
                    backend_id=payload.backend_id,
                    last_modified=event.time,
                )
                placeholders = ", ".join("?" * 8)
                self._db.execute(
                    f"INSERT OR REPLACE INTO parts ({PART_COLUMNS}) VALUES ({placeholders})",
                    part_row(payload.upload_id, part),
                )
            case MultipartUploadAborted():
                self._forget_upload(payload.upload_id)
            case (
                ObjectRead() | AccessDenied() | BlobsCollected() | BlobDamaged()
                | ScrubPassCompleted()
                | LogAnchorCreated() | LogLossAccepted() | LogHeadSigned() | ViewsRebuilt()
            ):  # fmt: skip
                pass  # recorded for audit: they change no view
            case _:
                assert_never(payload)

    def _bucket(self, name: str, column: str, value: Any) -> None:
        self._db.execute(f"UPDATE buckets SET {column} = ? WHERE name = ?", [value, name])

    def _add_version(self, version: ObjectVersion, acl: Mapping[str, Any] | None = None) -> None:
        def add() -> int:
            removed = 0
            if version.version_id == NULL_VERSION:  # a new null version replaces the old one
                removed = self._remove(version.bucket, version.key, NULL_VERSION)
            self._db.execute(
                f"INSERT INTO versions ({VERSION_COLUMNS}) VALUES ({', '.join('?' * 24)})",
                version_row(version),
            )
            return 1 - removed

        self._change_key(version.bucket, version.key, add)
        if acl is not None:
            self._set_object_acl(version.bucket, version.key, version.version_id, acl)

    def _set_object_acl(
        self, bucket: str, key: str, version_id: str, acl: Mapping[str, Any]
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO object_acls VALUES (?, ?, ?, ?)",
            [bucket, key, version_id, dumps(dict(acl))],
        )

    def _remove(self, bucket: str, key: str, version_id: str) -> int:
        self._db.execute(
            "DELETE FROM object_acls WHERE bucket = ? AND key = ? AND version_id = ?",
            [bucket, key, version_id],
        )
        cursor = self._db.execute(
            "DELETE FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
            [bucket, key, version_id],
        )
        return -cursor.rowcount

    def _change_key(self, bucket: str, key: str, change: Any) -> None:
        """Run `change` (it returns the change in the key's version count), then bring the
        key's row in `current` and the bucket's counts up to date."""
        db = self._db
        before = db.execute(
            "SELECT EXISTS (SELECT 1 FROM versions WHERE bucket = ? AND key = ?), "
            "EXISTS (SELECT 1 FROM current WHERE bucket = ? AND key = ?)",
            [bucket, key, bucket, key],
        ).fetchone()
        delta = int(change())
        newest = db.execute(
            "SELECT seq, delete_marker FROM versions WHERE bucket = ? AND key = ? "
            "ORDER BY seq DESC LIMIT 1",
            [bucket, key],
        ).fetchone()
        live = newest is not None and not newest[1]
        if live:
            db.execute("INSERT OR REPLACE INTO current VALUES (?, ?, ?)", [bucket, key, newest[0]])
        elif before[1]:
            db.execute("DELETE FROM current WHERE bucket = ? AND key = ?", [bucket, key])
        db.execute(
            "UPDATE buckets SET keys = keys + ?, objects = objects + ?, versions = versions + ? "
            "WHERE name = ?",
            [int(newest is not None) - before[0], int(live) - before[1], delta, bucket],
        )

    def _update_version(self, bucket: str, key: str, version_id: str, **columns: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self._db.execute(
            f"UPDATE versions SET {assignments} WHERE bucket = ? AND key = ? AND version_id = ?",
            [*columns.values(), bucket, key, version_id],
        )

    def _forget_upload(self, upload_id: str) -> None:
        row = self._db.execute(
            "DELETE FROM uploads WHERE upload_id = ? RETURNING bucket", [upload_id]
        ).fetchone()
        self._db.execute("DELETE FROM parts WHERE upload_id = ?", [upload_id])
        if row is not None:
            self._db.execute("UPDATE buckets SET uploads = uploads - 1 WHERE name = ?", [row[0]])


def _version_from(event: CommittedEvent, payload: Stored) -> ObjectVersion:
    until = payload.retain_until
    return ObjectVersion(
        bucket=event.bucket,
        key=event.key or "",
        version_id=payload.version_id,
        size=payload.size,
        etag=payload.etag,
        sha256=payload.sha256,
        md5=payload.md5 or "",
        last_modified=event.time,
        content_type=payload.content_type,
        headers=payload.headers,
        metadata=payload.metadata,
        checksums=payload.checksums,
        backend_id=payload.backend_id,
        owner=payload.principal,
        seq=event.seq,
        checksum_type=payload.checksum_type,
        part_sizes=tuple(payload.part_sizes or ()),
        tags=payload.tags,
        lock_mode=LockMode(payload.lock_mode) if payload.lock_mode else None,
        retain_until=datetime.fromisoformat(until) if until else None,
        legal_hold=payload.legal_hold,
        retention_source=payload.retention_source,
        retention_policy=payload.retention_policy,
    )


def _marker_from(event: CommittedEvent, payload: DeleteMarkerPlaced) -> ObjectVersion:
    return ObjectVersion(
        bucket=event.bucket,
        key=event.key or "",
        version_id=payload.version_id,
        size=0,
        etag="",
        sha256="",
        md5="",
        last_modified=event.time,
        content_type="",
        headers={},
        metadata={},
        checksums={},
        backend_id="",
        owner=payload.principal,
        seq=event.seq,
        delete_marker=True,
    )
