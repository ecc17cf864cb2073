"""The server with its bytes on an upstream store: the quick-start flags, placement by
bucket pattern, the backend recorded in each write event, `/-/ready`, and the upstream
(moto, then a real Ceph RGW) stopping in the middle of an upload and coming back."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from botocore.exceptions import ClientError

from s3facade.admin_client import AdminClient, AdminError
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer
from tests.upstream_services import (
    FaultProxy,
    MotoServer,
    RgwCluster,
    Upstream,
    config_file,
)

MiB = 1 << 20


def written_events(data_dir: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(bucket, key, data) of every object write in the log of a stopped server."""
    with duckdb.connect(str(data_dir / "registry.duckdb"), read_only=True) as db:
        rows = db.execute(
            "SELECT bucket, key, data FROM events WHERE type IN "
            "('ObjectWritten', 'MultipartUploadCompleted', 'ObjectImported') ORDER BY seq"
        ).fetchall()
    return [(bucket, key, json.loads(data)) for bucket, key, data in rows]


def local_blobs(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "blobs" / "sha256").rglob("*") if p.is_file())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def prefix() -> str:
    return f"srv-{uuid.uuid4().hex[:8]}/"


def test_quick_start_flags_keep_every_bucket_upstream_once(
    moto_upstream: Upstream, tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3FACADE_UPSTREAM_ACCESS_KEY_ID", moto_upstream.access_key)
    monkeypatch.setenv("S3FACADE_UPSTREAM_SECRET_ACCESS_KEY", moto_upstream.secret_key)
    flags = ["--upstream-endpoint", moto_upstream.endpoint, "--upstream-bucket"]
    flags += [moto_upstream.bucket, "--upstream-prefix", prefix]
    server = RunningServer(tmp_path / "data", extra_args=flags).start()
    try:
        s3 = server.client()
        shared, other = os.urandom(9 * MiB), b"small and different"
        for bucket in ("alpha", "beta"):
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="same.bin", Body=shared)
        s3.put_object(Bucket="beta", Key="other.txt", Body=other)
        assert s3.get_object(Bucket="alpha", Key="same.bin")["Body"].read() == shared
        ranged = s3.get_object(Bucket="beta", Key="same.bin", Range="bytes=100-199")
        assert ranged["Body"].read() == shared[100:200]
        stored = moto_upstream.keys(prefix)
        assert [k.rsplit("/", 1)[1] for k in stored] == sorted([sha(shared), sha(other)])
        assert all(k.startswith(f"{prefix}sha256/") for k in stored)  # no staging left over
        assert local_blobs(server.data_dir) == []
        ready = AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY)).json(
            "GET", "/-/ready"
        )
        assert ready["backends"]["upstream"]["healthy"] is True
        assert ready["backends"]["upstream"]["bucket"] == moto_upstream.bucket
        assert ready["backends"]["local"]["healthy"] is True
    finally:
        server.stop()
    backends = {(b, k): d["backend_id"] for b, k, d in written_events(server.data_dir)}
    assert set(backends.values()) == {"upstream"}


def test_placement_by_bucket_pattern_is_recorded_in_each_event(
    moto_upstream: Upstream, tmp_path: Path, prefix: str
) -> None:
    path = config_file(
        tmp_path / "s3facade.toml",
        {"ceph": moto_upstream.table(prefix=prefix)},
        {"default": "local", "buckets": {"ml-scratch-*": "local", "ml-*": "ceph"}},
    )
    server = RunningServer(tmp_path / "data", extra_args=["--config", str(path)]).start()
    bodies = {"ml-models": b"weights", "ml-scratch-1": b"scratch", "docs": b"readme"}
    try:
        s3 = server.client()
        for bucket, body in bodies.items():
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="k", Body=body)
        s3.copy_object(Bucket="ml-models", Key="copied", CopySource={"Bucket": "docs", "Key": "k"})
        assert s3.get_object(Bucket="ml-models", Key="copied")["Body"].read() == b"readme"
    finally:
        server.stop()
    upstream = [k.rsplit("/", 1)[1] for k in moto_upstream.keys(prefix)]
    assert upstream == sorted([sha(b"weights"), sha(b"readme")])
    assert local_blobs(server.data_dir) == sorted([sha(b"scratch"), sha(b"readme")])
    recorded = {(b, k): d["backend_id"] for b, k, d in written_events(server.data_dir)}
    assert recorded == {
        ("ml-models", "k"): "ceph",
        ("ml-scratch-1", "k"): "local",
        ("docs", "k"): "local",
        ("ml-models", "copied"): "ceph",  # the copy streamed across to its bucket's backend
    }


def test_an_unreachable_upstream_is_reported_and_retryable(
    moto_upstream: Upstream, tmp_path: Path, prefix: str
) -> None:
    proxy = FaultProxy(int(moto_upstream.endpoint.rsplit(":", 1)[1]))
    table = moto_upstream.table(
        prefix=prefix, endpoint=proxy.endpoint, timeout_seconds=2, retry_deadline_seconds=1
    )
    path = config_file(tmp_path / "s3facade.toml", {"ceph": table}, {"default": "ceph"})
    server = RunningServer(tmp_path / "data", extra_args=["--config", str(path)]).start()
    try:
        assert httpx.get(f"{server.endpoint}/-/ready").status_code == 200
        s3 = server.client(retries={"max_attempts": 1})
        s3.create_bucket(Bucket="stored")
        s3.put_object(Bucket="stored", Key="k", Body=b"kept upstream")
        proxy.refuse()
        with pytest.raises(ClientError) as refused:
            s3.put_object(Bucket="stored", Key="new", Body=b"x")
        assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        with pytest.raises(ClientError) as refused:  # a read: retryable too
            s3.get_object(Bucket="stored", Key="k")
        assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        down = httpx.get(f"{server.endpoint}/-/ready", timeout=30)
        assert down.status_code == 503
        assert down.json() == {"status": "unavailable"}
        admin = AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))
        with pytest.raises(AdminError) as details:  # 503 for admins too, with the details
            admin.json("GET", "/-/ready")
        backends = json.loads(details.value.body)["backends"]
        assert backends["ceph"]["healthy"] is False
        assert "error" in backends["ceph"]
        assert backends["local"]["healthy"] is True
        proxy.accept()
        proxy.clear()
        assert httpx.get(f"{server.endpoint}/-/ready").status_code == 200
        assert s3.get_object(Bucket="stored", Key="k")["Body"].read() == b"kept upstream"
    finally:
        server.stop()
        proxy.close()


def _upload_while_stopping(
    server: RunningServer, bucket: str, key: str, data: bytes, stop: Callable[[], None]
) -> httpx.Response:
    """PUT `data` as one stream; `stop()` the upstream once a third of it went out."""
    url = server.client().generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600
    )

    def body() -> Iterator[bytes]:
        step = 256 * 1024
        for start in range(0, len(data), step):
            if start == (len(data) // 3) // step * step:
                stop()
            yield data[start : start + step]

    return httpx.put(url, content=body(), headers={"content-length": str(len(data))}, timeout=120)


def _check_failed_then_retried(
    server: RunningServer,
    failed: httpx.Response,
    bucket: str,
    data: bytes,
    restart: Callable[[], None],
    listed: list[str],
) -> None:
    """The failed upload left nothing visible; after `restart()` the client's retry works."""
    assert failed.status_code == 503, failed.text  # retryable; the S3 SDKs retry it
    assert "<Code>ServiceUnavailable</Code>" in failed.text
    s3 = server.client(retries={"max_attempts": 1})
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="big.bin")
    assert missing.value.response["Error"]["Code"] in ("404", "NoSuchKey")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == listed
    restart()
    s3.put_object(Bucket=bucket, Key="big.bin", Body=data)  # the client's retry, after recovery
    got = s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert sha(got) == sha(data)


def test_moto_stopping_mid_upload_then_restarting(tmp_path: Path, prefix: str) -> None:
    moto = MotoServer(log_path=tmp_path / "moto.log").start()
    table = moto.upstream.table(prefix=prefix, retry_deadline_seconds=2, timeout_seconds=3)
    path = config_file(tmp_path / "s3facade.toml", {"moto": table}, {"default": "moto"})
    server = RunningServer(tmp_path / "data", extra_args=["--config", str(path)]).start()
    data = os.urandom(40 * MiB)
    try:
        server.client().create_bucket(Bucket="fragile")
        failed = _upload_while_stopping(server, "fragile", "big.bin", data, moto.stop)
        _check_failed_then_retried(server, failed, "fragile", data, moto.start, [])
    finally:
        server.stop()
        moto.stop()
    events = [(b, k) for b, k, _ in written_events(server.data_dir)]
    assert events == [("fragile", "big.bin")]  # the failed attempt committed nothing


def test_rgw_stopping_mid_upload_then_restarting(
    rgw_cluster: RgwCluster, tmp_path: Path, prefix: str
) -> None:
    assert rgw_cluster.upstream is not None
    table = rgw_cluster.upstream.table(prefix=prefix, retry_deadline_seconds=2, timeout_seconds=3)
    path = config_file(tmp_path / "s3facade.toml", {"rgw": table}, {"default": "rgw"})
    server = RunningServer(tmp_path / "data", extra_args=["--config", str(path)]).start()
    data, earlier = os.urandom(40 * MiB), os.urandom(6 * MiB)
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="fragile")
        s3.put_object(Bucket="fragile", Key="earlier.bin", Body=earlier)
        failed = _upload_while_stopping(
            server, "fragile", "big.bin", data, rgw_cluster.kill_gateway
        )
        try:
            restart = rgw_cluster.start_gateway
            _check_failed_then_retried(server, failed, "fragile", data, restart, ["earlier.bin"])
        finally:
            if not Path(f"/proc/{rgw_cluster.gateway_pid()}").exists():
                rgw_cluster.start_gateway()  # leave the shared cluster running for others
        assert s3.get_object(Bucket="fragile", Key="earlier.bin")["Body"].read() == earlier
    finally:
        server.stop()
    events = [(b, k) for b, k, _ in written_events(server.data_dir)]
    assert events == [("fragile", "earlier.bin"), ("fragile", "big.bin")]
