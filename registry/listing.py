"""Listing pages over the views' sorted keys (SQLite indexes): current objects, versions,
multipart uploads.

Each walk seeks to its start and reads rows in order, a batch at a time. A key that falls
into a delimited common prefix yields the prefix once and the walk seeks past the whole
group (to the least string after every key that starts with it), so a page costs about
its own size, however many keys its prefixes fold away. Positions are keyset positions:
(key, and within a key the last version's seq or upload id), never offsets.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from s3facade.registry.model import (
    ListedObject,
    ListingPage,
    MultipartUpload,
    ObjectVersion,
    UploadsPage,
    VersionsPage,
)
from s3facade.registry.view_rows import (
    LISTED_COLUMNS,
    UPLOAD_COLUMNS,
    VERSION_COLUMNS,
    listed_from_row,
    upload_from_row,
    version_from_row,
)

_BATCH = 1000
_FIRST_BATCH = 8  # after a seek: most groups hold more keys than this
_JOINED_LISTED = ", ".join(f"v.{column.strip()}" for column in LISTED_COLUMNS.split(","))


def successor(prefix: str) -> str:
    """The least string greater than every string that starts with `prefix`."""
    last = ord(prefix[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:  # surrogates are not text: the next code point after them
        last = 0xE000
    return prefix[:-1] + chr(last)


@dataclass(frozen=True)
class _Position:
    """Where a walk resumes: after `key` (or at it, if `inclusive`); with `within`, after
    that version seq or upload id inside `key` first."""

    key: str
    inclusive: bool
    within: Any = None


@dataclass(frozen=True)
class _Walk:
    db: sqlite3.Connection
    bucket: str
    prefix: str
    delimiter: str

    def common(self, key: str) -> str | None:
        if not self.delimiter:
            return None
        cut = key.find(self.delimiter, len(self.prefix))
        return None if cut < 0 else key[: cut + len(self.delimiter)]

    def keys_from(self, position: _Position, column: str = "key") -> tuple[str, list[Any]]:
        """SQL (after WHERE bucket = ?) for the keys at or after a position, under the prefix.
        One lower bound only: given two, SQLite may seek by the lower and scan to the other."""
        if self.prefix > position.key:
            sql, params = f" AND {column} >= ?", [self.prefix]
        else:
            sql, params = f" AND {column} {'>=' if position.inclusive else '>'} ?", [position.key]
        if self.prefix and ord(self.prefix[-1]) != 0x10FFFF:  # (else the prefix test does it)
            sql += f" AND {column} < ?"
            params.append(successor(self.prefix))
        return sql, params


def current_page(
    db: sqlite3.Connection, bucket: str, prefix: str, delimiter: str, after: str, max_keys: int
) -> ListingPage:
    """Keys (and common prefixes) after `after` whose newest version is not a delete
    marker; max_keys counts both."""
    found: list[ListedObject] = []
    prefixes: list[str] = []
    last = ""
    truncated = False
    for common, version in _current_items(_Walk(db, bucket, prefix, delimiter), after):
        if len(found) + len(prefixes) == max_keys:
            truncated = max_keys > 0  # as AWS: a page of 0 keys is never truncated
            break
        if version is not None:
            found.append(version)
            last = version.key
        elif common is not None:
            prefixes.append(common)
            last = common
    return ListingPage(found, prefixes, truncated, last if truncated else None)


def _current_items(walk: _Walk, after: str) -> Iterator[tuple[str | None, ListedObject | None]]:
    """Keys from the narrow `current` index (a batch that grows while no group is skipped,
    so a seek wastes little); each key's listed columns are read when it is yielded."""
    position = _Position(after, inclusive=False)
    if not walk.delimiter:  # no group to skip: the version rows come with the keys
        yield from ((None, listed) for listed in _current_listed(walk, position))
        return
    batch = _FIRST_BATCH
    while True:
        where, params = walk.keys_from(position)
        rows = walk.db.execute(
            f"SELECT key, seq FROM current WHERE bucket = ?{where} ORDER BY key LIMIT {batch}",
            [walk.bucket, *params],
        ).fetchall()
        for key, seq in rows:
            if not key.startswith(walk.prefix):
                return
            common = walk.common(key)
            if common is not None:
                if common > after:  # a marker inside a group resumes after the group
                    yield common, None
                position = _Position(successor(common), inclusive=True)
                batch = _FIRST_BATCH
                break  # seek past the group
            yield None, _listed_at(walk, key, seq)
            position = _Position(key, inclusive=False)
        else:
            if len(rows) < batch:
                return
            batch = min(batch * 4, _BATCH)


def _current_listed(walk: _Walk, position: _Position) -> Iterator[ListedObject]:
    batch = _FIRST_BATCH * 16
    while True:
        where, params = walk.keys_from(position, "c.key")
        rows = walk.db.execute(
            f"SELECT {_JOINED_LISTED} FROM current c JOIN versions v "
            "ON v.bucket = c.bucket AND v.key = c.key AND v.seq = c.seq "
            f"WHERE c.bucket = ?{where} ORDER BY c.key LIMIT {batch}",
            [walk.bucket, *params],
        ).fetchall()
        for row in rows:
            listed = listed_from_row(row)
            if not listed.key.startswith(walk.prefix):
                return
            yield listed
        if len(rows) < batch:
            return
        position = _Position(rows[-1][0], inclusive=False)
        batch = min(batch * 4, _BATCH)


def _listed_at(walk: _Walk, key: str, seq: int) -> ListedObject:
    row = walk.db.execute(
        f"SELECT {LISTED_COLUMNS} FROM versions WHERE bucket = ? AND key = ? AND seq = ?",
        [walk.bucket, key, seq],
    ).fetchone()
    return listed_from_row(row)


def versions_page(
    db: sqlite3.Connection,
    bucket: str,
    prefix: str,
    delimiter: str,
    key_marker: str,
    version_id_marker: str,
    max_keys: int,
) -> VersionsPage:
    """Every version and delete marker, keys in order and each key's newest first."""
    found: list[tuple[ObjectVersion, bool]] = []
    prefixes: list[str] = []
    marker: tuple[str, str | None] = ("", None)
    truncated = False
    walk = _Walk(db, bucket, prefix, delimiter)
    for common, version, latest in _version_items(walk, key_marker, version_id_marker):
        if len(found) + len(prefixes) == max_keys:
            truncated = max_keys > 0  # as AWS: a page of 0 keys is never truncated
            break
        if version is not None:
            found.append((version, latest))
            marker = (version.key, version.version_id)
        elif common is not None:
            prefixes.append(common)
            marker = (common, None)
    return VersionsPage(
        found,
        prefixes,
        truncated,
        next_key_marker=marker[0] if truncated else None,
        next_version_id_marker=marker[1] if truncated else None,
    )


def _version_items(
    walk: _Walk, key_marker: str, version_id_marker: str
) -> Iterator[tuple[str | None, ObjectVersion | None, bool]]:
    position = _Position(key_marker, inclusive=False)
    if key_marker and version_id_marker and key_marker.startswith(walk.prefix):
        row = walk.db.execute(
            "SELECT seq FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
            [walk.bucket, key_marker, version_id_marker],
        ).fetchone()
        if row is not None:  # resume inside the marker's key (else: after the whole key)
            position = _Position(key_marker, inclusive=False, within=row[0])
    previous_key = key_marker if position.within is not None else None
    select = f"SELECT {VERSION_COLUMNS} FROM versions WHERE bucket = ?"
    batch = _FIRST_BATCH
    while True:
        if position.within is not None:  # older versions of the same key first
            rows = walk.db.execute(
                f"{select} AND key = ? AND seq < ? ORDER BY seq DESC LIMIT {batch}",
                [walk.bucket, position.key, position.within],
            ).fetchall()
            if not rows:
                position = _Position(position.key, inclusive=False)
                continue
        else:
            where, params = walk.keys_from(position)
            rows = walk.db.execute(
                f"{select}{where} ORDER BY key, seq DESC LIMIT {batch}",
                [walk.bucket, *params],
            ).fetchall()
            if not rows:
                return
        batch = min(batch * 4, _BATCH)
        for row in rows:
            version = version_from_row(row)
            if not version.key.startswith(walk.prefix):
                return
            common = walk.common(version.key)
            if common is not None:
                if common > key_marker:
                    yield common, None, False
                position = _Position(successor(common), inclusive=True)
                batch = _FIRST_BATCH
                break  # seek past the group
            yield None, version, version.key != previous_key
            previous_key = version.key
            position = _Position(version.key, inclusive=False, within=version.seq)


def uploads_page(
    db: sqlite3.Connection,
    bucket: str,
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
    max_uploads: int,
) -> UploadsPage:
    """Uploads ordered by key, then initiation (upload ids sort by time)."""
    found: list[MultipartUpload] = []
    prefixes: list[str] = []
    marker: tuple[str, str | None] = ("", None)
    truncated = False
    walk = _Walk(db, bucket, prefix, delimiter)
    for common, upload in _upload_items(walk, key_marker, upload_id_marker):
        if len(found) + len(prefixes) == max_uploads:
            truncated = max_uploads > 0
            break
        if upload is not None:
            found.append(upload)
            marker = (upload.key, upload.upload_id)
        elif common is not None:
            prefixes.append(common)
            marker = (common, None)
    return UploadsPage(
        found,
        prefixes,
        truncated,
        next_key_marker=marker[0] if truncated else None,
        next_upload_id_marker=marker[1] if truncated else None,
    )


def _upload_items(
    walk: _Walk, key_marker: str, upload_id_marker: str
) -> Iterator[tuple[str | None, MultipartUpload | None]]:
    resume_inside = key_marker and upload_id_marker and key_marker.startswith(walk.prefix)
    within = upload_id_marker if resume_inside else None
    position = _Position(key_marker, inclusive=False, within=within)
    select = f"SELECT {UPLOAD_COLUMNS} FROM uploads WHERE bucket = ?"
    batch = _FIRST_BATCH
    while True:
        if position.within is not None:  # later uploads of the same key first
            rows = walk.db.execute(
                f"{select} AND key = ? AND upload_id > ? ORDER BY upload_id LIMIT {batch}",
                [walk.bucket, position.key, position.within],
            ).fetchall()
            if not rows:
                position = _Position(position.key, inclusive=False)
                continue
        else:
            where, params = walk.keys_from(position)
            rows = walk.db.execute(
                f"{select}{where} ORDER BY key, upload_id LIMIT {batch}",
                [walk.bucket, *params],
            ).fetchall()
            if not rows:
                return
        batch = min(batch * 4, _BATCH)
        for row in rows:
            upload = upload_from_row(row, {})
            if not upload.key.startswith(walk.prefix):
                return
            common = walk.common(upload.key)
            if common is not None:
                if common > key_marker:
                    yield common, None
                position = _Position(successor(common), inclusive=True)
                batch = _FIRST_BATCH
                break  # seek past the group
            yield None, upload
            position = _Position(upload.key, inclusive=False, within=upload.upload_id)
