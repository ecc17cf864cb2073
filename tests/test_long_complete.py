"""A completion slower than the server's patience: 200 at once, whitespace while the
parts are joined, then the result or an error in the body, as AWS does.

Runs uvicorn in this process (real sockets) so the patience can be set to zero."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from botocore.exceptions import ClientError

from s3facade.config import load_config
from s3facade.handlers import multipart
from s3facade.workspace import open_registry
from tests.conftest import ACCESS_KEY, SECRET_KEY, free_port, s3_client

MiB = 1024 * 1024


@pytest.fixture
def impatient_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(multipart, "COMPLETE_PATIENCE_SECONDS", 0.0)
    monkeypatch.setattr(multipart, "KEEPALIVE_SECONDS", 0.01)
    env = {"S3FACADE_ACCESS_KEY_ID": ACCESS_KEY, "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY}
    port = free_port()
    config = load_config(None, {"port": port, "data_dir": tmp_path / "data"}, env=env)
    from s3facade.app import build_app

    app = build_app(config, open_registry(config))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def upload(s3: Any, key: str, **create: Any) -> tuple[str, list[dict[str, Any]], bytes]:
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    upload_id = s3.create_multipart_upload(Bucket="slow", Key=key, **create)["UploadId"]
    done = []
    for number, body in enumerate(parts, start=1):
        part = s3.upload_part(
            Bucket="slow",
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="CRC32",
        )
        done.append(
            {"PartNumber": number, "ETag": part["ETag"], "ChecksumCRC32": part["ChecksumCRC32"]}
        )
    return upload_id, done, b"".join(parts)


def test_streamed_completion_result(impatient_server: str) -> None:
    s3 = s3_client(impatient_server)
    s3.create_bucket(Bucket="slow")
    upload_id, done, whole = upload(s3, "ok.bin", ChecksumAlgorithm="CRC32")
    result = s3.complete_multipart_upload(
        Bucket="slow", Key="ok.bin", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert result["ETag"].endswith('-3"')
    assert s3.get_object(Bucket="slow", Key="ok.bin")["Body"].read() == whole


def test_streamed_completion_error_is_an_error(impatient_server: str) -> None:
    s3 = s3_client(impatient_server)
    s3.create_bucket(Bucket="slow")
    upload_id, done, whole = upload(
        s3, "bad.bin", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )
    wrong = base64.b64encode((zlib.crc32(whole) ^ 1).to_bytes(4, "big")).decode()
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket="slow",
            Key="bad.bin",
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
            ChecksumCRC32=wrong,
            ChecksumType="FULL_OBJECT",
        )
    assert raised.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket="slow", Key="bad.bin")
