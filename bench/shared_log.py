"""Several gateways over one shared log (docs/scale-out.md): throughput, latency, visibility.

    make bench-shared                       # RGW for the lake and the bytes, 1, 2, 4 gateways
    .venv/bin/python -m bench.shared_log --store moto --gateways 1 2 --seconds 5

For each gateway count it starts a fresh lake (PostgreSQL from ../shared/services/postgres.sh,
Parquet and bytes on the store) and that many `s3facade serve` processes, then:

- drives 4 KiB PUTs of distinct keys through every gateway at once (one client process per
  gateway, `--threads` connections each) for `--seconds`, after 1 s of the same load not
  counted (the store's first uploads): PUTs/s, p50 and p99 latency;
- reads each process's CPU from /proc (gateway, its two lake processes, PostgreSQL, the
  store) and counts the lake's commits (DuckLake snapshots in the catalog);
- measures cross-gateway visibility: a PUT on one gateway, then HEADs on another until it
  answers 200.

Before that, the lake alone: 1, 2 and 4 writer processes committing 1, 10 or 100 events
at a time through the deployment's lock (no HTTP, no bytes; each after a first commit not
counted), for the lake's ceiling. Compaction runs as deployed (every 300 s).

The baseline, measured in the same run, is one gateway whose log is its own DuckDB file
(bytes on the same store): every figure is also given as a ratio against it. Client and
servers share this machine's cores: the JSON records the CPU each part used, so the
scaling the measurements predict can be computed where the cores ran out.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.upstream_throughput import Store, moto, rgw
from s3facade.registry.events import Event, EventType
from s3facade.registry.lake_store import LakeEventStore, LakeSettings, lake_python
from s3facade.registry.log import LAKE_MAINTENANCE_SECONDS, EventLog
from s3facade.registry.model import Provenance
from s3facade.registry.payloads import ObjectWritten
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer
from tests.shared_log_services import GatewayCluster, Postgres
from tests.upstream_services import Upstream

BODY = os.urandom(4096)
BUCKET = "bench-shared"
TICKS = os.sysconf("SC_CLK_TCK")


def signed(method: str, url: str, body: bytes = b"") -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def _client_process(
    endpoint: str, tag: str, threads: int, seconds: float, out: Any, start: Any
) -> None:
    """One gateway's load: `threads` connections PUTting distinct keys until the deadline."""
    latencies: list[float] = []
    errors = [0]
    out.put("ready")
    start.wait()
    deadline = time.monotonic() + seconds

    def writer(slot: int) -> None:
        with httpx.Client(timeout=60) as client:
            n = 0
            while time.monotonic() < deadline:
                url = f"{endpoint}/{BUCKET}/{tag}/{slot}/{n}"
                began = time.perf_counter()
                response = client.put(url, headers=signed("PUT", url, BODY), content=BODY)
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - began)
                else:
                    errors[0] += 1
                n += 1

    workers = [threading.Thread(target=writer, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put({"latencies": latencies, "errors": errors[0]})


def _run_together(target: Any, arguments: list[tuple[Any, ...]], timeout: float) -> list[Any]:
    """One process per argument tuple (each gets `out` and `start` after it), let go at
    once when every one has said it is ready (their windows must overlap for the rates to
    add up); what each put in `out` at the end."""
    context = multiprocessing.get_context("spawn")
    out, start = context.Queue(), context.Event()
    processes = [context.Process(target=target, args=(*args, out, start)) for args in arguments]
    for process in processes:
        process.start()
    for _ in processes:
        if out.get(timeout=300) != "ready":
            raise RuntimeError("a load process failed before it was ready")
    start.set()
    results = [out.get(timeout=timeout) for _ in processes]
    for process in processes:
        process.join()
    return results


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split()
            todo += [int(child) for child in children]
    return found


def _pids_named(*names: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if any(comm.startswith(name) for name in names):
                pids.append(int(entry.name))
    return pids


def _snapshots(catalog: str, schema: str) -> int:
    with psycopg.connect(catalog, autocommit=True) as db:
        row = db.execute(f"SELECT count(*) FROM {schema}.ducklake_snapshot").fetchone()
    return int(row[0]) if row else 0


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


WARM_UP_SECONDS = 1.0


def drive(endpoints: list[str], threads: int, seconds: float) -> dict[str, Any]:
    arguments = [
        (endpoint, f"g{i}-{uuid.uuid4().hex[:6]}", threads, seconds)
        for i, endpoint in enumerate(endpoints)
    ]
    results = _run_together(_client_process, arguments, seconds + 120)
    latencies = [value for result in results for value in result["latencies"]]
    return {
        "puts_per_second": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "errors": sum(result["errors"] for result in results),
    }


def visibility(endpoints: list[str], samples: int) -> dict[str, float]:
    """Seconds from a PUT's answer on one gateway to a 200 for its HEAD on the next."""
    delays = []
    with httpx.Client(timeout=30) as client:
        for n in range(samples):
            writer, reader = endpoints[n % len(endpoints)], endpoints[(n + 1) % len(endpoints)]
            key = f"visible/{uuid.uuid4().hex}"
            url = f"{writer}/{BUCKET}/{key}"
            client.put(url, headers=signed("PUT", url, BODY), content=BODY).raise_for_status()
            written = time.perf_counter()
            url = f"{reader}/{BUCKET}/{key}"
            while client.head(url, headers=signed("HEAD", url)).status_code != 200:
                time.sleep(0.002)
            delays.append(time.perf_counter() - written)
    return {
        "p50_ms": statistics.median(delays) * 1000,
        "p99_ms": _percentile(delays, 0.99) * 1000,
        "max_ms": max(delays) * 1000,
    }


def _create_bucket(endpoint: str) -> None:
    url = f"{endpoint}/{BUCKET}"
    response = httpx.put(url, headers=signed("PUT", url), timeout=60)
    if response.status_code not in (200, 409):
        raise RuntimeError(f"create bucket: {response.status_code} {response.text}")


def measure(
    gateways: list[RunningServer], store_pids: list[int], threads: int, seconds: float,
    catalog: str | None = None, schema: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    endpoints = [gateway.endpoint for gateway in gateways]
    _create_bucket(endpoints[0])
    time.sleep(0.5)
    drive(endpoints, threads, WARM_UP_SECONDS)  # not counted: first uploads and commits
    gateway_pids = [_descendants(g.process.pid) for g in gateways if g.process is not None]
    postgres_pids = _pids_named("postgres")
    before = [_cpu_seconds(pids) for pids in gateway_pids]
    pg_before, store_before = _cpu_seconds(postgres_pids), _cpu_seconds(store_pids)
    commits_before = _snapshots(catalog, schema) if catalog and schema else 0
    load = drive(endpoints, threads, seconds)
    after = [_cpu_seconds(pids) for pids in gateway_pids]
    puts = load["puts_per_second"] * seconds
    result = {
        **load,
        "gateways": len(gateways),
        "gateway_cpu_seconds": [round(b - a, 2) for a, b in zip(before, after, strict=True)],
        "gateway_cpu_us_per_put": round(sum(after) - sum(before)) / puts * 1e6 if puts else 0,
        "postgres_cpu_seconds": round(_cpu_seconds(postgres_pids) - pg_before, 2),
        "store_cpu_seconds": round(_cpu_seconds(store_pids) - store_before, 2),
    }
    if catalog and schema:
        commits = _snapshots(catalog, schema) - commits_before
        result["lake_commits_per_second"] = commits / seconds
        result["puts_per_commit"] = puts / commits if commits else 0.0
    if len(endpoints) > 1:
        result["visibility"] = visibility(endpoints, 40)
    return result


def _lake_writer(settings: LakeSettings, batch: int, seconds: float, out: Any, start: Any) -> None:
    """One writer of the lake alone (no HTTP, no bytes): commits of `batch` events, each
    through the deployment's lock, as a gateway's commit."""
    root = Path(tempfile.mkdtemp(prefix="s3facade-lake-writer-"))
    log = EventLog(root / "unused.duckdb", store=LakeEventStore(settings))
    data = ObjectWritten(
        **Provenance("bench", "127.0.0.1", "bench", "REQ").as_dict(),
        content_type="binary/octet-stream", headers={}, metadata={}, size=4096,
        sha256="0" * 64, md5="0" * 32, etag="0" * 32, checksums={}, backend_id="store",
        version_id="null",
    ).to_data()  # fmt: skip
    latencies = []
    log.append_now([Event(EventType.OBJECT_WRITTEN, BUCKET, f"{root.name}/warm", data)])
    out.put("ready")  # after a first commit: the lake process and the table are warm
    start.wait()
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        events = [Event(EventType.OBJECT_WRITTEN, BUCKET, f"{root.name}/{n + i}", data)
                  for i in range(batch)]  # fmt: skip
        began = time.perf_counter()
        log.append_now(events)
        latencies.append(time.perf_counter() - began)
        n += batch
    log.close_sync()
    out.put({"events": n, "latencies": latencies})


def lake_ceiling(
    settings: LakeSettings, writers: int, batch: int, seconds: float
) -> dict[str, float]:
    results = _run_together(_lake_writer, [(settings, batch, seconds)] * writers, seconds + 300)
    latencies = [value for result in results for value in result["latencies"]]
    return {
        "writers": writers,
        "events_per_commit": batch,
        "events_per_second": round(sum(r["events"] for r in results) / seconds),
        "commits_per_second": round(len(latencies) / seconds, 1),
        "commit_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "commit_p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
    }


def _upstream(store: Store) -> Upstream:
    upstream = Upstream(
        "bench", store.endpoint, store.access_key, store.secret_key, store.region, "bench-lake"
    )
    upstream.ensure_bucket()
    return upstream


@contextmanager
def _store(kind: str, workdir: Path) -> Iterator[tuple[Store, list[int]]]:
    with (moto if kind == "moto" else rgw)(workdir) as store:
        names = ("moto_server", "python") if kind == "moto" else ("radosgw", "ceph-osd", "ceph-mon")
        pids = [pid for pid in _pids_named(*names) if _is_store(pid, kind)]
        yield store, pids


def _is_store(pid: int, kind: str) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"moto_server" in command if kind == "moto" else True


def run(kind: str, counts: list[int], threads: int, seconds: float) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="s3facade-bench-shared-"))
    postgres = Postgres().start()
    results: dict[str, Any] = {"store": kind, "threads_per_gateway": threads, "seconds": seconds}
    try:
        with _store(kind, workdir) as (store, store_pids):
            upstream = _upstream(store)
            baseline = GatewayCluster(workdir / "baseline", upstream, postgres.dsn, count=1)
            baseline_gateway = _single_gateway_without_lake(baseline)
            try:
                results["baseline_own_duckdb_log"] = measure(
                    [baseline_gateway], store_pids, threads, seconds
                )
            finally:
                baseline_gateway.stop()
            results["lake_alone"] = []
            for writers in (1, 2, 4):
                for batch in (1, 10, 100):
                    settings = LakeSettings(
                        catalog=postgres.dsn,
                        data_path=f"s3://{upstream.bucket}/ceiling-{writers}-{batch}/",
                        endpoint=upstream.endpoint,
                        gateway_id="bench",
                        access_key_id=upstream.access_key,
                        secret_access_key=upstream.secret_key,
                        metadata_schema=f"ceiling_{writers}_{batch}_{uuid.uuid4().hex[:6]}",
                        python=lake_python(),
                    )
                    ceiling = lake_ceiling(settings, writers, batch, min(seconds, 5.0))
                    results["lake_alone"].append(ceiling)
            for count in counts:
                # Compaction as deployed (the tests' cluster runs it every 2 s on purpose).
                cluster = GatewayCluster(
                    workdir / f"n{count}", upstream, postgres.dsn, count=count,
                    maintenance_seconds=LAKE_MAINTENANCE_SECONDS,
                )  # fmt: skip
                cluster.root.mkdir(parents=True)
                cluster.start()
                try:
                    results[f"shared_{count}"] = measure(
                        cluster.gateways, store_pids, threads, seconds,
                        postgres.dsn, cluster.schema,
                    )  # fmt: skip
                finally:
                    cluster.stop()
    finally:
        postgres.stop()
    base = results["baseline_own_duckdb_log"]["puts_per_second"]
    one = results.get("shared_1", {}).get("puts_per_second")
    for count in counts:
        entry = results[f"shared_{count}"]
        entry["x_baseline"] = round(entry["puts_per_second"] / base, 2) if base else None
        entry["x_one_gateway"] = round(entry["puts_per_second"] / one, 2) if one else None
    return results


def _single_gateway_without_lake(cluster: GatewayCluster) -> RunningServer:
    """The same gateway and byte store, its log the data dir's own DuckDB file."""
    cluster.root.mkdir(parents=True)
    config = cluster.config(0)
    text = config.read_text()
    config.write_text(text[: text.index("[log]")])
    gateway = RunningServer(cluster.root / "gw1" / "data", extra_args=["--config", str(config)])
    gateway.data_dir.parent.mkdir(parents=True, exist_ok=True)
    return gateway.start()


def render(results: dict[str, Any]) -> str:
    lines = [
        f"store {results['store']}, {results['threads_per_gateway']} connections per gateway, "
        f"{results['seconds']} s each",
        "| setup | PUT/s | x own-log gateway | x one lake gateway | p50 ms | p99 ms | "
        "gateway CPU µs/PUT | lake commits/s | PUTs/commit | visibility p50/p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in results.items():
        if not isinstance(entry, dict) or "puts_per_second" not in entry:
            continue
        seen = entry.get("visibility")
        lines.append(
            f"| {name} | {entry['puts_per_second']:.0f} | {entry.get('x_baseline', '1.00')} | "
            f"{entry.get('x_one_gateway', '')} | {entry['p50_ms']:.1f} | {entry['p99_ms']:.1f} | "
            f"{entry['gateway_cpu_us_per_put']:.0f} | "
            f"{entry.get('lake_commits_per_second', 0):.0f} | "
            f"{entry.get('puts_per_commit', 0):.1f} | "
            + (f"{seen['p50_ms']:.0f}/{seen['p99_ms']:.0f} |" if seen else "|")
        )
    lines += [
        "",
        "The lake alone (commits through the lock, no HTTP, no bytes):",
        "| writers | events/commit | events/s | commits/s | commit p50 ms | commit p99 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for entry in results.get("lake_alone", []):
        lines.append(
            f"| {entry['writers']} | {entry['events_per_commit']} | {entry['events_per_second']} "
            f"| {entry['commits_per_second']} | {entry['commit_p50_ms']} "
            f"| {entry['commit_p99_ms']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("rgw", "moto"), default="rgw")
    parser.add_argument("--gateways", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=8, help="connections per gateway")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = run(args.store, args.gateways, args.threads, args.seconds)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
