"""Reads verify what they send: damaged, missing or replaced blobs never come back as a
complete 200, are recorded once, and show in /-/ready and /-/metrics.

A real server on a loopback port, boto3 with its checksum validation off (so a failure can
only come from the server) and bare sockets; the blobs are damaged on disk under it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, IncompleteReadError, ResponseStreamingError
from lxml import etree

from tests.conftest import RunningServer
from tests.integrity_helpers import (
    MiB,
    blob_path,
    damage_events,
    damage_metric,
    flip_byte,
    raw_get,
    ready,
    server_lines,
    server_log,
    sha,
)
from tests.upstream_services import Upstream, config_file

BUCKET = "integrity"
BROKEN_STREAM = (ResponseStreamingError, IncompleteReadError, ConnectionError)
DAMAGED_MESSAGE = "The stored bytes of this object are missing or damaged."


@pytest.fixture(scope="module")
def damaged_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = RunningServer(tmp_path_factory.mktemp("integrity") / "data").start()
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def client(server: RunningServer) -> Any:
    """boto3 without response checksum validation (else boto3 itself would notice the
    damage) and without retries (each GET here is one request)."""
    return server.client(
        response_checksum_validation="when_required",
        retries={"mode": "standard", "total_max_attempts": 1},
    )


def put(server: RunningServer, key: str, data: bytes) -> None:
    client(server).put_object(Bucket=BUCKET, Key=key, Body=data)


def assert_internal_error(server: RunningServer, key: str) -> None:
    with pytest.raises(ClientError) as raised:
        client(server).get_object(Bucket=BUCKET, Key=key)
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert (error["Error"]["Code"], error["Error"]["Message"]) == ("InternalError", DAMAGED_MESSAGE)


def assert_recorded_once(server: RunningServer, data: bytes, key: str, found: str) -> None:
    [event] = damage_events(server, sha(data))
    assert event["found"] == found
    assert (event["bucket"], event["key"], event["version_id"]) == (BUCKET, key, "null")
    assert (event["detected_by"], event["backend_id"]) == ("read", "local")
    assert event["principal"] == "s3facade:integrity"
    body = ready(server)
    assert body["status"] == "degraded"
    assert body["damage"]["recent"][0]["sha256"] == sha(data)


def test_small_damaged_object_is_refused_before_any_byte_and_recorded_once(
    damaged_server: RunningServer,
) -> None:
    """One block: verified before the headers go out, so the client gets an S3 error."""
    server = damaged_server
    data, intact = os.urandom(1000), os.urandom(1000)
    put(server, "small", data)
    put(server, "small-intact", intact)
    before = damage_metric(server, "read")
    flip_byte(blob_path(server, data), 500)

    for _ in range(3):
        assert_internal_error(server, "small")
    status, _, body = raw_get(server, BUCKET, "small")
    assert status == 500
    assert etree.fromstring(body).findtext("Code") == "InternalError"
    assert_recorded_once(
        server, data, "small", sha(data[:500] + bytes([data[500] ^ 1]) + data[501:])
    )
    assert damage_metric(server, "read") == before + 1
    lines = server_lines(server, sha(data))
    assert len(lines) == 4 and all("s3://integrity/small" in line for line in lines)
    assert "Traceback" not in server_log(server)

    s3 = client(server)
    ranged = s3.get_object(Bucket=BUCKET, Key="small", Range="bytes=0-99")  # not verifiable
    assert ranged["Body"].read() == data[:100]
    assert s3.get_object(Bucket=BUCKET, Key="small-intact")["Body"].read() == intact


@pytest.mark.parametrize("where", ["middle", "last block"])
def test_large_damaged_object_is_cut_off_and_recorded_once(
    damaged_server: RunningServer, where: str
) -> None:
    """Several blocks: all but the held-back last one go out, then the connection closes."""
    server = damaged_server
    data = os.urandom(5 * MiB + 4321)
    key = f"large-{where.replace(' ', '-')}"
    put(server, key, data)
    offset = len(data) // 2 if where == "middle" else len(data) - 10
    flip_byte(blob_path(server, data), offset)
    before = damage_metric(server, "read")

    s3 = client(server)
    for _ in range(3):
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        with pytest.raises(BROKEN_STREAM):
            body.read()
    status, declared, received = raw_get(server, BUCKET, key)
    assert (status, declared) == (200, len(data))
    damaged = bytearray(data)
    damaged[offset] ^= 1
    # What is stored, up to the last block (held back until the digest was checked; damage
    # in an earlier block has gone out by the time it can be known).
    assert received == damaged[: 5 * MiB]

    assert_recorded_once(server, data, key, sha(bytes(damaged)))
    assert damage_metric(server, "read") == before + 1
    lines = server_lines(server, sha(data))
    assert len(lines) == 4 and all("response cut off" in line for line in lines)
    assert "Traceback" not in server_log(server)

    ranged = s3.get_object(Bucket=BUCKET, Key=key, Range=f"bytes={MiB}-{2 * MiB - 1}")
    assert ranged["Body"].read() == data[MiB : 2 * MiB]
    whole_range = s3.get_object(Bucket=BUCKET, Key=key, Range=f"bytes=0-{len(data) - 1}")
    with pytest.raises(BROKEN_STREAM):  # a range covering the whole blob is verified too
        whole_range["Body"].read()

    intact = os.urandom(3 * MiB + 17)
    put(server, f"{key}-intact", intact)
    assert s3.get_object(Bucket=BUCKET, Key=f"{key}-intact")["Body"].read() == intact
    part = s3.get_object(Bucket=BUCKET, Key=f"{key}-intact", PartNumber=1)  # stored whole
    assert part["Body"].read() == intact
    assert damage_events(server, sha(intact)) == []


def test_missing_blob_is_an_internal_error_recorded_once(damaged_server: RunningServer) -> None:
    server = damaged_server
    data = os.urandom(3000)
    put(server, "missing", data)
    blob_path(server, data).unlink()

    assert_internal_error(server, "missing")
    status, _, body = raw_get(server, BUCKET, "missing")
    assert status == 500 and etree.fromstring(body).findtext("Message") == DAMAGED_MESSAGE
    assert_recorded_once(server, data, "missing", "missing")
    [line, _] = server_lines(server, sha(data))
    assert "s3://integrity/missing version null" in line and "missing" in line
    assert "Traceback" not in server_log(server)


@pytest.mark.parametrize("target", ["same bytes", "/etc/passwd"])
def test_symlink_at_a_blob_path_is_damage_not_unavailable(
    damaged_server: RunningServer, tmp_path: Path, target: str
) -> None:
    server = damaged_server
    data = os.urandom(2000)
    key = f"symlink-{'same' if target == 'same bytes' else 'passwd'}"
    put(server, key, data)
    path = blob_path(server, data)
    if target == "same bytes":
        pointee = tmp_path / "copy"
        shutil.copyfile(path, pointee)  # if followed, the read would succeed
    else:
        pointee = Path(target)
    path.unlink()
    path.symlink_to(pointee)

    assert_internal_error(server, key)  # 500, not 503 "reduce your request rate"
    status, _, body = raw_get(server, BUCKET, key)
    assert status == 500 and b"root:" not in body
    assert_recorded_once(server, data, key, "not a regular file: symlink")


def test_symlinked_shard_directory_is_damage(damaged_server: RunningServer) -> None:
    server = damaged_server
    while True:  # content alone in its shard, so no other test's blob is affected
        data = os.urandom(1500)
        if not blob_path(server, data).parent.exists():
            break
    put(server, "shard", data)
    shard = blob_path(server, data).parent
    moved = shard.with_name(shard.name + ".moved")
    shard.rename(moved)
    shard.symlink_to(moved, target_is_directory=True)

    assert_internal_error(server, "shard")
    [event] = damage_events(server, sha(data))
    assert event["found"] == f"shard {sha(data)[2:4]} is a symlink or not a directory"


def test_damage_found_through_the_upstream_backend(tmp_path: Path, moto_upstream: Upstream) -> None:
    prefix = f"integrity-{os.urandom(4).hex()}/"
    config = config_file(
        tmp_path / "s3facade.toml",
        {"moto": moto_upstream.table(prefix=prefix)},
        {"default": "moto"},
    )
    server = RunningServer(tmp_path / "data", extra_args=["--config", str(config)]).start()
    try:
        small, large, intact = os.urandom(700), os.urandom(3 * MiB + 5), os.urandom(900)
        s3 = client(server)
        s3.create_bucket(Bucket=BUCKET)
        for key, data in (("small", small), ("large", large), ("intact", intact)):
            s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        direct = moto_upstream.client()
        for data in (small, large):  # the upstream now holds other bytes under the digest
            digest = sha(data)
            upstream_key = f"{prefix}sha256/{digest[:2]}/{digest[2:4]}/{digest}"
            direct.put_object(
                Bucket=moto_upstream.bucket, Key=upstream_key, Body=os.urandom(len(data))
            )

        assert_internal_error(server, "small")
        for _ in range(2):
            with pytest.raises(BROKEN_STREAM):
                s3.get_object(Bucket=BUCKET, Key="large")["Body"].read()
        assert s3.get_object(Bucket=BUCKET, Key="intact")["Body"].read() == intact
        for data in (small, large):
            [event] = damage_events(server, sha(data))
            assert (event["backend_id"], event["detected_by"]) == ("moto", "read")
            assert len(event["found"]) == 64 and event["found"] != sha(data)
        assert ready(server)["damage"]["count"] == 2
        assert "Traceback" not in server_log(server)
    finally:
        server.stop()
