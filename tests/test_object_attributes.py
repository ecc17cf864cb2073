"""GetObjectAttributes through boto3, and a part number uploaded twice at once."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import RunningServer
from tests.rawhttp import send

ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
MiB = 1024 * 1024


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_a_single_part_object(s3: Any, bucket: str) -> None:
    body = b"attributes of one part"
    s3.put_object(Bucket=bucket, Key="one", Body=body, ChecksumAlgorithm="SHA256")
    got = s3.get_object_attributes(Bucket=bucket, Key="one", ObjectAttributes=ALL)
    assert got["ETag"] == hashlib.md5(body).hexdigest()  # unquoted, as AWS sends it here
    assert got["Checksum"] == {"ChecksumSHA256": sha256_b64(body), "ChecksumType": "FULL_OBJECT"}
    assert "ObjectParts" not in got
    assert got["StorageClass"] == "STANDARD" and got["ObjectSize"] == len(body)
    assert "LastModified" in got
    only = s3.get_object_attributes(Bucket=bucket, Key="one", ObjectAttributes=["ObjectSize"])
    assert only["ObjectSize"] == len(body) and "ETag" not in only and "Checksum" not in only


def test_a_multipart_object_lists_its_parts_page_by_page(s3: Any, bucket: str) -> None:
    parts = [b"a" * (5 * MiB), b"b" * (5 * MiB), b"tail"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")
    sent = []
    for number, part in enumerate(parts, start=1):
        reply = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=number, Body=part,
            ChecksumAlgorithm="SHA256",
        )  # fmt: skip
        assert reply["ChecksumSHA256"] == sha256_b64(part)
        sent.append(
            {"PartNumber": number, "ETag": reply["ETag"], "ChecksumSHA256": sha256_b64(part)}
        )
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload={"Parts": sent}
    )
    got = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=ALL)
    assert got["ObjectSize"] == sum(map(len, parts))
    assert got["ETag"].endswith("-3")
    assert got["Checksum"]["ChecksumType"] == "COMPOSITE"
    listed = got["ObjectParts"]
    assert listed["TotalPartsCount"] == 3 and listed["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in listed["Parts"]] == [
        (n, len(part), sha256_b64(part)) for n, part in enumerate(parts, start=1)
    ]
    first = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=2
    )["ObjectParts"]
    assert [p["PartNumber"] for p in first["Parts"]] == [1, 2]
    assert first["IsTruncated"] is True and first["NextPartNumberMarker"] == 2
    rest = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], PartNumberMarker=2
    )["ObjectParts"]
    assert [p["PartNumber"] for p in rest["Parts"]] == [3] and rest["IsTruncated"] is False


def test_versions_and_delete_markers(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=bucket, Key="v", Body=b"old")["VersionId"]
    s3.put_object(Bucket=bucket, Key="v", Body=b"newer")
    got = s3.get_object_attributes(
        Bucket=bucket, Key="v", VersionId=old, ObjectAttributes=["ObjectSize"]
    )
    assert got["ObjectSize"] == 3 and got["VersionId"] == old
    s3.delete_object(Bucket=bucket, Key="v")
    with pytest.raises(ClientError) as raised:
        s3.get_object_attributes(Bucket=bucket, Key="v", ObjectAttributes=["ObjectSize"])
    assert raised.value.response["Error"]["Code"] == "NoSuchKey"
    assert raised.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"


@pytest.mark.parametrize("header", [None, "ETag,Colour", ""])
def test_the_attributes_must_be_named(server: RunningServer, s3: Any, bucket: str,
                                      header: str | None) -> None:  # fmt: skip
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    headers = {} if header is None else {"x-amz-object-attributes": header}
    reply = send(server.port, "GET", f"/{bucket}/k", "attributes", headers)
    assert (reply.status, reply.code) == (400, "InvalidArgument"), reply.body


@pytest.fixture
def slow_and_fast_parts(s3: Any, bucket: str) -> Iterator[tuple[str, bytes, bytes]]:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="race")["UploadId"]
    yield upload, b"s" * (5 * MiB), b"f" * (5 * MiB)


def test_a_part_uploaded_twice_at_once_is_the_one_that_finished_last(
    s3: Any, bucket: str, slow_and_fast_parts: tuple[str, bytes, bytes]
) -> None:
    upload, slow, fast = slow_and_fast_parts
    params = {"Bucket": bucket, "Key": "race", "UploadId": upload, "PartNumber": 1}
    url = s3.generate_presigned_url("upload_part", Params=params)
    started, finished = threading.Event(), []

    def trickle() -> Iterator[bytes]:
        for offset in range(0, len(slow), MiB):
            yield slow[offset : offset + MiB]
            started.set()
            time.sleep(0.2)

    def slow_upload() -> None:
        reply = httpx.put(url, content=trickle(), headers={"Content-Length": str(len(slow))})
        finished.append(reply)

    slow_thread = threading.Thread(target=slow_upload)
    slow_thread.start()
    assert started.wait(10)
    fast_etag = s3.upload_part(Body=fast, **params)["ETag"]  # starts later, ends first
    slow_thread.join(30)
    assert finished and finished[0].status_code == 200, finished
    slow_etag = finished[0].headers["ETag"]
    assert slow_etag == f'"{hashlib.md5(slow).hexdigest()}"' != fast_etag
    listed = s3.list_parts(Bucket=bucket, Key="race", UploadId=upload)["Parts"]
    assert [p["ETag"] for p in listed] == [slow_etag]
    with pytest.raises(ClientError) as raised:  # the earlier finisher is gone
        s3.complete_multipart_upload(
            Bucket=bucket, Key="race", UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": fast_etag}]},
        )  # fmt: skip
    assert raised.value.response["Error"]["Code"] == "InvalidPart"
    s3.complete_multipart_upload(
        Bucket=bucket, Key="race", UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": slow_etag}]},
    )  # fmt: skip
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == slow
