"""The workloads, each run against every target that can take it, targets alternated inside
the workload (round after round) so that machine noise hits all of them alike."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

from bench.compare.load import (
    PUT_KEYS,
    Rate,
    curl_seconds,
    median,
    peak_rss,
    pool,
    timed,
    wrk,
)
from bench.compare.profile import profiled
from bench.compare.targets import Target, rss_mib
from bench.group_commit import run_log_only
from bench.upstream_throughput import NullSink
from s3facade.registry.log import MAX_BATCH

MiB = 1 << 20
SMALL = 4096
BUCKET = "bench"


def prepare(targets: Sequence[Target], workdir: Path) -> None:
    """The bucket and the small object the GETs read, on every target."""
    small = workdir / "small.bin"
    small.write_bytes(os.urandom(SMALL))
    for target in targets:
        target.make_bucket(BUCKET)
        curl_seconds(["-T", str(small), target.url("PUT", BUCKET, "small/object")])


def small_wrk(
    targets: Sequence[Target],
    method: str,
    rounds: int,
    seconds: float,
    workdir: Path,
    profile: Path | None = None,
) -> dict[str, Any]:
    """wrk -c32 on presigned URLs: GET of one 4 KiB object, or PUTs of 4 KiB to PUT_KEYS
    keys in turn."""
    rates = {t.name: Rate() for t in targets}
    keys = ["small/object"] if method == "GET" else [f"small/put/{n}" for n in range(PUT_KEYS)]
    urls = {t.name: [t.url(method, BUCKET, key) for key in keys] for t in targets}
    for round_ in range(rounds):
        for target in targets:
            size = SMALL if method == "PUT" else 0
            traced = profile if target.name == "s3facade" and round_ == 0 else None
            with profiled(target.pid, traced):  # py-spy's sampling costs a little CPU
                wrk(urls[target.name], rates[target.name], target.pid, seconds, 32, size, workdir)
    return {name: rate.as_dict() for name, rate in rates.items()}


def small_pool(
    targets: Sequence[Target], method: str, rounds: int, seconds: float
) -> dict[str, Any]:
    """A boto3 pool of 32 threads: get_object of one 4 KiB object, or put_object of 4 KiB."""
    rates = {t.name: Rate() for t in targets}
    for _ in range(rounds):
        for target in targets:
            call = _small_call(target.client(), method, os.urandom(SMALL))
            pool(call, rates[target.name], target.pid, seconds, 32)
    return {name: rate.as_dict() for name, rate in rates.items()}


def _small_call(s3: Any, method: str, body: bytes) -> Callable[[int], None]:
    def get(n: int) -> None:
        s3.get_object(Bucket=BUCKET, Key="small/object")["Body"].read()

    def put(n: int) -> None:
        s3.put_object(Bucket=BUCKET, Key=f"pool/{n % 1000}", Body=body)

    return get if method == "GET" else put


def large_curl(
    targets: Sequence[Target], path: Path, rounds: int, profile: Path | None = None
) -> dict[str, Any]:
    """One large object with curl on presigned URLs: PUT (-T) then GET, MB/s, peak RSS;
    `profile`: py-spy s3facade's first PUT and GET into profile/large-{put,get}.txt."""
    size = path.stat().st_size
    result: dict[str, Any] = {}
    put: dict[str, list[float]] = {t.name: [] for t in targets}
    get: dict[str, list[float]] = {t.name: [] for t in targets}
    rss: dict[str, float] = {t.name: 0.0 for t in targets}
    for round_ in range(rounds):
        for target in targets:
            traced = _traced(profile, "large-put", target, round_)
            with peak_rss(target.pid) as peak, profiled(target.pid, traced):
                put[target.name].append(
                    curl_seconds(["-T", str(path), target.url("PUT", BUCKET, "large")])
                )
            rss[target.name] = max(rss[target.name], peak[0])
        for target in targets:
            traced = _traced(profile, "large-get", target, round_)
            with peak_rss(target.pid) as peak, profiled(target.pid, traced):
                get[target.name].append(curl_seconds([target.url("GET", BUCKET, "large")]))
            rss[target.name] = max(rss[target.name], peak[0])
    for target in targets:
        result[target.name] = {
            "put_mb_s": round(size / 1e6 / median(put[target.name]), 1),
            "get_mb_s": round(size / 1e6 / median(get[target.name]), 1),
            "peak_rss_mib": round(rss[target.name], 1),
        }
    return result


def large_boto3(targets: Sequence[Target], path: Path, rounds: int) -> dict[str, Any]:
    """boto3's managed transfers (upload_file, download_fileobj; s3transfer's defaults)."""
    size, transfer = path.stat().st_size, TransferConfig()
    up: dict[str, list[float]] = {t.name: [] for t in targets}
    down: dict[str, list[float]] = {t.name: [] for t in targets}
    for _ in range(rounds):
        for target in targets:
            s3 = target.client()
            started = time.perf_counter()
            s3.upload_file(str(path), BUCKET, "managed", Config=transfer)
            up[target.name].append(time.perf_counter() - started)
        for target in targets:
            s3 = target.client()
            started = time.perf_counter()
            s3.download_fileobj(BUCKET, "managed", NullSink(), Config=transfer)
            down[target.name].append(time.perf_counter() - started)
    return {
        t.name: {
            "upload_mb_s": round(size / 1e6 / median(up[t.name]), 1),
            "download_mb_s": round(size / 1e6 / median(down[t.name]), 1),
        }
        for t in targets
    }


def listing_and_delete(
    targets: Sequence[Target], keys: int, profile: Path | None = None
) -> dict[str, Any]:
    """`keys` keys under dir/: a full paginated listing (1000 a page), the same with
    Delimiter="/", then DeleteObjects of all of them, 1000 a request; `profile`: py-spy
    s3facade's first listing and its deletes into profile/{listing,delete}.txt."""
    names = [f"dir/{n:06d}" for n in range(keys)]
    bucket = f"listing-{keys}"
    for target in targets:
        target.make_bucket(bucket)
        s3 = target.client()
        with ThreadPoolExecutor(32) as executor:
            for n in executor.map(
                lambda key, s3=s3: s3.put_object(Bucket=bucket, Key=key, Body=b""), names
            ):
                del n
    result: dict[str, Any] = {}
    for target in targets:
        listing = _Listing(target.client(), bucket, keys)
        with profiled(target.pid, _traced(profile, "listing", target, 0)):
            plain = [timed(listing.plain)]
        plain += [timed(listing.plain) for _ in range(2)]
        delimited = [timed(listing.delimited) for _ in range(3)]
        with profiled(target.pid, _traced(profile, "delete", target, 0)):
            deleted = timed(partial(listing.delete, names))
        result[target.name] = {
            "list_s": round(median(plain), 3),
            "list_delimiter_s": round(median(delimited), 3),
            "delete_objects_s": round(deleted, 3),
        }
    return result


def _traced(profile: Path | None, name: str, target: Target, round_: int) -> Path | None:
    """Where to py-spy this measurement: s3facade's first round only."""
    if profile is None or target.name != "s3facade" or round_ != 0:
        return None
    return profile / f"{name}.txt"


def _put_empty(s3: Any, bucket: str, key: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=b"")


class _Listing:
    def __init__(self, s3: Any, bucket: str, keys: int) -> None:
        self._s3, self._bucket, self._keys = s3, bucket, keys

    def _count(self, **extra: str) -> None:
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self._bucket, PaginationConfig={"PageSize": 1000}, **extra
        )
        got = sum(len(page.get("Contents", [])) for page in pages)
        assert got == self._keys, f"listed {got} keys, not {self._keys}"

    def plain(self) -> None:
        self._count()

    def delimited(self) -> None:
        self._count(Prefix="dir/", Delimiter="/")

    def delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):
            chunk = [{"Key": k} for k in names[start : start + 1000]]
            answer = self._s3.delete_objects(
                Bucket=self._bucket, Delete={"Objects": chunk, "Quiet": True}
            )
            assert not answer.get("Errors"), answer["Errors"][:3]


def big_upload_rss(target: Target, size: int, workdir: Path) -> dict[str, Any]:
    """A `size` upload (a sparse file: zeros, read without disk I/O) with curl: peak RSS."""
    path = workdir / "big.bin"
    with path.open("wb") as f:
        f.truncate(size)
    try:
        before = rss_mib(target.pid)  # what the earlier workloads left: part of the peak
        with peak_rss(target.pid) as peak:
            seconds = curl_seconds(["-T", str(path), target.url("PUT", BUCKET, "big")])
        return {
            "size_mib": size // MiB,
            "seconds": round(seconds, 1),
            "rss_before_mib": round(before, 1),
            "peak_rss_mib": round(peak[0], 1),
        }
    finally:
        path.unlink()


def log_events(writers: int, events: int) -> dict[str, Any]:
    """Events/s of the log alone under `writers` concurrent appenders: group commit (the
    default) against one transaction per event, in the same run."""
    result: dict[str, Any] = {}
    for name, batch in (("group", MAX_BATCH), ("one_per_event", 1)):
        with tempfile.TemporaryDirectory(prefix="s3facade-bench-") as tmp:
            measured = asyncio.run(run_log_only(Path(tmp), events, writers, batch))
        result[name] = measured["events_per_second"]
    return result
