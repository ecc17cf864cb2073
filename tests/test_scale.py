"""The registry at scale: start-up and memory stay flat from 10k to 100k versions, and the
loader the scale benchmark uses writes what a real server writes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.load_versions import BODY, BUCKET, load
from tests.clients import cli_json
from tests.conftest import RunningServer

# What differs between two writes of the same bytes by different requests.
PER_REQUEST = {"principal", "client_address", "user_agent", "tool", "request_id"}


def written(server: RunningServer) -> list[dict[str, Any]]:
    events = cli_json("log", "--endpoint", server.endpoint, "--limit", "100000")["events"]
    return [e for e in events if e["type"] == "ObjectWritten"]


def rss_mib(server: RunningServer) -> float:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def started(data_dir: Path) -> tuple[RunningServer, float]:
    """A server on `data_dir`, and the seconds from spawn to a ready answer."""
    began = time.monotonic()
    server = RunningServer(data_dir).start()  # returns once /-/health answers
    while httpx.get(f"{server.endpoint}/-/ready").status_code != 200:
        time.sleep(0.01)
    return server, time.monotonic() - began


def test_the_loader_writes_what_a_server_writes(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "served").start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket=BUCKET)
        for n in range(3):
            s3.put_object(Bucket=BUCKET, Key=f"g{n:04d}/00000000.bin", Body=BODY)
        served = written(server)
    finally:
        server.stop()
    asyncio.run(load(tmp_path / "loaded", 3, 1000))
    loaded_server = RunningServer(tmp_path / "loaded").start()
    try:
        loaded = written(loaded_server)
        listed = loaded_server.client().list_objects_v2(Bucket=BUCKET)["Contents"]
    finally:
        loaded_server.stop()
    assert [e["key"] for e in loaded] == [e["key"] for e in served]
    for by_server, by_loader in zip(served, loaded, strict=True):
        assert by_server["data"].keys() == by_loader["data"].keys()
        for name, value in by_server["data"].items():
            if name not in PER_REQUEST:
                assert by_loader["data"][name] == value, name
    assert [o["Size"] for o in listed] == [len(BODY)] * 3


@pytest.mark.slow
def test_start_up_and_memory_stay_flat_from_10k_to_100k_versions(tmp_path: Path) -> None:
    figures = {}
    for versions in (10_000, 100_000):
        data_dir = tmp_path / f"v{versions}" / "data"
        asyncio.run(load(data_dir, versions, 1000))
        server, ready = started(data_dir)
        try:
            after_start = rss_mib(server)
            s3 = server.client()
            listed = sum(
                page.get("KeyCount", 0)
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            )
            assert listed == versions
            figures[versions] = (ready, after_start, rss_mib(server))
        finally:
            server.stop()
    (ready_10k, start_10k, listed_10k), (ready_100k, start_100k, listed_100k) = figures.values()
    # Ten times the versions: start-up and memory must not follow (replaying 100k versions
    # into memory took 4x the time and 3x the memory of 10k before the views persisted).
    assert ready_100k < 2 * ready_10k + 1.0, figures
    assert start_100k < start_10k + 40, figures
    assert listed_100k < listed_10k + 60, figures
