"""If-Match and If-None-Match with an ETag on PutObject and CompleteMultipartUpload, through
boto3 at its defaults; atomic against concurrent writers of the same key."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError


def code_of(call: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def body_of(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_put_if_match(s3: Any, bucket: str) -> None:
    assert code_of(s3.put_object, Bucket=bucket, Key="k", Body=b"x", IfMatch='"abc"') == (
        404,
        "NoSuchKey",
    )
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["ETag"]
    assert code_of(s3.put_object, Bucket=bucket, Key="k", Body=b"two", IfMatch='"0ff1ce"') == (
        412,
        "PreconditionFailed",
    )
    assert body_of(s3, bucket, "k") == b"one"
    s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch=first)
    assert body_of(s3, bucket, "k") == b"two"


def test_put_if_none_match_with_an_etag(s3: Any, bucket: str) -> None:
    current = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["ETag"]
    assert code_of(s3.put_object, Bucket=bucket, Key="k", Body=b"two", IfNoneMatch=current) == (
        412,
        "PreconditionFailed",
    )
    assert body_of(s3, bucket, "k") == b"one"
    s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch='"0ff1ce"')
    assert body_of(s3, bucket, "k") == b"two"
    s3.put_object(Bucket=bucket, Key="new", Body=b"x", IfNoneMatch=current)  # nothing there


def test_complete_multipart_upload_conditions(s3: Any, bucket: str) -> None:
    current = s3.put_object(Bucket=bucket, Key="m", Body=b"old")["ETag"]

    def complete(**condition: str) -> Any:
        upload = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
        part = s3.upload_part(Bucket=bucket, Key="m", UploadId=upload, PartNumber=1, Body=b"new")
        return s3.complete_multipart_upload(
            Bucket=bucket, Key="m", UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}, **condition,
        )  # fmt: skip

    for condition in ({"IfMatch": '"0ff1ce"'}, {"IfNoneMatch": current}, {"IfNoneMatch": "*"}):
        assert code_of(complete, **condition) == (412, "PreconditionFailed"), condition
    assert body_of(s3, bucket, "m") == b"old"
    complete(IfMatch=current)
    assert body_of(s3, bucket, "m") == b"new"


def test_concurrent_conditional_writers_one_wins(s3: Any, bucket: str) -> None:
    base = s3.put_object(Bucket=bucket, Key="race", Body=b"base")["ETag"]
    bodies = [bytes([n]) * (512 * 1024) for n in range(8)]
    outcomes: list[tuple[int, object]] = []
    start = threading.Barrier(len(bodies))

    def writer(n: int) -> None:
        start.wait()
        try:
            s3.put_object(Bucket=bucket, Key="race", Body=bodies[n], IfMatch=base)
            outcomes.append((n, 200))
        except ClientError as exc:
            outcomes.append((n, exc.response["ResponseMetadata"]["HTTPStatusCode"]))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, status in outcomes if status == 200]
    assert len(winners) == 1, outcomes
    assert {status for _, status in outcomes} <= {200, 409, 412}
    stored = body_of(s3, bucket, "race")
    assert hashlib.sha256(stored).digest() == hashlib.sha256(bodies[winners[0]]).digest()
    versions = s3.list_object_versions(Bucket=bucket, Prefix="race").get("Versions", [])
    assert len(versions) == 1  # unversioned bucket: the one winner replaced the base
