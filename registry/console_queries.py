"""What the provenance console (s3facade.console) asks of the registry about one object
version, beyond `audit.object_history` and `audit.effective_retention`: its lineage (the
sources it was copied from, the copies made from it) and a cheap, honest verify status.

The verify status reuses registry.verify: `verify_blobs` re-hashes the version's blob now,
`verify_chain` re-walks the chain around each of its events (the event's hash over its
content, its link to the stored predecessor, its successor's link to it). The whole-log
verify (`s3facade verify`) does more (every event, signed heads, the anchor); the last one
that found nothing left its verified point beside the anchor (registry.verification),
which is reported too, with whether the event it names still has the hash it had.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from s3facade.registry.audit import ObjectHistory
from s3facade.registry.event_store import OBJECT_WRITES
from s3facade.registry.events import GENESIS_HASH, CommittedEvent
from s3facade.registry.log import EventLog
from s3facade.registry.model import ObjectVersion
from s3facade.registry.verification import VerifiedPoint
from s3facade.registry.verify import Finding, VerifyReport, verify_blobs, verify_chain

if TYPE_CHECKING:
    from s3facade.registry.core import RegistryCore

REHASH_LIMIT = 256 << 20  # larger blobs are not re-hashed on a page view (the scrub does)
CHAIN_EVENTS_LIMIT = 200  # events whose chain links one page view checks (the newest)


@dataclass(frozen=True)
class LineageNode:
    bucket: str
    key: str
    version_id: str | None
    sha256: str | None
    event: CommittedEvent | None  # the write that made it, when the log has it


@dataclass(frozen=True)
class Lineage:
    sources: list[LineageNode]  # what this version's bytes were copied from
    copies: list[LineageNode]  # versions elsewhere copied from this one


def version_events(history: ObjectHistory, version: ObjectVersion) -> list[CommittedEvent]:
    """The events of one version: those naming its id, and those naming none (bucket-level
    refusals of the key), oldest first."""
    return [e for e in history.events if e.data.get("version_id") in (None, version.version_id)]


def version_lineage(history: ObjectHistory, version: ObjectVersion) -> Lineage:
    writes = [
        e
        for e in history.events
        if e.type in OBJECT_WRITES and e.data.get("version_id") == version.version_id
    ]
    sources: list[LineageNode] = []
    for write in writes[-1:]:  # the write that made this version (a "null" id may repeat)
        source = write.data.get("derived_from")
        if isinstance(source, Mapping):
            made = next(
                (
                    e
                    for e in history.derived_from
                    if e.bucket == source.get("bucket")
                    and e.key == source.get("key")
                    and e.data.get("version_id") == source.get("version_id")
                ),
                None,
            )
            sources.append(
                LineageNode(
                    str(source.get("bucket")),
                    str(source.get("key")),
                    _text(source.get("version_id")),
                    _text(source.get("sha256")),
                    made,
                )
            )
    copies = [
        LineageNode(
            e.bucket, e.key or "", _text(e.data.get("version_id")), _text(e.data.get("sha256")), e
        )
        for e in history.copied_to
        if _copied_from(e.data.get("derived_from"), version)
    ]
    return Lineage(sources, copies)


def _copied_from(source: Any, version: ObjectVersion) -> bool:
    if not isinstance(source, Mapping):
        return False
    named = source.get("version_id")
    if named is not None:
        return bool(named == version.version_id)
    return bool(source.get("sha256") == version.sha256)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass
class VersionCheck:
    """What one page view checked of a version, and when (UTC)."""

    checked_at: datetime
    blob_rehashed: bool = False  # False: too large to re-hash on a page view
    blob_ok: bool | None = None  # None: not checked
    blob_problem: str | None = None
    known_damage: str | None = None  # what a read or scrub of this process found earlier
    events_checked: int = 0
    events_total: int = 0
    chain_ok: bool | None = None  # None: no events to check
    chain_problems: list[str] = field(default_factory=list)
    verified_point: VerifiedPoint | None = None  # the last clean whole verify's head
    verified_point_intact: bool | None = None

    @property
    def ok(self) -> bool:
        return (
            self.blob_ok is not False
            and self.chain_ok is not False
            and (self.verified_point_intact is not False)
        )


def check_event_links(log: EventLog, seqs: Iterable[int]) -> tuple[int, list[str]]:
    """For each seq: the event's hash matches its content, it links to the stored hash of
    its predecessor, and its successor (if any) links to it. Blocking (run_query)."""
    store = log.store
    checked, problems = 0, []
    for seq in sorted(set(seqs)):
        previous = GENESIS_HASH if seq == 1 else store.stored_hash(seq - 1)
        if previous is None:
            problems.append(f"event {seq - 1}, before event {seq}, is missing")
            continue
        report = VerifyReport()
        window = store.scan(after=seq - 1, through=seq + 1)
        verify_chain(window, report, start=(seq - 1, previous))
        checked += 1
        if report.events_checked == 0:
            problems.append(f"event {seq} is missing")
        problems.extend(f.reason for f in report.findings if f.kind == "event")
    return checked, problems


def check_verified_point(log: EventLog) -> tuple[VerifiedPoint | None, bool | None]:
    """The last clean whole verify's head, and whether its event still has that hash."""
    if log.anchor is None:
        return None, None
    point = VerifiedPoint.load(VerifiedPoint.path_beside(log.anchor.path))
    if point is None:
        return None, None
    return point, log.store.stored_hash(point.seq) == point.hash


async def check_version(
    registry: RegistryCore, version: ObjectVersion, events: list[CommittedEvent]
) -> VersionCheck:
    """The version's blob re-hashed now (up to REHASH_LIMIT bytes), the chain links of its
    newest CHAIN_EVENTS_LIMIT events, and the last verified point."""
    check = VersionCheck(checked_at=datetime.now(UTC), events_total=len(events))
    damage = registry.integrity.known(version.backend_id, version.sha256)
    if damage is not None:
        check.known_damage = f"{damage.detected_by} found {damage.found} at {damage.detected_at}"
    if not version.delete_marker and version.size <= REHASH_LIMIT:
        report = VerifyReport()
        await verify_blobs(
            [(version.backend_id, version.sha256, version.size)], registry.backends, report
        )
        check.blob_rehashed = True
        check.blob_ok = report.ok
        check.blob_problem = "; ".join(_blob_reason(f) for f in report.findings) or None
    seqs = [e.seq for e in events][-CHAIN_EVENTS_LIMIT:]
    log = registry.log
    if seqs:
        checked, problems = await log.run_query(lambda: check_event_links(log, seqs))
        check.events_checked, check.chain_problems = checked, problems
        check.chain_ok = not problems
    point, intact = await log.run_query(lambda: check_verified_point(log))
    check.verified_point, check.verified_point_intact = point, intact
    return check


def _blob_reason(finding: Finding) -> str:
    return f"{finding.reason} (backend {finding.backend_id})"
