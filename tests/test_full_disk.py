"""Finding 8 of the trust issue: a full disk can still be emptied through the API.

The data dir lives on a small tmpfs (mounted by the test; CI runs as root). Writes are
refused with a retryable 503 before the log's reserve is touched; when another process
fills the disk to the last byte, DeleteObject and gc still work, and writes resume once
space is free again. Nothing acknowledged is lost or damaged on the way.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from s3facade.admin_client import AdminClient
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer

MiB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def body(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest() * (MiB // 32)


def fill(path: Path) -> None:
    """What another process does: write until the disk has no byte left."""
    with path.open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


def error_of(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as refused:
        call()
    return dict(refused.value.response)


def test_a_full_disk_refuses_writes_but_deletes_and_gc_work(small_disk: Path) -> None:
    config = small_disk / "s3facade.toml"
    config.write_text(
        "[server]\nspace_reserve_mib = 8\ngc_interval_seconds = 0\nscrub_interval_seconds = 0\n"
    )
    server = RunningServer(small_disk / "data", extra_args=["--config", str(config)]).start()
    admin = AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))
    try:
        s3 = server.client(retries={"max_attempts": 1})
        s3.create_bucket(Bucket="full")
        stored: dict[str, bytes] = {}
        for n in range(100):  # 48 MiB: refused long before
            key = f"obj-{n}"
            try:
                s3.put_object(Bucket="full", Key=key, Body=body(n))
            except ClientError as error:
                refused = error.response
                break
            stored[key] = body(n)
        else:
            pytest.fail("a 48 MiB disk took 100 MiB")
        assert refused["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert refused["Error"]["Code"] == "ServiceUnavailable"
        assert "full" in refused["Error"]["Message"]
        assert 20 < len(stored) < 40
        assert error_of(lambda: s3.head_object(Bucket="full", Key=key))["Error"]["Code"] == "404"

        # boto3 with its default settings treats the refusal as retryable.
        retried = error_of(
            lambda: server.client().put_object(Bucket="full", Key="retried", Body=body(999))
        )
        assert retried["ResponseMetadata"]["RetryAttempts"] > 0

        fill(small_disk / "filler")  # another process takes every last byte
        deleted = sorted(stored)[:5]
        for key in deleted:
            status = s3.delete_object(Bucket="full", Key=key)["ResponseMetadata"]["HTTPStatusCode"]
            assert status == 204
            del stored[key]
        ready = admin.json("GET", "/-/ready")
        assert ready["status"] == "degraded"
        assert ready["space"]["reserve_held"] is False
        report = admin.json("POST", "/-/admin/gc")
        assert report["collected_count"] == 5 and report["problems"] == []
        assert (
            error_of(lambda: s3.put_object(Bucket="full", Key="x", Body=b"x"))["Error"]["Code"]
            == "ServiceUnavailable"
        )

        (small_disk / "filler").unlink()  # space is back: so are writes, within seconds
        deadline = time.monotonic() + 20
        while True:
            try:
                s3.put_object(Bucket="full", Key="after", Body=b"back")
                break
            except ClientError:
                assert time.monotonic() < deadline, "writes did not resume"
                time.sleep(0.5)
        assert admin.json("GET", "/-/ready")["space"]["reserve_held"] is True

        for key, data in stored.items():
            assert s3.get_object(Bucket="full", Key=key)["Body"].read() == data
        listed = {o["Key"] for o in s3.list_objects_v2(Bucket="full")["Contents"]}
        assert listed == {*stored, "after"}
        verify = admin.json("POST", "/-/admin/verify")
        assert verify["ok"] is True, json.dumps(verify["findings"])
    finally:
        server.stop()
