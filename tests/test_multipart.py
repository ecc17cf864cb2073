"""Multipart uploads and copies through boto3 at its default settings."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import RunningServer

MiB = 1024 * 1024


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def upload_parts(
    s3: Any, bucket: str, key: str, parts: list[bytes], **create: Any
) -> tuple[str, list[dict[str, Any]]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    done = []
    for number, body in enumerate(parts, start=1):
        extra = (
            {"ChecksumAlgorithm": create["ChecksumAlgorithm"]}
            if "ChecksumAlgorithm" in create
            else {}
        )
        part = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body, **extra
        )
        entry = {"PartNumber": number, "ETag": part["ETag"]}
        entry |= {k: v for k, v in part.items() if k.startswith("Checksum") and k != "ChecksumType"}
        done.append(entry)
    return upload_id, done


def multipart_etag(parts: list[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def test_complete_gives_md5_of_md5s_etag_and_whole_content(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    upload_id, done = upload_parts(
        s3,
        bucket,
        "mp.bin",
        parts,
        ContentType="application/x-tar",
        Metadata={"commit": "deadbeef"},
    )
    for part, entry in zip(parts, done, strict=True):
        assert entry["ETag"] == f'"{hashlib.md5(part).hexdigest()}"'
    result = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp.bin", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    assert result["ETag"] == multipart_etag(parts)
    got = s3.get_object(Bucket=bucket, Key="mp.bin")
    assert got["Body"].read() == b"".join(parts)
    assert got["ContentType"] == "application/x-tar"
    assert got["Metadata"] == {"commit": "deadbeef"}
    second = s3.get_object(Bucket=bucket, Key="mp.bin", PartNumber=2)
    assert second["PartsCount"] == 3
    assert second["Body"].read() == parts[1]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_composite_crc32_checksum(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), b"end"]
    upload_id, done = upload_parts(s3, bucket, "c", parts, ChecksumAlgorithm="CRC32")
    result = s3.complete_multipart_upload(
        Bucket=bucket, Key="c", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    raw = b"".join(zlib.crc32(p).to_bytes(4, "big") for p in parts)
    expected = base64.b64encode(zlib.crc32(raw).to_bytes(4, "big")).decode() + "-2"
    assert result["ChecksumCRC32"] == expected
    head = s3.head_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == expected
    assert head["ChecksumType"] == "COMPOSITE"


def test_full_object_crc32_checksum(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MiB), b"end"]
    upload_id, done = upload_parts(
        s3, bucket, "f", parts, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )
    result = s3.complete_multipart_upload(
        Bucket=bucket, Key="f", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    whole = base64.b64encode(zlib.crc32(b"".join(parts)).to_bytes(4, "big")).decode()
    assert result["ChecksumCRC32"] == whole
    assert (
        s3.head_object(Bucket=bucket, Key="f", ChecksumMode="ENABLED")["ChecksumType"]
        == "FULL_OBJECT"
    )


def test_completion_refusals(s3: Any, bucket: str) -> None:
    small = [b"a" * 100, b"b" * 100]
    upload_id, done = upload_parts(s3, bucket, "r", small)
    cases = [
        ([*done], "EntityTooSmall"),
        ([done[1], done[0]], "InvalidPartOrder"),
        ([{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}], "InvalidPart"),
        ([{"PartNumber": 7, "ETag": done[0]["ETag"]}], "InvalidPart"),
    ]
    for parts, code in cases:
        with pytest.raises(ClientError) as raised:
            s3.complete_multipart_upload(
                Bucket=bucket, Key="r", UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        assert error_code(raised.value) == code
    with pytest.raises(ClientError) as raised:
        s3.head_object(Bucket=bucket, Key="r")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # The upload is still there and can still complete with a valid part list.
    s3.complete_multipart_upload(
        Bucket=bucket, Key="r", UploadId=upload_id, MultipartUpload={"Parts": done[1:]}
    )
    assert s3.get_object(Bucket=bucket, Key="r")["Body"].read() == small[1]


def test_no_such_upload(s3: Any, bucket: str) -> None:
    for call in (
        lambda: s3.upload_part(Bucket=bucket, Key="k", UploadId="nope", PartNumber=1, Body=b"x"),
        lambda: s3.list_parts(Bucket=bucket, Key="k", UploadId="nope"),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId="nope"),
        lambda: s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId="nope",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]},
        ),
    ):
        with pytest.raises(ClientError) as raised:
            call()
        assert error_code(raised.value) == "NoSuchUpload"


def test_part_number_bounds(s3: Any, bucket: str) -> None:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for number in (0, 10001):
        with pytest.raises(ClientError) as raised:
            s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=number, Body=b"x")
        assert error_code(raised.value) == "InvalidArgument"


def test_list_parts_paginates_and_abort_forgets(s3: Any, bucket: str) -> None:
    upload_id, done = upload_parts(s3, bucket, "lp", [b"%d" % i for i in range(7)])
    seen = []
    marker = 0
    while True:
        page = s3.list_parts(
            Bucket=bucket, Key="lp", UploadId=upload_id, MaxParts=3, PartNumberMarker=marker
        )
        seen += [(p["PartNumber"], p["ETag"], p["Size"]) for p in page["Parts"]]
        if not page["IsTruncated"]:
            break
        marker = page["NextPartNumberMarker"]
    assert [n for n, _, _ in seen] == list(range(1, 8))
    assert [e for _, e, _ in seen] == [d["ETag"] for d in done]
    s3.abort_multipart_upload(Bucket=bucket, Key="lp", UploadId=upload_id)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError):
        s3.list_parts(Bucket=bucket, Key="lp", UploadId=upload_id)


def test_list_multipart_uploads(s3: Any, bucket: str) -> None:
    ids = {}
    for key in ["a/1", "a/2", "b/1", "c", "c"]:
        ids.setdefault(key, []).append(
            s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        )
    listed = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [
        ("a/1", ids["a/1"][0]),
        ("a/2", ids["a/2"][0]),
        ("b/1", ids["b/1"][0]),
        ("c", ids["c"][0]),
        ("c", ids["c"][1]),
    ]
    grouped = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/", "b/"]
    assert [u["Key"] for u in grouped["Uploads"]] == ["c", "c"]
    prefixed = s3.list_multipart_uploads(Bucket=bucket, Prefix="a/")
    assert [u["Key"] for u in prefixed["Uploads"]] == ["a/1", "a/2"]
    paginator = s3.get_paginator("list_multipart_uploads")
    pages = list(paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3
    assert [u["UploadId"] for p in pages for u in p.get("Uploads", [])] == [
        u["UploadId"] for u in listed["Uploads"]
    ]


def test_parts_survive_restart(tmp_path: Path) -> None:
    server = RunningServer(tmp_path / "data").start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="restart")
        parts = [os.urandom(5 * MiB), b"last"]
        upload_id, done = upload_parts(s3, "restart", "k", parts)
    finally:
        server.stop()
    again = RunningServer(tmp_path / "data").start()
    try:
        s3 = again.client()
        listed = s3.list_parts(Bucket="restart", Key="k", UploadId=upload_id)
        assert [p["ETag"] for p in listed["Parts"]] == [d["ETag"] for d in done]
        s3.complete_multipart_upload(
            Bucket="restart", Key="k", UploadId=upload_id, MultipartUpload={"Parts": done}
        )
        assert s3.get_object(Bucket="restart", Key="k")["Body"].read() == b"".join(parts)
    finally:
        again.stop()


def test_upload_part_copy_with_range(s3: Any, bucket: str) -> None:
    source = os.urandom(6 * MiB)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    first = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )
    second = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload_id,
        PartNumber=2,
        CopySource=f"{bucket}/src",
        CopySourceRange=f"bytes={5 * MiB}-{6 * MiB - 1}",
    )
    assert first["CopyPartResult"]["ETag"] == f'"{hashlib.md5(source[: 5 * MiB]).hexdigest()}"'
    parts = [
        {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]},
    ]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="dst", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == source


def test_copy_object_directives(s3: Any, bucket: str) -> None:
    s3.put_object(
        Bucket=bucket,
        Key="orig",
        Body=b"payload",
        ContentType="text/plain",
        Metadata={"stage": "build"},
        Tagging="team=infra",
    )
    s3.copy_object(Bucket=bucket, Key="same-meta", CopySource={"Bucket": bucket, "Key": "orig"})
    copied = s3.head_object(Bucket=bucket, Key="same-meta")
    assert copied["Metadata"] == {"stage": "build"}
    assert copied["ContentType"] == "text/plain"
    s3.copy_object(
        Bucket=bucket,
        Key="new-meta",
        CopySource=f"{bucket}/orig",
        MetadataDirective="REPLACE",
        ContentType="application/json",
        Metadata={"stage": "release"},
    )
    replaced = s3.get_object(Bucket=bucket, Key="new-meta")
    assert replaced["Metadata"] == {"stage": "release"}
    assert replaced["ContentType"] == "application/json"
    assert replaced["Body"].read() == b"payload"
    assert replaced["TagCount"] == 1


def test_copy_onto_itself(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="self", Body=b"x", Metadata={"v": "1"})
    with pytest.raises(ClientError) as raised:
        s3.copy_object(Bucket=bucket, Key="self", CopySource=f"{bucket}/self")
    assert error_code(raised.value) == "InvalidRequest"
    s3.copy_object(
        Bucket=bucket,
        Key="self",
        CopySource=f"{bucket}/self",
        MetadataDirective="REPLACE",
        Metadata={"v": "2"},
    )
    assert s3.head_object(Bucket=bucket, Key="self")["Metadata"] == {"v": "2"}


def test_copy_across_buckets_with_unicode_key_and_conditions(s3: Any, bucket: str) -> None:
    other = f"{bucket}-dest"
    s3.create_bucket(Bucket=other)
    put = s3.put_object(Bucket=bucket, Key="ü + %/x y", Body=b"across")
    s3.copy_object(
        Bucket=other,
        Key="copied",
        CopySource={"Bucket": bucket, "Key": "ü + %/x y"},
        CopySourceIfMatch=put["ETag"],
    )
    assert s3.get_object(Bucket=other, Key="copied")["Body"].read() == b"across"
    for condition in ({"CopySourceIfMatch": '"0"'}, {"CopySourceIfNoneMatch": put["ETag"]}):
        with pytest.raises(ClientError) as raised:
            s3.copy_object(Bucket=other, Key="nope", CopySource=f"{bucket}/ü + %/x y", **condition)
        assert error_code(raised.value) == "PreconditionFailed"
    with pytest.raises(ClientError) as raised:
        s3.copy_object(Bucket=other, Key="x", CopySource=f"{bucket}/missing")
    assert error_code(raised.value) == "NoSuchKey"


def test_conditional_complete(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="taken", Body=b"first")
    upload_id, done = upload_parts(s3, bucket, "taken", [b"second"])
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="taken",
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
            IfNoneMatch="*",
        )
    assert error_code(raised.value) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"first"


def test_a_repeated_complete_answers_as_the_first(s3: Any, bucket: str) -> None:
    """SDKs retry CompleteMultipartUpload after a lost answer: AWS answers the same again
    while the upload's object is the current one."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key="again")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="again", UploadId=upload, PartNumber=1, Body=b"x")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    first = s3.complete_multipart_upload(
        Bucket=bucket, Key="again", UploadId=upload, MultipartUpload=parts
    )
    again = s3.complete_multipart_upload(
        Bucket=bucket, Key="again", UploadId=upload, MultipartUpload=parts
    )
    assert (again["ETag"], again["Key"]) == (first["ETag"], first["Key"])
    versions = s3.list_object_versions(Bucket=bucket, Prefix="again")["Versions"]
    assert len(versions) == 1  # nothing was written twice
    s3.put_object(Bucket=bucket, Key="again", Body=b"newer")  # no longer the current object
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="again", UploadId=upload, MultipartUpload=parts
        )
    assert raised.value.response["Error"]["Code"] == "NoSuchUpload"


def test_a_repeated_complete_of_another_upload_is_no_such_upload(s3: Any, bucket: str) -> None:
    """Only the upload that wrote the current object may be completed again."""

    def complete(upload: str) -> Any:
        part = s3.upload_part(Bucket=bucket, Key="two", UploadId=upload, PartNumber=1, Body=b"p")
        parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
        s3.complete_multipart_upload(
            Bucket=bucket, Key="two", UploadId=upload, MultipartUpload=parts
        )
        return parts

    first = s3.create_multipart_upload(Bucket=bucket, Key="two")["UploadId"]
    second = s3.create_multipart_upload(Bucket=bucket, Key="two")["UploadId"]
    parts = complete(first)
    complete(second)  # the current object now
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="two", UploadId=first, MultipartUpload=parts
        )
    assert raised.value.response["Error"]["Code"] == "NoSuchUpload"
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="two", UploadId="f" * 48, MultipartUpload=parts
        )
    assert raised.value.response["Error"]["Code"] == "NoSuchUpload"
