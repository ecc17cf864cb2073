"""An object version's timeline: every event the log holds for it, and the copies made
from it elsewhere, oldest first, one table row each."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from s3facade.console.html import Html, join, short, table, tag
from s3facade.registry.events import CommittedEvent, EventType

LABELS: Mapping[str, str] = {
    EventType.OBJECT_WRITTEN: "written",
    EventType.UPLOAD_COMPLETED: "written (multipart)",
    EventType.OBJECT_IMPORTED: "imported",
    EventType.OBJECT_READ: "read",
    EventType.RETENTION_SET: "retention set",
    EventType.LEGAL_HOLD_SET: "legal hold set",
    EventType.TAGS_SET: "tags set",
    EventType.OBJECT_ACL_SET: "ACL set",
    EventType.OBJECT_DELETED: "deleted",
    EventType.DELETE_MARKER_PLACED: "delete marker placed",
    EventType.ACCESS_DENIED: "access denied",
}
COPIED_OUT = "copied out"
# May the signed-in user read this (bucket, key, version)? Names of others are withheld.
Visible = Callable[[str, str, str | None], bool]
Linker = Callable[[str, str, str | None], str]
Namer = Callable[[str], str]  # access key id -> display name


def timeline(
    events: Iterable[CommittedEvent],
    copies_out: Iterable[CommittedEvent],
    visible: Visible,
    href: Linker,
    names: Namer,
) -> Html:
    merged = sorted(
        [(e, False) for e in events] + [(e, True) for e in copies_out], key=lambda p: p[0].seq
    )
    rows = [_row(event, out, visible, href, names) for event, out in merged]
    head = ("seq", "time (UTC)", "event", "by", "tool", "from", "details", "hash")
    return table(head, rows, id="timeline-table", **{"class": "timeline"})


def _row(
    event: CommittedEvent, out: bool, visible: Visible, href: Linker, names: Namer
) -> list[str | Html | None]:
    data = event.data
    label = COPIED_OUT if out else LABELS.get(str(event.type), str(event.type))
    details: list[Html] = []
    source = data.get("derived_from")
    if out:
        details.append(
            _place("to ", event.bucket, event.key or "", data.get("version_id"), visible, href)
        )
    elif isinstance(source, Mapping) and event.type in (
        EventType.OBJECT_WRITTEN,
        EventType.UPLOAD_COMPLETED,
    ):
        label = "copied in"
        bucket, key = str(source.get("bucket")), str(source.get("key"))
        details.append(_place("from ", bucket, key, source.get("version_id"), visible, href))
    if not out:
        details.extend(_details(event))
    found = data.get("tool")
    tool: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    return [
        str(event.seq),
        event.time.strftime("%Y-%m-%d %H:%M:%S"),
        tag("span", {"class": f"event {label.replace(' ', '-')}"}, label),
        _who(str(data.get("principal", "")), names),
        " ".join(str(v) for v in (tool.get("name"), tool.get("version")) if v),
        str(data.get("client_address", "")),
        join(details),
        tag("code", {"title": event.hash}, short(event.hash, 10)),
    ]


def _who(principal: str, names: Namer) -> Html:
    name = names(principal) if principal else ""
    return tag("span", {"title": principal, "class": "who"}, name or principal)


def _place(
    prefix: str, bucket: str, key: str, version: Any, visible: Visible, href: Linker
) -> Html:
    version_id = None if version is None else str(version)
    if not visible(bucket, key, version_id):
        return tag("div", {"class": "place hidden"}, prefix, "an object you may not read")
    name = f"s3://{bucket}/{key}"
    return tag(
        "div", {"class": "place"}, prefix, tag("a", {"href": href(bucket, key, version_id)}, name)
    )


def _details(event: CommittedEvent) -> list[Html]:
    data = event.data
    found: list[tuple[str, Any]] = []
    kind = event.type
    if kind == EventType.OBJECT_IMPORTED:  # where it was before s3facade knew it
        found += [
            ("imported from", data.get("source")),
            ("source endpoint", data.get("source_endpoint")),
            ("source ETag", data.get("source_etag")),
            ("source version", data.get("source_version_id")),
            ("bytes", data.get("transfer")),
        ]
    if kind in (EventType.OBJECT_WRITTEN, EventType.UPLOAD_COMPLETED, EventType.OBJECT_IMPORTED):
        found += [
            ("size", data.get("size")),
            ("sha256", data.get("sha256")),
            ("content type", data.get("content_type")),
            ("version", data.get("version_id")),
            ("lock", _lock(data.get("lock_mode"), data.get("retain_until"))),
            ("legal hold", "on" if data.get("legal_hold") else None),
        ]
        for name, values in (
            ("provenance", "attached"),
            ("metadata", "metadata"),
            ("tags", "tags"),
        ):
            pairs = data.get(values)
            if isinstance(pairs, Mapping) and pairs:
                found.append((name, ", ".join(f"{k}={v}" for k, v in sorted(pairs.items()))))
    elif kind == EventType.OBJECT_READ:
        found += [
            ("method", data.get("method")),
            ("range", data.get("range")),
            ("bytes sent", data.get("bytes_sent")),
            ("status", data.get("status")),
            ("completed", "yes" if data.get("completed") else "no"),
            ("presigned", "yes" if data.get("presigned") else None),
        ]
    elif kind == EventType.RETENTION_SET:
        found += [("retention", _lock(data.get("mode"), data.get("retain_until")) or "none")]
        found += [("bypass governance", "yes" if data.get("bypass_governance") else None)]
    elif kind == EventType.LEGAL_HOLD_SET:
        status = data.get("status")
        found += [
            ("legal hold", ("on" if status else "off") if isinstance(status, bool) else status)
        ]
    elif kind == EventType.TAGS_SET:
        tags = data.get("tags")
        found += [
            ("tags", ", ".join(f"{k}={v}" for k, v in sorted((tags or {}).items())) or "none")
        ]
    elif kind == EventType.ACCESS_DENIED:
        found += [("action", data.get("action")), ("reason", data.get("reason"))]
    elif kind in (EventType.OBJECT_DELETED, EventType.DELETE_MARKER_PLACED):
        found += [("version", data.get("version_id")), ("reason", data.get("reason"))]
        found += [("rule", data.get("rule"))]
    return [
        tag("div", None, tag("span", {"class": "field"}, name, ": "), str(value))
        for name, value in found
        if value is not None and value != ""
    ]


def _lock(mode: Any, until: Any) -> str | None:
    if not mode:
        return None
    return f"{mode} until {until}" if until else str(mode)
