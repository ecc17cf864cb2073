"""Carrying out lifecycle plans: now (`run`), or in the background (`Sweeper`).

Every step goes through the registry's ordinary delete and abort, so an expiry is an
event like any other, with a system provenance (principal `s3facade:lifecycle`) and a
note naming the rule: {"reason": "lifecycle", "rule": <rule id>}. Those calls re-check
locks and conditions at commit, so a plan that went stale only gets skipped steps.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from s3facade.registry.errors import (
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    ObjectLocked,
    PreconditionFailed,
)
from s3facade.registry.lifecycle import Action, Status, Step, plan
from s3facade.registry.model import Provenance, WriteCondition

if TYPE_CHECKING:
    from s3facade.registry.registry import Registry

log = logging.getLogger(__name__)

PRINCIPAL = "s3facade:lifecycle"
USER_AGENT = "s3facade-lifecycle/1"

Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True)
class LifecycleRun:
    now: datetime
    dry_run: bool
    steps: list[Step]

    def as_dict(self) -> dict[str, Any]:
        counts = {status.value: 0 for status in Status}
        for step in self.steps:
            counts[step.status.value] += 1
        return {
            "now": self.now.isoformat() + "Z",
            "dry_run": self.dry_run,
            "counts": counts,
            "steps": [step.as_dict() for step in self.steps],
        }


# One run at a time per registry (the sweeper, the admin API): a second would only find
# the first one's work done, and report it as skipped.
_RUNNING: WeakKeyDictionary[Registry, asyncio.Lock] = WeakKeyDictionary()


def system_provenance() -> Provenance:
    """Who the lifecycle's events name: the server itself, one request id per run."""
    return Provenance(PRINCIPAL, "", USER_AGENT, secrets.token_hex(8).upper())


async def run(
    registry: Registry,
    *,
    dry_run: bool = False,
    buckets: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> LifecycleRun:
    """Plan at the registry's clock, then (unless `dry_run`) take each step through the
    registry's delete and abort, which re-check locks and conditions at commit."""
    async with _RUNNING.setdefault(registry, asyncio.Lock()):
        now = registry.clock()

        def planned() -> list[Step]:  # in a worker, on one snapshot of the views
            with registry.views.snapshot() as views:
                return plan(views, registry.policies, now, buckets)

        steps = await asyncio.to_thread(planned)
        provenance = system_provenance()
        taken: list[Step] = []
        for step in steps:
            if not dry_run and step.status is Status.PLANNED:
                step = await _take(registry, step, provenance)
            taken.append(step)
            if progress is not None:
                progress(len(taken), len(steps))
        return LifecycleRun(now, dry_run, taken)


async def _take(registry: Registry, step: Step, provenance: Provenance) -> Step:
    note = {"reason": "lifecycle", "rule": step.rule}
    try:
        if step.action is Action.ABORT_UPLOAD:
            assert step.upload_id is not None
            await registry.uploads.abort(step.bucket, step.key, step.upload_id, provenance, note)
        elif step.action in (Action.EXPIRE, Action.PLACE_DELETE_MARKER):
            # If-Match: a newer object written since the plan is not the one that expired.
            condition = WriteCondition(if_match=step.etag)
            await registry.delete_object(step.bucket, step.key, provenance, condition, note=note)
        else:
            latest = registry.views.latest(step.bucket, step.key)
            if step.action is Action.DELETE_NONCURRENT and (
                latest is None or latest.version_id == step.version_id
            ):
                raise NoSuchKey(step.key)  # current again: its newer versions were deleted
            await registry.delete_object(
                step.bucket, step.key, provenance, version_id=step.version_id, note=note
            )
    except ObjectLocked:
        return replace(step, status=Status.SKIPPED, reason="protected by Object Lock")
    except (NoSuchBucket, NoSuchKey, NoSuchUpload, PreconditionFailed):
        return replace(step, status=Status.SKIPPED, reason="changed since it was planned")
    return replace(step, status=Status.APPLIED)


class Sweeper:
    """Applies the rules in the background every `interval` seconds (<= 0: never)."""

    def __init__(self, registry: Registry, interval: float) -> None:
        self._registry = registry
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval > 0:
            self._task = asyncio.create_task(self._sweep(), name="lifecycle-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _sweep(self) -> None:
        while True:
            try:
                result = await run(self._registry)
            except Exception:  # a bad run must not end the sweeping
                log.exception("lifecycle sweep failed")
            else:
                counts = result.as_dict()["counts"]
                if counts["applied"]:
                    log.info("lifecycle: %(applied)d applied, %(skipped)d skipped", counts)
            await asyncio.sleep(self._interval)
