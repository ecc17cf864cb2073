"""One `verify`, whole or incremental, the same online and offline.

A whole verify walks the chain from the first event, checks the anchor and the signed
heads, compares the persisted views with a fresh replay, and re-hashes every blob in use.
When it finds nothing, it records the head it reached as the *verified point* (seq, hash,
time) in a small file beside the anchor (`<anchor>.verified`, outside the data dir, like
the anchor and for the same reason). An incremental verify starts there: the verified
event must still have the hash it had (else the log was rewritten: reported, and the walk
falls back to the whole chain), then it walks only the events after it, and re-hashes only
the blobs written since that are still in use; the views comparison, linear in their
size, is left to the whole verify.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from s3facade.registry.anchor import AnchorRecord
from s3facade.registry.events import GENESIS_HASH
from s3facade.registry.log import EventLog
from s3facade.registry.verify import (
    Finding,
    HeadAudit,
    VerifyReport,
    check_anchor,
    verify_blobs,
    verify_chain,
    views_differ,
)

if TYPE_CHECKING:
    from s3facade.registry.core import RegistryCore

Progress = Callable[[int], None]
_PRIME = 1000  # events before the verified point that signed heads after it may name


@dataclass(frozen=True)
class VerifiedPoint:
    seq: int
    hash: str
    time: str

    @staticmethod
    def path_beside(anchor_path: Path) -> Path:
        return anchor_path.with_name(anchor_path.name + ".verified")

    @classmethod
    def load(cls, path: Path) -> VerifiedPoint | None:
        try:
            fields = json.loads(path.read_text())
            return cls(int(fields["seq"]), str(fields["hash"]), str(fields["time"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable: the walk starts from the first event

    def save(self, path: Path) -> None:
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        temp.write_text(json.dumps(asdict(self)))
        os.replace(temp, path)


def verify_log(
    log: EventLog,
    report: VerifyReport,
    audit: HeadAudit,
    anchor: AnchorRecord | None,
    since: VerifiedPoint | None,
    progress: Progress | None = None,
) -> None:
    """The chain (from `since`, or the first event) with its signed heads, and the anchor.
    Blocking: run it in a worker (EventLog.run_query)."""
    start = (0, GENESIS_HASH)
    if since is not None and since.seq > 0:
        if log.store.stored_hash(since.seq) == since.hash:
            start = (since.seq, since.hash)
            report.incremental_from = since.seq
            for event in log.store.scan(after=max(since.seq - _PRIME, 0), through=since.seq):
                audit.remember(event)
        else:
            report.findings.append(
                Finding(
                    "verified",
                    f"event {since.seq} no longer has the hash it had when it was verified "
                    f"({since.time}): the log was rewritten since; walking all of it",
                    seq=since.seq,
                )
            )
    events = log.store.scan(after=start[0])
    verify_chain(events, report, progress, audit, start=start)
    if anchor is not None:
        check_anchor(report, anchor, log.store.stored_hash(anchor.seq))


async def verify_stored(
    registry: RegistryCore,
    report: VerifyReport,
    progress: Progress | None = None,
) -> None:
    """The views against a fresh replay (whole verify only) and the blobs: all those in use,
    or (incremental) those written since the verified point that are still in use."""
    since = report.incremental_from
    if since is None:
        compared = await registry.compare_views()
        if not compared.identical:
            report.findings.append(Finding("views", views_differ(compared.live, compared.rebuilt)))
        blobs = registry.views.live_blobs()
        await verify_blobs(blobs, registry.backends, report, progress)
        return
    log = registry.log
    named = await log.run_query(lambda: log.store.blobs_named_after(since))
    in_use = [(b, d, 0) for b, d in sorted(named) if registry.views.blob_in_use(b, d)]
    await verify_blobs(in_use, registry.backends, report, progress)


def record_verified(report: VerifyReport, path: Path) -> None:
    """A clean verify moves the verified point to the head it reached."""
    if report.ok and report.last_seq > 0:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        VerifiedPoint(report.last_seq, report.last_hash, now).save(path)
