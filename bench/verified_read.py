"""GET throughput of one large object with and without read verification, in one run.

    .venv/bin/python bench/verified_read.py [--size-mib 1024] [--rounds 3]

Starts `s3facade serve` on a fresh data dir (local backend), PUTs one object of --size-mib,
then alternates, --rounds times each: a whole-object GET (hashed as it streams and checked
against the recorded SHA-256: registry.integrity) and a ranged GET of all but its last
byte (a range of part of the blob: passed through unverified). The client is boto3 with
response checksum validation off, reading 1 MiB at a time, so it costs the same both ways.
Prints the median MiB/s of each and their ratio. Client and server share this machine's
cores, so the ratio is what matters, not the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
KEY, SECRET = "bench-verify-key", "bench-verify-secret-0123456789"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def timed_get(s3: Any, size: int, byte_range: str | None) -> float:
    extra = {"Range": byte_range} if byte_range else {}
    started = time.perf_counter()
    body = s3.get_object(Bucket="bench", Key="big", **extra)["Body"]
    received = 0
    while chunk := body.read(MiB):
        received += len(chunk)
    seconds = time.perf_counter() - started
    assert received in (size, size - 1), received
    return received / MiB / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="s3facade-bench-") as tmp:
        port = free_port()
        env = {**os.environ, "S3FACADE_ACCESS_KEY_ID": KEY, "S3FACADE_SECRET_ACCESS_KEY": SECRET}
        server = subprocess.Popen(
            [sys.executable, "-m", "s3facade", "serve", "--port", str(port),
             "--data-dir", f"{tmp}/data", "--log-level", "warning"],
            cwd=REPO, env=env,
        )  # fmt: skip
        try:
            endpoint = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    httpx.get(f"{endpoint}/-/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            s3 = boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id=KEY,
                aws_secret_access_key=SECRET,
                region_name="us-east-1",
                config=Config(response_checksum_validation="when_required"),
            )
            s3.create_bucket(Bucket="bench")
            source = Path(tmp) / "source"
            with source.open("wb") as f:
                for _ in range(args.size_mib):
                    f.write(os.urandom(MiB))
            s3.upload_file(str(source), "bench", "big")
            source.unlink()
            verified, unverified = [], []
            for _ in range(args.rounds):
                verified.append(timed_get(s3, size, None))
                unverified.append(timed_get(s3, size, f"bytes=0-{size - 2}"))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    whole, ranged = statistics.median(verified), statistics.median(unverified)
    print(f"object: {args.size_mib} MiB, {args.rounds} rounds (median)")
    print(f"GET whole (verified):        {whole:8.1f} MiB/s   {[round(v) for v in verified]}")
    print(f"GET all but 1 byte (ranged): {ranged:8.1f} MiB/s   {[round(v) for v in unverified]}")
    print(f"verified / unverified:       {whole / ranged:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
