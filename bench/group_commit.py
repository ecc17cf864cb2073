"""Group commit: events/s for 32 concurrent small PUTs, against one commit per event.

Runs the registry as a library (no HTTP) on a temp dir, in one run: with group commit
(the default) and with one transaction per event (max_batch=1). Every PUT is durable
either way (blob fsynced, event committed before it returns). A second pair measures the
log alone (appends of write-sized events, no blob I/O) to show the commit cost itself.
A third variant leaves out the log anchor (registry.anchor: one more fdatasync per
transaction) to show what it costs: the ratio anchored / unanchored.

    .venv/bin/python -m bench.group_commit [--puts 3000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from s3facade.backends import BackendSet
from s3facade.backends.local import LocalCAS
from s3facade.registry import ObjectSpec, Provenance, Registry
from s3facade.registry.anchor import LogAnchor
from s3facade.registry.events import GENESIS_HASH, Event, EventType
from s3facade.registry.log import MAX_BATCH, EventLog
from s3facade.registry.payloads import ObjectWritten

WHO = Provenance("bench", "127.0.0.1:1", "bench/1.0", "BENCH")


async def body(n: int) -> AsyncIterator[bytes]:
    yield n.to_bytes(8, "big") * 128  # 1 KiB, distinct per PUT


async def run(
    root: Path, puts: int, concurrency: int, max_batch: int, anchored: bool = True
) -> dict[str, float]:
    local = LocalCAS(root / "blobs")
    registry = Registry.open(root, BackendSet({"local": local}, "local"), max_batch=max_batch)
    if not anchored and registry.log.anchor is not None:
        registry.log.anchor.close()
        registry.log.anchor = None
    await registry.create_bucket("bench", "us-east-1", WHO)
    counter = iter(range(puts))
    commits_before = registry.log.commits

    async def worker() -> None:
        for n in counter:
            await registry.put_object("bench", f"k/{n}", body(n), spec=ObjectSpec(), provenance=WHO)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    commits = registry.log.commits - commits_before
    await registry.close()
    return {
        "puts": puts,
        "seconds": round(elapsed, 3),
        "events_per_second": round(puts / elapsed, 1),
        "transactions": commits,
        "events_per_transaction": round(puts / max(commits, 1), 1),
    }


async def run_log_only(
    root: Path, events: int, concurrency: int, max_batch: int, anchored: bool = True
) -> dict[str, float]:
    """The log alone: concurrent appends of write-sized events, no blob I/O."""
    log = EventLog(root / "log.duckdb", max_batch=max_batch)
    if anchored:
        log.anchor = LogAnchor.create(root / "log.anchor", 0, GENESIS_HASH)
    counter = iter(range(events))
    data = ObjectWritten(
        **WHO.as_dict(), content_type="binary/octet-stream", headers={}, metadata={"k": "v"},
        size=1024, sha256="0" * 64, md5="0" * 32, etag="0" * 32, checksums={},
        backend_id="local", version_id="null",
    ).to_data()  # fmt: skip

    async def worker() -> None:
        for n in counter:
            await log.append([Event(EventType.OBJECT_WRITTEN, "bench", f"k/{n}", data)])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    commits = log.commits
    await log.close()
    return {
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_second": round(events / elapsed, 1),
        "transactions": commits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--puts", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    variants = (
        ("single", 1, True),
        ("group", MAX_BATCH, True),
        ("group_unanchored", MAX_BATCH, False),
    )
    for name, max_batch, anchored in variants:
        with tempfile.TemporaryDirectory(prefix="s3facade-bench-") as tmp:
            results[f"puts_{name}"] = asyncio.run(
                run(Path(tmp), args.puts, args.concurrency, max_batch, anchored)
            )
        with tempfile.TemporaryDirectory(prefix="s3facade-bench-") as tmp:
            results[f"log_only_{name}"] = asyncio.run(
                run_log_only(Path(tmp), args.puts * 3, args.concurrency, max_batch, anchored)
            )
    for kind in ("puts", "log_only"):
        rate = {name: results[f"{kind}_{name}"]["events_per_second"] for name, _, _ in variants}
        results[f"{kind}_ratio_group_over_single"] = {
            "value": round(rate["group"] / rate["single"], 2)
        }
        anchor_cost = rate["group"] / rate["group_unanchored"]
        results[f"{kind}_ratio_anchored_over_unanchored"] = {"value": round(anchor_cost, 2)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
