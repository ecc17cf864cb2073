"""Before a log is served or changed: is it whole, and does it extend its anchor?

DuckDB opens a log whose WAL was lost, truncated or garbled without a word, dropping what
it cannot read. So before the server (or an offline tool that writes, such as gc) opens
the log for writing, the log is opened read-only (nothing is replayed into the files, so
a damaged WAL stays as evidence) and compared with its anchor (registry.anchor):

- no log file, but an anchor or blobs exist: the log is missing;
- the log ends before the anchor's seq: events were lost (shorter than the anchor);
- the event at the anchor's seq has another hash: the log was rewritten;
- from the anchor's seq to the head, each event links to its predecessor and hashes to
  its stored hash: a tail edited after the last commit this anchor saw is caught too.

Any of these refuses to start, with what is wrong and how to recover. `accept_loss`
(`serve --accept-log-loss`) continues from the log as it is; the server then records
that decision, the old anchor and the log's head in the log itself (LogLossAccepted).
Events before the anchor's seq are only checked by their link to it (an edit that is not
re-hashed is found by `verify`, or the scrub); see docs/integrity.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from s3facade.backends import BackendSet
from s3facade.registry.anchor import AnchorDamaged, AnchorRecord, LogAnchor
from s3facade.registry.errors import LogInUse, LogUntrusted
from s3facade.registry.events import GENESIS_HASH, Event, EventType, chain_hash
from s3facade.registry.gc import DigestListing
from s3facade.registry.heads import SIGNING_GRACE, HeadTrust, signature_problem
from s3facade.registry.lake_store import LakeEventStore, LakeSettings
from s3facade.registry.log import CHECKPOINT_WAL_BYTES, MAX_BATCH, EventLog
from s3facade.registry.payloads import LogAnchorCreated, LogLossAccepted

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


RECOVERY = (
    "Restore {log} (with its .wal file) from a backup that holds at least event {seq}, or "
    "start with --accept-log-loss to continue from the log as it is: that decision is "
    "recorded in the log, and the bytes of writes the log no longer names are kept."
)


@dataclass(frozen=True)
class LogCheck:
    """What the check found, for the server to act on and record."""

    anchor: AnchorRecord | None  # None: no anchor file
    head_seq: int
    head_hash: str
    problem: str | None = None  # set only when accepted (accept_loss)

    @property
    def matches_anchor(self) -> bool:
        return self.problem is None and self.anchor is not None


def check_log(
    log_path: Path,
    anchor_path: Path,
    *,
    holds_blobs: bool,
    accept_loss: bool = False,
    trust: HeadTrust | None = None,
) -> LogCheck:
    """Refuse (LogUntrusted) a log that is missing, shorter than its anchor, does not extend
    it, has a broken tail, or (with `trust`) whose newest signed head does not hold; with
    `accept_loss`, report the problem instead."""
    try:
        anchor = LogAnchor.read(anchor_path)
    except AnchorDamaged as exc:
        if not accept_loss:
            raise LogUntrusted(
                f"{exc}. Restore it from a backup, or start with --accept-log-loss."
            ) from None
        anchor = None
    if not log_path.exists():
        problem = None
        if anchor is not None and anchor.seq > 0:
            problem = (
                f"the log {log_path} is missing, but its anchor {anchor_path} records "
                f"{anchor.seq} events"
            )
        elif holds_blobs:
            problem = f"the log {log_path} is missing, but the store holds blobs"
        return _decide(LogCheck(anchor, 0, GENESIS_HASH, problem), log_path, accept_loss)
    try:
        log = EventLog(log_path, read_only=True)
    except duckdb.IOException as exc:
        raise LogInUse(str(exc)) from exc
    except duckdb.Error as exc:
        raise LogUntrusted(f"the log {log_path} cannot be opened: {exc}") from exc
    try:
        problem = _compare(log, anchor, holds_blobs)
        if problem is None and trust is not None:
            problem = _check_signed_tail(log, trust, anchored=anchor is not None)
        check = LogCheck(anchor, log.last_seq, log.last_hash, problem)
    except duckdb.Error as exc:
        raise LogUntrusted(f"the log {log_path} cannot be read: {exc}") from exc
    finally:
        log.close_sync()
    return _decide(check, log_path, accept_loss)


def _compare(log: EventLog, anchor: AnchorRecord | None, holds_blobs: bool) -> str | None:
    if anchor is None:
        if log.last_seq == 0 and holds_blobs:
            return "the log is empty, but the store holds blobs"
        return None  # a new log, or one kept before anchors existed: the server anchors it
    if log.last_seq < anchor.seq:
        return (
            f"the log ends at event {log.last_seq}, but its anchor records event {anchor.seq}: "
            f"{anchor.seq - log.last_seq} acknowledged events are missing (a lost, truncated "
            "or damaged WAL, or an older copy of the log)"
        )
    problem = _check_tail(log, anchor.seq, anchor.hash)
    return None if problem is None else f"{problem} (checked from the anchor)"


def _check_signed_tail(log: EventLog, trust: HeadTrust, *, anchored: bool) -> str | None:
    """The newest signed head must verify, the chain must still hold the event it signed,
    and the events after it may span at most one signing interval (the newest are unsigned
    only until the next interval, or a crash): else signed heads were removed or the log
    re-hashed. A log without any signed head passes only if young, or kept before anchors
    and signatures existed (no anchor either)."""
    last = log.store.event_at(log.last_seq)
    if last is None:
        return None
    newest = log.store.newest_of(EventType.LOG_HEAD_SIGNED)
    signed_seq = 0
    if newest is not None:
        problem = signature_problem(newest.data, trust.trusted)
        if problem is not None:
            return (
                f"the newest signed head (event {newest.seq}): {problem}. If the key changed, "
                "add the old public key to head_trusted_keys"
            )
        signed_seq = int(newest.data["signed_seq"])
        problem = _check_tail(log, signed_seq, str(newest.data["signed_hash"]))
        if problem is not None:
            return f"{problem} (checked from the newest signed head, event {newest.seq})"
    elif not anchored:
        return None
    first_unsigned = log.store.first_after(signed_seq)
    if first_unsigned is None:
        return None
    allowed = timedelta(seconds=trust.interval) + SIGNING_GRACE
    if last.time - first_unsigned.time > allowed:
        return (
            f"events {first_unsigned.seq} to {last.seq} are covered by no signed head, though "
            f"one is made every {trust.interval:g} s: signed heads were removed or the log "
            "was rewritten"
        )
    return None


def _check_tail(log: EventLog, seq: int, digest: str) -> str | None:
    """Event `seq` has hash `digest`, and every event after it is re-hashed and linked."""
    first = max(seq, 1)
    expected_seq = first
    prev_hash = GENESIS_HASH if seq == 0 else None  # the named event's own link is not checked
    for event in log.store.scan(after=first - 1):
        if event.seq != expected_seq:
            return f"event {expected_seq} is missing"
        if event.seq == seq and event.hash != digest:
            return (
                f"event {seq} has hash {event.hash[:16]}…, not the recorded {digest[:16]}…: "
                "the log was rewritten"
            )
        if prev_hash is not None and event.prev_hash != prev_hash:
            return f"event {event.seq} does not link to its predecessor: the log was edited"
        if chain_hash(event.prev_hash, event.canonical()) != event.hash:
            return f"event {event.seq} was edited: its hash does not match its content"
        prev_hash, expected_seq = event.hash, expected_seq + 1
    return None


def _decide(check: LogCheck, log_path: Path, accept_loss: bool) -> LogCheck:
    if check.problem is None or accept_loss:
        return check
    seq = check.anchor.seq if check.anchor is not None else check.head_seq
    raise LogUntrusted(f"{check.problem}. " + RECOVERY.format(log=log_path, seq=seq))


def open_anchor(path: Path, check: LogCheck) -> LogAnchor:
    """The anchor to advance from now on: the existing one when the log matched it, else a
    new one at the log's head (the old file is kept beside it as evidence)."""
    if check.matches_anchor:
        return LogAnchor.open(path)
    if path.exists():
        path.rename(path.with_name(f"{path.name}.replaced-at-{check.head_seq}"))
    return LogAnchor.create(path, check.head_seq, check.head_hash)


def open_checked_log(
    log_path: Path,
    anchor_path: Path,
    backends: BackendSet,
    *,
    accept_loss: bool = False,
    trust: HeadTrust | None = None,
    max_batch: int = MAX_BATCH,
    checkpoint_wal_bytes: int = CHECKPOINT_WAL_BYTES,
) -> EventLog:
    """The log opened for writing once `check_log` passed, anchored, with what the check
    found recorded in it (a loss the operator accepted, an anchor created for an old log),
    and its head signed (with `trust`) so that what came before this start is covered."""
    holds_blobs = _run_sync(_holds_blobs(backends))
    check = check_log(
        log_path, anchor_path, holds_blobs=holds_blobs, accept_loss=accept_loss, trust=trust
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        log = EventLog(log_path, max_batch=max_batch, checkpoint_wal_bytes=checkpoint_wal_bytes)
    except duckdb.IOException as exc:
        raise LogInUse(str(exc)) from exc
    if (log.last_seq, log.last_hash) != (check.head_seq, check.head_hash):
        log.close_sync()
        raise LogUntrusted(f"the log {log_path} changed while it was being checked")
    log.anchor = open_anchor(anchor_path, check)
    if check.problem is not None:
        logger.warning("continuing after a log loss, as asked: %s", check.problem)
        kept = _run_sync(_unnamed_blobs(log, backends))
        log.append_now([_loss_accepted(check, kept)])
    elif check.anchor is None and check.head_seq > 0:
        logger.warning(
            "the log %s had no anchor (%s): anchored at event %d now",
            log_path,
            anchor_path,
            check.head_seq,
        )
        created = LogAnchorCreated(principal=SYSTEM, reason="no anchor file", head=_head(check))
        log.append_now([created.event()])
    _sign_head(log, trust)
    return log


def open_shared_log(
    path: Path, settings: LakeSettings, trust: HeadTrust | None, max_batch: int = MAX_BATCH
) -> EventLog:
    """A log several gateways share (registry.lake_store). No anchor file: the order and
    the head are kept in the lake's catalog, and each gateway's signed heads cover the
    chain up to where it wrote."""
    store = LakeEventStore(settings)
    try:
        log = EventLog(path, max_batch=max_batch, store=store)
    except BaseException:
        store.close()
        raise
    try:
        _sign_head(log, trust)
    except BaseException:
        log.close_sync()
        raise
    return log


def _sign_head(log: EventLog, trust: HeadTrust | None) -> None:
    """Sign the head at start, so that what came before it is covered."""
    if trust is not None and log.last_seq > 0:
        newest = log.store.event_at(log.last_seq)
        if newest is not None and newest.type != EventType.LOG_HEAD_SIGNED:
            log.append_now([trust.key.signed_head(log.last_seq, log.last_hash)])


SYSTEM = "s3facade:log"  # the principal of the log's own events


def _head(check: LogCheck) -> dict[str, Any]:
    return {"seq": check.head_seq, "hash": check.head_hash}


def _loss_accepted(check: LogCheck, kept: list[tuple[str, str]]) -> Event:
    anchor = check.anchor
    return LogLossAccepted(
        principal=SYSTEM,
        problem=check.problem,
        anchor=None if anchor is None else {"seq": anchor.seq, "hash": anchor.hash},
        head=_head(check),
        # Bytes of acknowledged writes the log lost: gc keeps them for a manual recovery.
        kept_blobs=[{"backend_id": b, "sha256": d} for b, d in kept],
    ).event()


async def _holds_blobs(backends: BackendSet) -> bool:
    for backend in backends.values():
        if isinstance(backend, DigestListing):
            async for _ in backend.digests():
                return True
    return False


async def _unnamed_blobs(log: EventLog, backends: BackendSet) -> list[tuple[str, str]]:
    named = log.store.blobs_named_after(0)
    unnamed = []
    for backend_id, backend in backends.items():
        if isinstance(backend, DigestListing):
            unnamed += [
                (backend_id, digest)
                async for digest in backend.digests()
                if (backend_id, digest) not in named
            ]
    return unnamed


def _run_sync(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from synchronous code, inside a running event loop or
    not (Registry.open is called from both)."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()
