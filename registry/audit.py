"""Questions asked of the log: an object's history, the log itself, export.

These are blocking functions over an `EventLog`'s store (registry.event_store); the server
runs them through `EventLog.run_query`, offline tools call them directly. Admin SQL never
runs on the log's connection: registry.sql runs it in a sandboxed child process over the
store's `USER_VIEWS`, documented in docs/provenance.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3facade.registry.errors import NoSuchKey
from s3facade.registry.event_store import OBJECT_WRITES
from s3facade.registry.events import CommittedEvent, EventType
from s3facade.registry.log import EventLog

if TYPE_CHECKING:
    from s3facade.registry.registry import Registry


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
        writes = [e for e in self.events if e.type in OBJECT_WRITES]
        changes = [e for e in self.events if e.type is not EventType.OBJECT_READ]
        # The current version: the last change, if it wrote (a delete leaves none).
        current = changes[-1] if changes and changes[-1].type in OBJECT_WRITES else None
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
    log: EventLog,
    bucket: str,
    key: str,
    version_id: str | None = None,
    newest: int | None = None,
) -> ObjectHistory:
    """A key's events (of one version, with `version_id`), what its bytes came from and
    where they were copied. `newest` (with `version_id`): only that many of the version's
    newest events, besides the write that made it, and of the newest copies."""
    store = log.store
    if version_id is not None and newest is not None:
        events = store.version_history(bucket, key, version_id, newest)
    else:
        events = list(store.key_history(bucket, key))
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
        for e in store.writes_of_content(bucket_, key_, sha)
    ]
    copied_to = list(store.copies_of(bucket, key, newest))
    return ObjectHistory(bucket, key, events, derived_from, copied_to)


def log_events(
    log: EventLog,
    *,
    since: datetime | None = None,
    bucket: str | None = None,
    limit: int = 1000,
    newest: bool = False,
) -> list[CommittedEvent]:
    """Events at or after `since`: the first `limit`, or with `newest` the last, newest first."""
    return log.store.recent(since=since, bucket=bucket, limit=limit, newest=newest)


def export_parquet(log: EventLog, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "events.parquet"
    log.store.export_parquet(target)
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


def effective_retention(registry: Registry, bucket: str, key: str) -> dict[str, Any]:
    """The effective retention of every version of a key, newest first, as JSON: what
    `s3facade retention` shows. "protected" is judged by the registry's clock."""
    registry.bucket(bucket)  # NoSuchBucket
    versions = registry.views.versions(bucket, key)
    if not versions:
        raise NoSuchKey(key)
    now = registry.clock()
    return {
        "bucket": bucket,
        "key": key,
        "now": _utc_iso(now),
        "versions": [
            {
                "version_id": version.version_id,
                "is_latest": index == 0,
                "delete_marker": version.delete_marker,
                "last_modified": _utc_iso(version.last_modified),
                "size": version.size,
                "sha256": version.sha256 or None,
                "lock_mode": version.lock_mode.value if version.lock_mode else None,
                "retain_until": _utc_iso(version.retain_until) if version.retain_until else None,
                "legal_hold": version.legal_hold,
                "protected": version.protected(now),
                "retention_source": version.retention_source,
                "retention_policy": version.retention_policy,
            }
            for index, version in enumerate(versions)
        ],
    }


def _utc_iso(time: datetime) -> str:
    return time.isoformat() + "Z"  # the registry keeps naive UTC
