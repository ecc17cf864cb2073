"""The registry at scale: start-up, memory, listings, HEAD/GET, PUT rate and verify, for
data dirs of N versions, side by side in one run.

    .venv/bin/python -m bench.scale --versions 10000 1000000 [--root DIR] [--skip-verify]

For each N it builds (or, under --root, reuses) a data dir with bench.load_versions, starts
`s3facade serve` on it, and measures over real sockets with SigV4-signed requests (httpx
with a keep-alive connection, signed by botocore): time to /-/health and to /-/ready, RSS
after start and after listing every key, p50/p99 of listing pages (the first, one with a
delimiter at the root that folds every key into 1000 prefixes, one in the middle with and
without a delimiter, the last, versions in the middle), of HEAD and GET, the rate of small
PUTs from 8 threads, and the time of a full `verify` and of one from the last verified
point. Prints a Markdown table, with each figure also as a ratio to the first N's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.load_versions import BUCKET, key_of, load

ACCESS_KEY, SECRET_KEY = "AKIDSCALEBENCH000001", "scale-bench-secret-key-0123456789abcdef"
GROUPS = 1000
REPEAT = 200  # samples per figure: its p99 is the second-slowest


def signed(method: str, url: str, body: bytes = b"") -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1").add_auth(request)
    return dict(request.headers.items())


class Server:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "S3FACADE_ACCESS_KEY_ID": ACCESS_KEY,
            "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "s3facade", "serve", "--port", str(port),
             "--data-dir", str(data_dir), "--log-level", "warning"],
            env=env, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.health = self.ready = 0.0
        while not self.ready:
            if time.monotonic() - started > 600:
                raise RuntimeError("the server did not become ready")
            try:
                if not self.health and httpx.get(f"{self.base}/-/health").status_code == 200:
                    self.health = time.monotonic() - started
                if self.health and httpx.get(f"{self.base}/-/ready").status_code == 200:
                    self.ready = time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.01)
        self.client = httpx.Client(timeout=120)

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    def request(self, method: str, path: str, query: dict[str, str] | None = None,
                body: bytes = b"") -> httpx.Response:  # fmt: skip
        url = f"{self.base}{path}" + (f"?{urlencode(query)}" if query else "")
        response = self.client.request(method, url, headers=signed(method, url, body), content=body)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:200]}")
        return response

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=120)


def timed(call: Callable[[], Any], repeat: int = REPEAT) -> tuple[float, float]:
    """p50 and p99 in milliseconds, after one untimed call (which reads the pages from disk
    the first time: start-up figures are measured on their own)."""
    call()
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def put_rate(server: Server, seconds: float = 5.0, threads: int = 8) -> float:
    done = [0] * threads
    deadline = time.monotonic() + seconds

    def writer(slot: int) -> None:
        client = httpx.Client(timeout=30)
        n = 0
        while time.monotonic() < deadline:
            url = f"{server.base}/{BUCKET}/puts/{slot}/{n}"
            body = b"%d" % n
            client.put(url, headers=signed("PUT", url, body), content=body).raise_for_status()
            n += 1
        done[slot] = n
        client.close()

    workers = [threading.Thread(target=writer, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / seconds


def list_everything(server: Server) -> int:
    count, token = 0, ""
    while True:
        query = {"list-type": "2", "max-keys": "1000"} | (
            {"continuation-token": token} if token else {}
        )
        text = server.request("GET", f"/{BUCKET}", query).text
        count += text.count("<Key>")
        if "<NextContinuationToken>" not in text:
            return count
        token = text.split("<NextContinuationToken>")[1].split("<")[0]


def verify_seconds(server: Server | None, *args: str) -> float:
    env = {
        **os.environ,
        "S3FACADE_ACCESS_KEY_ID": ACCESS_KEY,
        "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "s3facade", "verify", "--json", *args]
        + (["--endpoint", server.base] if server is not None else []),
        env=env, capture_output=True, text=True, timeout=7200,
    )  # fmt: skip
    elapsed = time.monotonic() - began
    if result.returncode != 0:
        raise RuntimeError(f"verify failed: {result.stdout[-500:]} {result.stderr[-500:]}")
    return elapsed


def measure(data_dir: Path, versions: int, port: int, skip_verify: bool) -> dict[str, Any]:
    rng = random.Random(versions)
    server = Server(data_dir, port)
    try:
        figures: dict[str, Any] = {
            "versions": versions,
            "start_health_s": server.health,
            "start_ready_s": server.ready,
            "rss_after_start_mib": server.rss_mib(),
        }
        middle = f"g{GROUPS // 2:04d}/"
        last = key_of(versions - 1, GROUPS)
        pages = {
            "list_first_page": {"list-type": "2"},
            "list_delimiter_root": {"list-type": "2", "delimiter": "/"},
            "list_delimiter_middle": {"list-type": "2", "delimiter": "/", "prefix": middle},
            "list_prefix_middle": {"list-type": "2", "prefix": middle},
            "list_last_page": {"list-type": "2", "start-after": last[:-8]},
            "list_versions_middle": {"versions": "", "prefix": middle},
        }
        for name, query in pages.items():
            figures[name + "_ms"] = timed(lambda q=query: server.request("GET", f"/{BUCKET}", q))
        keys = [key_of(rng.randrange(versions), GROUPS) for _ in range(REPEAT * 4)]
        picks = iter(keys)
        figures["head_ms"] = timed(lambda: server.request("HEAD", f"/{BUCKET}/{next(picks)}"))
        figures["get_ms"] = timed(lambda: server.request("GET", f"/{BUCKET}/{next(picks)}"))
        figures["put_per_s"] = put_rate(server)
        began = time.monotonic()
        figures["listed_keys"] = list_everything(server)
        figures["list_all_s"] = time.monotonic() - began
        figures["rss_after_listing_all_mib"] = server.rss_mib()
        figures["log_mib"] = (data_dir / "registry.duckdb").stat().st_size / 2**20
        figures["views_mib"] = sum(p.stat().st_size for p in data_dir.glob("views.*")) / 2**20
    finally:
        server.stop()
    if not skip_verify:
        # The whole verify offline (linear: at 10M versions it replays the log into fresh
        # views), then one from the point it verified, against the server.
        figures["verify_full_s"] = verify_seconds(None, "--data-dir", str(data_dir))
        server = Server(data_dir, port)
        try:
            put_rate(server, seconds=1.0)  # something new to verify
            figures["verify_incremental_s"] = verify_seconds(server, "--incremental")
        finally:
            server.stop()
    return figures


def render(results: list[dict[str, Any]]) -> str:
    names = [name for name in results[0] if name != "versions"]
    lines = ["| figure | " + " | ".join(f"{r['versions']:,} versions" for r in results) + " |"]
    lines.append("| --- |" + " --- |" * len(results))
    base = results[0]
    for name in names:
        cells = []
        for result in results:
            value = result.get(name)
            if isinstance(value, tuple | list):
                cell = f"p50 {value[0]:.1f} / p99 {value[1]:.1f}"
                ratio = value[1] / base[name][1] if base[name][1] else 0
            elif isinstance(value, int | float):
                cell = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
                ratio = value / base[name] if base.get(name) else 0
            else:
                cells.append("-")
                continue
            cells.append(cell if result is base else f"{cell} ({ratio:.2f}x)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--root", type=Path, default=None, help="keep the data dirs here")
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument("--port", type=int, default=9771)
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="s3facade-scale-"))
    results = []
    for versions in args.versions:
        data_dir = root / f"scale-{versions}"
        if not (data_dir / "registry.duckdb").exists():
            print(f"loading {versions:,} versions into {data_dir}", file=sys.stderr)
            asyncio.run(load(data_dir, versions, GROUPS))
        results.append(measure(data_dir, versions, args.port, args.skip_verify))
        print(json.dumps(results[-1]), file=sys.stderr)
    print(render(results))


if __name__ == "__main__":
    main()
