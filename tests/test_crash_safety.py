"""Invariant 1: kill -9 mid-work loses no acknowledged write and shows no partial object."""

from __future__ import annotations

import hashlib
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from tests.clients import cli_json
from tests.conftest import RunningServer


def payload(key: str) -> bytes:
    # Sizes from empty to a few MiB, so some uploads are mid-body when the kill lands.
    size = random.Random(key).choice([0, 1, 1000, 70_000, 1_500_000, 3_000_000])
    block = hashlib.sha256(key.encode()).digest()
    return (block * (size // 32 + 1))[:size]


def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data").start()
    s3 = server.client(retries={"max_attempts": 1})
    s3.create_bucket(Bucket="crash")
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        client = server.client(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10)
        for n in range(10_000):
            if stop.is_set():
                return
            key = f"w{worker}/obj-{n}"
            body = payload(key)
            try:
                client.put_object(Bucket="crash", Key=key, Body=body)
            except (ClientError, BotoCoreError):
                return  # the server died under us: this write was never acknowledged
            with lock:
                acknowledged[key] = hashlib.sha256(body).hexdigest()

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(writer, w) for w in range(6)]
        deadline = time.monotonic() + 20
        while len(acknowledged) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.stop(signal.SIGKILL)
        stop.set()
        for future in futures:
            future.result()
    assert len(acknowledged) >= 60

    restarted = RunningServer(tmp_path / "data").start()
    try:
        s3 = restarted.client()
        paginator = s3.get_paginator("list_objects_v2")
        listed = {
            o["Key"]: o["Size"]
            for page in paginator.paginate(Bucket="crash")
            for o in page.get("Contents", [])
        }
        for key, digest in acknowledged.items():
            assert key in listed, f"acknowledged {key} lost"
            body = s3.get_object(Bucket="crash", Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == digest
        for key, size in listed.items():  # anything visible is whole (no partial object)
            assert size == len(payload(key))
        staging = list((tmp_path / "data" / "blobs" / "tmp").iterdir())
        assert staging == []  # crash leftovers were removed at start-up
        # The persisted views caught up with the log: they equal a replay from its start.
        rebuilt = cli_json("rebuild", "--endpoint", restarted.endpoint)
        assert rebuilt["identical"] is True, rebuilt
    finally:
        restarted.stop()
