"""Large-object throughput through s3facade against the same upstream accessed directly.

    .venv/bin/python bench/upstream_throughput.py [--size-mib 1024] [--upstreams moto,rgw]

For each upstream (moto in server mode; a real Ceph RGW from ../shared/services/rgw.sh,
bluestore, if it starts) the script starts that store and an `s3facade serve
--upstream-endpoint ...` in front of it, then moves one object of --size-mib with boto3
(same client settings both ways), directly and through the facade, in one run:

* PUT, one stream      put_object of the file (the facade uploads it as parallel parts)
* PUT, multipart       upload_file (s3transfer: 8 MiB parts, 10 threads)
* GET, one stream      get_object, read to the end
* GET, ranged parallel download_fileobj (s3transfer: 8 MiB ranges, 10 threads)

and reports MiB/s and facade/direct for each (the goal: >= 0.8 for large objects), plus
the facade's peak RSS. Client, facade and store share this machine's cores, so the
ratios are what matters, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from bench.compare.profile import profiled

REPO = Path(__file__).resolve().parent.parent
RGW_SH = Path(os.environ.get("S3FACADE_RGW_SH", REPO.parent / "shared/services/rgw.sh"))
MiB = 1 << 20
UPSTREAM_BUCKET = "bench-upstream"
FACADE_KEY, FACADE_SECRET = "bench-facade-key", "bench-facade-secret-0123456789"


@dataclass
class Store:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with suppress(httpx.TransportError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url}")


def client(store: Store) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        aws_access_key_id=store.access_key,
        aws_secret_access_key=store.secret_key,
        region_name=store.region,
        config=Config(max_pool_connections=16, read_timeout=300),
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def moto(workdir: Path) -> Iterator[Store]:
    port = free_port()
    log = (workdir / "moto.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/moto-api/", "moto_server")
        yield Store(f"http://127.0.0.1:{port}", "bench", "bench-secret")
    finally:
        stop(process)


@contextmanager
def rgw(workdir: Path) -> Iterator[Store]:
    directory = workdir / "rgw"
    started = subprocess.run(
        [str(RGW_SH), "start", str(directory)], capture_output=True, text=True, timeout=900
    )
    try:
        if started.returncode != 0:
            tail = started.stderr.strip().splitlines()[-3:]
            raise RuntimeError("rgw.sh start failed: " + " | ".join(tail))
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in started.stdout.splitlines()
            if line.startswith("export ")
        )
        value = {k: shlex.split(v)[0] for k, v in exports.items()}
        yield Store(
            value["AWS_ENDPOINT_URL"],
            value["AWS_ACCESS_KEY_ID"],
            value["AWS_SECRET_ACCESS_KEY"],
            value.get("AWS_DEFAULT_REGION", "us-east-1"),
        )
    finally:
        subprocess.run([str(RGW_SH), "stop", str(directory)], capture_output=True, timeout=300)


@contextmanager
def facade(store: Store, workdir: Path, name: str) -> Iterator[tuple[Store, int]]:
    port = free_port()
    env = {
        **os.environ,
        "S3FACADE_ACCESS_KEY_ID": FACADE_KEY,
        "S3FACADE_SECRET_ACCESS_KEY": FACADE_SECRET,
        "S3FACADE_UPSTREAM_ACCESS_KEY_ID": store.access_key,
        "S3FACADE_UPSTREAM_SECRET_ACCESS_KEY": store.secret_key,
    }
    command = [sys.executable, "-m", "s3facade", "serve", "--port", str(port)]
    command += ["--data-dir", str(workdir / f"facade-{name}"), "--log-level", "warning"]
    command += ["--upstream-endpoint", store.endpoint, "--upstream-bucket", UPSTREAM_BUCKET]
    command += ["--upstream-region", store.region, "--upstream-prefix", "bench/"]
    log = (workdir / f"facade-{name}.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/health", "s3facade")
        yield Store(f"http://127.0.0.1:{port}", FACADE_KEY, FACADE_SECRET), process.pid
    finally:
        stop(process)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class NullSink:
    """A seekable file that forgets what it is given (download_fileobj writes by offset)."""

    def __init__(self) -> None:
        self.position = 0

    def write(self, data: bytes) -> int:
        self.position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = offset
        return offset

    def tell(self) -> int:
        return self.position


def operations(path: Path, size: int) -> dict[str, Callable[[Any, str], None]]:
    transfer = TransferConfig()  # s3transfer's defaults: 8 MiB parts, 10 threads

    def put_stream(s3: Any, bucket: str) -> None:
        with path.open("rb") as f:
            s3.put_object(Bucket=bucket, Key="stream.bin", Body=f)

    def put_multipart(s3: Any, bucket: str) -> None:
        s3.upload_file(str(path), bucket, "multipart.bin", Config=transfer)

    def get_stream(s3: Any, bucket: str) -> None:
        body = s3.get_object(Bucket=bucket, Key="stream.bin")["Body"]
        got = 0
        while block := body.read(MiB):
            got += len(block)
        assert got == size, (got, size)

    def get_parallel(s3: Any, bucket: str) -> None:
        s3.download_fileobj(bucket, "stream.bin", NullSink(), Config=transfer)

    return {
        "PUT, one stream": put_stream,
        "PUT, multipart": put_multipart,
        "GET, one stream": get_stream,
        "GET, ranged parallel": get_parallel,
    }


def timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_store(
    name: str, store: Store, path: Path, size: int, workdir: Path, profile: Path | None = None
) -> dict[str, Any]:
    """Each operation direct, then through the facade; `profile`: py-spy the facade during
    each into profile/upstream-<store>-<operation>.txt."""
    direct = client(store)
    with suppress(Exception):
        direct.create_bucket(Bucket=UPSTREAM_BUCKET)
    results: dict[str, Any] = {"upstream": name, "size_mib": size // MiB, "operations": {}}
    with facade(store, workdir, name) as (front, pid):
        through = client(front)
        through.create_bucket(Bucket="bench")
        direct.create_bucket(Bucket="bench-direct")
        for op, fn in operations(path, size).items():
            # Direct first, then through the facade, back to back, same client settings.
            seconds_direct = timed(lambda fn=fn: fn(direct, "bench-direct"))
            traced = None
            if profile is not None:
                traced = profile / f"upstream-{name}-{op.replace(',', '').replace(' ', '-')}.txt"
            with profiled(pid, traced):
                seconds_facade = timed(lambda fn=fn: fn(through, "bench"))
            row = {
                "direct_mib_s": round(size / MiB / seconds_direct, 1),
                "facade_mib_s": round(size / MiB / seconds_facade, 1),
                "ratio": round(seconds_direct / seconds_facade, 2),
            }
            results["operations"][op] = row
            print(
                f"  {name:5} {op:22} direct {row['direct_mib_s']:7.1f} MiB/s   "
                f"facade {row['facade_mib_s']:7.1f} MiB/s   facade/direct {row['ratio']:.2f}",
                flush=True,
            )
        results["facade_peak_rss_mib"] = round(peak_rss_mib(pid), 1)
        print(f"  {name:5} facade peak RSS {results['facade_peak_rss_mib']} MiB", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--upstreams", default="moto,rgw")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    size = args.size_mib * MiB
    stores = {"moto": moto, "rgw": rgw}
    report: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="s3facade-bench-") as tmp:
        workdir = Path(tmp)
        path = workdir / "object.bin"
        with path.open("wb") as f:
            block = os.urandom(64 * MiB)
            for _ in range(size // len(block)):
                f.write(block)  # incompressible; repeats are fine (no dedup below 64 MiB)
            f.write(block[: size % len(block)])
        print(f"object of {args.size_mib} MiB, {os.cpu_count()} cores", flush=True)
        for name in args.upstreams.split(","):
            try:
                with stores[name](workdir) as store:
                    report.append(bench_store(name, store, path, size, workdir))
            except RuntimeError as exc:
                print(f"  {name}: skipped: {exc}", flush=True)
                report.append({"upstream": name, "skipped": str(exc)})
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
