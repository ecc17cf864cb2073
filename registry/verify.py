"""Tamper evidence: re-walk the hash chain, check the signed heads, re-hash every blob.

Chain checks, in order, for each event as stored (ordered by seq):
1. its seq follows its predecessor's (a gap: an event was removed);
2. its prev_hash is the predecessor's hash (else: removed, inserted or reordered);
3. its hash is SHA-256 over prev_hash and its canonical encoding (else: edited);
4. its type is one this version knows (else: forged or from a newer version).
The first event failing 1-3 is named; every later one fails too, so the walk stops.

A re-hashed log passes 1-3. Signed heads (registry.heads) catch it: with a trusted key,
every LogHeadSigned event must carry a valid signature over an (seq, hash) that the chain
still has, and the newest events may be unsigned for at most one signing interval (plus
grace). Truncating the newest events leaves a valid shorter chain: the anchor (start-up,
`verify` offline) and a head saved elsewhere (`verify --head SEQ:HASH`) catch that.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from s3facade.backends import BackendError, BackendSet
from s3facade.registry.anchor import AnchorRecord
from s3facade.registry.events import GENESIS_HASH, CommittedEvent, EventType, chain_hash
from s3facade.registry.heads import SIGNING_GRACE, signature_problem

Progress = Callable[[int], None]  # called with the number of items just done

_RECENT_HEADS = 16_384  # a signed head names an event at most a few batches back
VERIFY_PARALLEL = 4  # blobs re-hashed at once: reads overlap, hashing uses both cores
_HASH_OFF_LOOP = 64 * 1024


@dataclass(frozen=True)
class Finding:
    kind: str  # "event", "blob", "signature", "anchor", "head" or "views"
    reason: str
    seq: int | None = None
    digest: str | None = None
    backend_id: str | None = None


@dataclass
class VerifyReport:
    events_checked: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    blobs_checked: int = 0
    signed_heads_checked: int = 0
    last_signed_seq: int | None = None
    trusted_keys: int = 0
    incremental_from: int | None = None  # the verified point the walk started after
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "blobs_checked": self.blobs_checked,
            "incremental_from": self.incremental_from,
            "signed_heads": {
                "checked": self.signed_heads_checked,
                "last_signed_seq": self.last_signed_seq,
                "trusted_keys": self.trusted_keys,
            },
            "findings": [asdict(f) for f in self.findings],
        }


@dataclass
class HeadAudit:
    """The signed-head checks of one chain walk (see the module docstring). Without
    trusted keys signatures are counted but not judged."""

    trusted: frozenset[str] = frozenset()  # Ed25519 public keys, hex
    interval: timedelta = timedelta(seconds=60)
    saved_head: tuple[int, str] | None = None  # `verify --head SEQ:HASH`
    # seq -> (hash, time) of the newest events: a signed head names one at most a few
    # batches back. Small tuples, not events: 16k events' data would be tens of MiB.
    _recent: OrderedDict[int, tuple[str, datetime]] = field(default_factory=OrderedDict)
    _first_unsigned: tuple[int, datetime] | None = None  # seq, time
    _saved_head_seen: bool = False

    def remember(self, event: CommittedEvent) -> None:
        """An event verified earlier, before the walk's start: signed heads may name it."""
        self._recent[event.seq] = (event.hash, event.time)

    def see(self, event: CommittedEvent, report: VerifyReport) -> None:
        self._recent[event.seq] = (event.hash, event.time)
        if len(self._recent) > _RECENT_HEADS:
            self._recent.popitem(last=False)
        if self.saved_head is not None and event.seq == self.saved_head[0]:
            self._saved_head_seen = True
            if event.hash != self.saved_head[1]:
                report.findings.append(
                    Finding(
                        "head",
                        f"event {event.seq} has hash {event.hash}, not the saved head's "
                        f"{self.saved_head[1]}: the log does not extend the saved head",
                        seq=event.seq,
                    )
                )
        if self._first_unsigned is None:
            self._first_unsigned = (event.seq, event.time)
        if event.type == EventType.LOG_HEAD_SIGNED:
            self._signed_head(event, report)

    def _signed_head(self, event: CommittedEvent, report: VerifyReport) -> None:
        report.signed_heads_checked += 1
        if not self.trusted:
            return
        problem = signature_problem(event.data, self.trusted)
        signed_seq = event.data.get("signed_seq")
        signed = self._recent.get(signed_seq) if isinstance(signed_seq, int) else None
        if problem is None and (signed is None or signed[0] != event.data.get("signed_hash")):
            problem = (
                f"it signs event {signed_seq} with hash {event.data.get('signed_hash')}, "
                "which the chain does not have: the log was rewritten"
            )
        if problem is not None:
            report.findings.append(
                Finding("signature", f"signed head at event {event.seq}: {problem}", seq=event.seq)
            )
            return
        report.last_signed_seq = int(event.data["signed_seq"])
        # Covered up to the signed event; what followed it (this event too) is not yet.
        following = report.last_signed_seq + 1
        after = self._recent.get(following)
        self._first_unsigned = None if after is None else (following, after[1])

    def finish(self, report: VerifyReport, last: CommittedEvent | None) -> None:
        if self.saved_head is not None and not self._saved_head_seen:
            report.findings.append(
                Finding(
                    "head",
                    f"the log ends at event {report.last_seq}, before the saved head's event "
                    f"{self.saved_head[0]}: events were removed",
                )
            )
        if not self.trusted or last is None:
            return
        # A young log may have no signed head yet; an older one without any was stripped.
        if self._first_unsigned is None:
            return
        first_seq, first_time = self._first_unsigned
        if last.time - first_time > self.interval + SIGNING_GRACE:
            report.findings.append(
                Finding(
                    "signature",
                    f"events {first_seq} to {last.seq} ({_span(first_time, last.time)}) are "
                    f"covered by no signed head, though one is made every "
                    f"{self.interval.total_seconds():g} s: signed heads were removed",
                    seq=first_seq,
                )
            )


def views_differ(live: dict[str, Any], rebuilt: dict[str, Any]) -> str:
    return (
        f"the persisted views {live} differ from the views replayed from the log {rebuilt}: "
        "run `s3facade rebuild --force` on the running server, or delete the views files "
        "while it is stopped"
    )


def parse_head(text: str) -> tuple[int, str]:
    """`SEQ:HASH`, as `s3facade log` and `verify` print a head (ValueError)."""
    seq, sep, digest = text.partition(":")
    digest = digest.strip().lower()
    if not sep or not seq.strip().isdigit() or len(digest) != 64:
        raise ValueError(f"expected SEQ:HASH (a number and 64 hex digits), got {text!r}")
    int(digest, 16)
    return int(seq), digest


def _span(first: datetime, last: datetime) -> str:
    return f"{(last - first).total_seconds():.0f} s"


def verify_chain(
    events: Iterable[CommittedEvent],
    report: VerifyReport,
    progress: Progress | None = None,
    audit: HeadAudit | None = None,
    start: tuple[int, str] = (0, GENESIS_HASH),
) -> None:
    """Walk `events` (those after `start`, a verified (seq, hash), in seq order)."""
    audit = audit or HeadAudit()
    report.trusted_keys = len(audit.trusted)
    previous_seq, previous_hash = start
    report.last_seq, report.last_hash = start
    last: CommittedEvent | None = None
    for event in events:
        report.events_checked += 1
        if progress is not None:
            progress(1)
        reason = None
        if event.seq != previous_seq + 1:
            reason = (
                f"event {previous_seq + 1} is missing (removed)"
                if event.seq > previous_seq + 1
                else f"event {event.seq} appears twice or out of order"
            )
        elif event.prev_hash != previous_hash:
            reason = (
                f"event {event.seq} does not link to event {previous_seq}: an event was "
                "removed, inserted, reordered or rewritten"
            )
        elif chain_hash(event.prev_hash, event.canonical()) != event.hash:
            reason = f"event {event.seq} was edited: its hash does not match its content"
        if reason is not None:
            report.findings.append(Finding("event", reason, seq=min(event.seq, previous_seq + 1)))
            return
        if not isinstance(event.type, EventType):
            report.findings.append(
                Finding("event", f"event {event.seq} has an unknown type {event.type!r}", event.seq)
            )
        audit.see(event, report)
        previous_seq, previous_hash, last = event.seq, event.hash, event
        report.last_seq, report.last_hash = event.seq, event.hash
    audit.finish(report, last)


def check_anchor(report: VerifyReport, anchor: AnchorRecord | None, lookup: str | None) -> None:
    """After a full chain walk: does the log extend its anchor? `lookup` is the stored hash
    of the event at the anchor's seq (None if the log has no such event)."""
    if anchor is None or anchor.seq == 0:
        return
    if lookup is None:
        report.findings.append(
            Finding(
                "anchor",
                f"the log ends at event {report.last_seq}, but its anchor records event "
                f"{anchor.seq}: acknowledged events are missing",
            )
        )
    elif lookup != anchor.hash:
        report.findings.append(
            Finding(
                "anchor",
                f"event {anchor.seq} differs from the anchor's record: the log was rewritten",
                seq=anchor.seq,
            )
        )


async def verify_blobs(
    blobs: Iterable[tuple[str, str, int]],
    backends: BackendSet,
    report: VerifyReport,
    progress: Progress | None = None,
    *,
    parallel: int = VERIFY_PARALLEL,
) -> None:
    """Re-hash each (backend id, sha256, size), `parallel` at a time, hashing off the
    event loop; findings come out in digest order whatever order the checks end in."""
    queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(maxsize=2 * parallel)
    findings: list[Finding] = []

    async def worker() -> None:
        while (blob := await queue.get()) is not None:
            backend_id, digest = blob
            found = await _rehash(backends, backend_id, digest, progress)
            report.blobs_checked += 1
            if found != digest:
                reason = "blob is missing" if found is None else f"blob bytes hash to {found}"
                findings.append(Finding("blob", reason, digest=digest, backend_id=backend_id))

    async with asyncio.TaskGroup() as workers:
        for _ in range(parallel):
            workers.create_task(worker())
        for backend_id, digest, _size in blobs:
            await queue.put((backend_id, digest))
        for _ in range(parallel):
            await queue.put(None)
    report.findings.extend(sorted(findings, key=lambda f: (f.backend_id or "", f.digest or "")))


async def _rehash(
    backends: BackendSet, backend_id: str, digest: str, progress: Progress | None
) -> str | None:
    if backend_id not in backends:
        return None
    sha = hashlib.sha256()
    try:
        async for block in backends[backend_id].open(digest):
            if len(block) >= _HASH_OFF_LOOP:
                await asyncio.to_thread(sha.update, block)
            else:
                sha.update(block)
            if progress is not None:
                progress(len(block))
    except BackendError:
        return None
    return sha.hexdigest()
