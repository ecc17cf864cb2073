"""Tamper evidence: re-walk the hash chain and re-hash every blob the views reference.

Chain checks, in order, for each event as stored (ordered by seq):
1. its seq follows its predecessor's (a gap: an event was removed);
2. its prev_hash is the predecessor's hash (else: removed, inserted or reordered);
3. its hash is SHA-256 over prev_hash and its canonical encoding (else: edited).
The first event failing any check is named; every later one fails too, so the walk stops.
Truncating the newest events leaves a valid shorter chain: that needs an anchor kept
elsewhere (the last hash, as `s3facade log` shows it), which this check cannot provide.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from backends import BackendError, BackendSet
from registry.events import GENESIS_HASH, CommittedEvent, chain_hash

Progress = Callable[[int], None]  # called with the number of items just done


@dataclass(frozen=True)
class Finding:
    kind: str  # "event" or "blob"
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
            "findings": [asdict(f) for f in self.findings],
        }


def verify_chain(
    events: Iterable[CommittedEvent], report: VerifyReport, progress: Progress | None = None
) -> None:
    previous_seq, previous_hash = 0, GENESIS_HASH
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
        previous_seq, previous_hash = event.seq, event.hash
        report.last_seq, report.last_hash = event.seq, event.hash


async def verify_blobs(
    blobs: dict[tuple[str, str], int],
    backends: BackendSet,
    report: VerifyReport,
    progress: Progress | None = None,
) -> None:
    for (backend_id, digest), _size in sorted(blobs.items()):
        report.blobs_checked += 1
        found = await _rehash(backends, backend_id, digest, progress)
        if found != digest:
            reason = "blob is missing" if found is None else f"blob bytes hash to {found}"
            report.findings.append(Finding("blob", reason, digest=digest, backend_id=backend_id))


async def _rehash(
    backends: BackendSet, backend_id: str, digest: str, progress: Progress | None
) -> str | None:
    if backend_id not in backends:
        return None
    sha = hashlib.sha256()
    try:
        async for block in backends[backend_id].open(digest):
            sha.update(block)
            if progress is not None:
                progress(len(block))
    except BackendError:
        return None
    return sha.hexdigest()
