"""Questions asked of the log: an object's history, the log itself, export; the SQL views.

These are blocking functions over an `EventLog` (DuckDB cursors); the server runs them
through `EventLog.run_query`, offline tools call them directly. Admin SQL never runs on
the log's connection: registry.sql runs it in a sandboxed child process over `VIEWS`,
documented in docs/provenance.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from registry.events import CommittedEvent, EventType
from registry.log import EventLog

_COLUMNS = "seq, time, type, bucket, key, data, prev_hash, hash"
WRITE_TYPES = (EventType.OBJECT_WRITTEN.value, EventType.UPLOAD_COMPLETED.value)

# Views over the events table for `s3facade sql`, created in each query's own in-memory
# DuckDB by registry.sql_worker (over the Parquet mirror, or the attached log offline).
VIEWS = {
    "writes": f"""
        SELECT seq, time, type, bucket, key,
               data->>'version_id' AS version_id, (data->>'size')::BIGINT AS size,
               data->>'sha256' AS sha256, data->>'etag' AS etag,
               data->>'principal' AS principal, data->>'client_address' AS client_address,
               data->'tool'->>'name' AS tool, data->'tool'->>'version' AS tool_version,
               data->>'user_agent' AS user_agent, data->>'request_id' AS request_id,
               data->>'content_type' AS content_type, data->>'backend_id' AS backend_id,
               data->'metadata' AS metadata, data->'tags' AS tags,
               data->'attached' AS attached, data->'derived_from' AS derived_from, hash
        FROM events WHERE type IN {WRITE_TYPES}""",
    "reads": f"""
        SELECT seq, time, bucket, key, data->>'version_id' AS version_id,
               data->>'sha256' AS sha256, data->>'principal' AS principal,
               data->>'client_address' AS client_address,
               data->'tool'->>'name' AS tool, data->'tool'->>'version' AS tool_version,
               data->>'method' AS method, data->>'range' AS range,
               (data->>'bytes_sent')::BIGINT AS bytes_sent, (data->>'status')::INTEGER AS status,
               (data->>'completed')::BOOLEAN AS completed,
               (data->>'presigned')::BOOLEAN AS presigned, data->>'request_id' AS request_id
        FROM events WHERE type = '{EventType.OBJECT_READ.value}'""",
    "objects": f"""
        SELECT w.* FROM writes w JOIN (
            SELECT bucket, key, max(seq) AS seq FROM events
            WHERE type IN {(*WRITE_TYPES, EventType.OBJECT_DELETED.value)}
            GROUP BY bucket, key
        ) latest USING (bucket, key, seq)""",
    "buckets": f"""
        SELECT c.bucket AS name, c.time AS created, c.data->>'principal' AS owner,
               c.data->>'region' AS region
        FROM events c WHERE c.type = '{EventType.BUCKET_CREATED.value}' AND c.seq = (
            SELECT max(seq) FROM events e WHERE e.bucket = c.bucket
            AND e.type IN ('{EventType.BUCKET_CREATED.value}',
                           '{EventType.BUCKET_DELETED.value}'))""",
}


def event_dict(event: CommittedEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "time": event.time.isoformat() + "Z",
        "type": str(event.type),
        "bucket": event.bucket,
        "key": event.key,
        "data": event.data,
        "hash": event.hash,
    }


@dataclass(frozen=True)
class ObjectHistory:
    bucket: str
    key: str
    events: list[CommittedEvent]  # every event of this key, in order
    derived_from: list[CommittedEvent]  # writes of the sources this key was copied from
    copied_to: list[CommittedEvent]  # writes elsewhere that were copied from this key

    def as_dict(self) -> dict[str, Any]:
        writes = [e for e in self.events if e.type.value in WRITE_TYPES]
        changes = [e for e in self.events if e.type is not EventType.OBJECT_READ]
        # The current version: the last change, if it wrote (a delete leaves none).
        current = changes[-1] if changes and changes[-1].type.value in WRITE_TYPES else None
        return {
            "bucket": self.bucket,
            "key": self.key,
            "current": event_dict(current) if current else None,
            "writes": [event_dict(e) for e in writes],
            "reads": [event_dict(e) for e in self.events if e.type is EventType.OBJECT_READ],
            "derived_from": [event_dict(e) for e in self.derived_from],
            "copied_to": [event_dict(e) for e in self.copied_to],
            "events": [event_dict(e) for e in self.events],
        }


def object_history(
    log: EventLog, bucket: str, key: str, version_id: str | None = None
) -> ObjectHistory:
    events = list(
        log.select(
            f"SELECT {_COLUMNS} FROM events WHERE bucket = ? AND key = ? ORDER BY seq",
            (bucket, key),
        )
    )
    if version_id is not None:
        events = [e for e in events if e.data.get("version_id") in (None, version_id)]
    sources = {
        (src["bucket"], src["key"], src["sha256"])
        for e in events
        if (src := e.data.get("derived_from"))
    }
    derived_from = [
        e
        for bucket_, key_, sha in sorted(sources)
        for e in log.select(
            f"SELECT {_COLUMNS} FROM events WHERE bucket = ? AND key = ? AND type IN "
            f"{WRITE_TYPES} AND data->>'sha256' = ? ORDER BY seq",
            (bucket_, key_, sha),
        )
    ]
    copied_to = list(
        log.select(
            f"SELECT {_COLUMNS} FROM events WHERE data->'derived_from'->>'bucket' = ? "
            "AND data->'derived_from'->>'key' = ? ORDER BY seq",
            (bucket, key),
        )
    )
    return ObjectHistory(bucket, key, events, derived_from, copied_to)


def log_events(
    log: EventLog,
    *,
    since: datetime | None = None,
    bucket: str | None = None,
    limit: int = 1000,
) -> list[CommittedEvent]:
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append("time >= ?")
        params.append(since)
    if bucket is not None:
        clauses.append("bucket = ?")
        params.append(bucket)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT {_COLUMNS} FROM events {where} ORDER BY seq LIMIT {int(limit)}"
    return list(log.select(sql, params))


def export_parquet(log: EventLog, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "events.parquet"
    cursor = log.cursor()
    try:
        escaped = str(target).replace("'", "''")
        cursor.execute(f"COPY (SELECT * FROM events ORDER BY seq) TO '{escaped}' (FORMAT parquet)")
    finally:
        cursor.close()
    return target


STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://s3facade.dev/provenance/v1"


class NoHistory(LookupError):
    """The object has no current version in the log."""


def attestation(history: ObjectHistory) -> dict[str, Any]:
    """An in-toto Statement v1 for the current version: subject = name and SHA-256,
    predicate = what the log recorded about how it got there."""
    summary = history.as_dict()
    current = summary["current"]
    if current is None:
        raise NoHistory(f"s3://{history.bucket}/{history.key}")
    data = current["data"]
    source = data.get("derived_from")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": f"s3://{history.bucket}/{history.key}", "digest": {"sha256": data["sha256"]}}
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "object": {
                "bucket": history.bucket,
                "key": history.key,
                "versionId": data.get("version_id"),
                "size": data.get("size"),
                "etag": data.get("etag"),
                "contentType": data.get("content_type"),
            },
            "writer": {
                "principal": data.get("principal"),
                "clientAddress": data.get("client_address"),
                "tool": data.get("tool"),
                "userAgent": data.get("user_agent"),
                "requestId": data.get("request_id"),
                "time": current["time"],
            },
            "attached": data.get("attached", {}),
            "metadata": data.get("metadata", {}),
            "tags": data.get("tags", {}),
            "derivedFrom": (
                [
                    {
                        "uri": f"s3://{source['bucket']}/{source['key']}",
                        "digest": {"sha256": source["sha256"]},
                    }
                ]
                if source
                else []
            ),
            "log": {"seq": current["seq"], "hash": current["hash"]},
            "reads": len(summary["reads"]),
        },
    }
