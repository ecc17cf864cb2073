"""Object operations through boto3 at its default settings against a real server."""

from __future__ import annotations

import base64
import hashlib
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

HOSTILE_KEYS = [
    "plain.txt",
    "with space.txt",
    "plus+sign",
    "percent%20literal%",
    "double//slash",
    "trailing/",
    "ünïcødé/日本語/файл",
    "question?and#hash&amp=",
    "tilde~star*paren()'!",
    "k" * 1024,
]


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_round_trip(s3: Any, bucket: str, key: str) -> None:
    body = key.encode() * 3
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(body)
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == [key]
    listed_v1 = [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]]
    assert listed_v1 == [key]
    s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_put_returns_quoted_md5_etag_and_default_checksum(s3: Any, bucket: str) -> None:
    body = b"hello provenance"
    put = s3.put_object(Bucket=bucket, Key="a", Body=body)
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    # boto3's default request checksum is CRC32, sent as a trailer: echoed back.
    expected_crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert put["ChecksumCRC32"] == expected_crc


def test_metadata_and_representation_headers_round_trip(s3: Any, bucket: str) -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    s3.put_object(
        Bucket=bucket,
        Key="doc",
        Body=b"{}",
        ContentType="application/json",
        ContentEncoding="identity",
        ContentDisposition='attachment; filename="doc.json"',
        ContentLanguage="en-GB",
        CacheControl="max-age=60",
        Expires=expires,
        Metadata={"commit": "abc123", "builder": "ci-7"},
    )
    for response in (
        s3.head_object(Bucket=bucket, Key="doc"),
        s3.get_object(Bucket=bucket, Key="doc"),
    ):
        assert response["ContentType"] == "application/json"
        assert response["ContentEncoding"] == "identity"
        assert response["ContentDisposition"] == 'attachment; filename="doc.json"'
        assert response["ContentLanguage"] == "en-GB"
        assert response["CacheControl"] == "max-age=60"
        assert response["Expires"] == expires
        assert response["Metadata"] == {"commit": "abc123", "builder": "ci-7"}


def test_default_content_type(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="x", Body=b"1")
    assert s3.head_object(Bucket=bucket, Key="x")["ContentType"] == "binary/octet-stream"


def test_aws_chunked_is_not_stored_as_content_encoding(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="gz", Body=b"x" * 100, ContentEncoding="gzip")
    head = s3.head_object(Bucket=bucket, Key="gz")
    assert head["ContentEncoding"] == "gzip"


def test_ranges(s3: Any, bucket: str) -> None:
    body = bytes(range(256)) * 4
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    cases = {"bytes=0-0": body[:1], "bytes=10-19": body[10:20], "bytes=1000-": body[1000:]}
    cases |= {"bytes=-24": body[-24:], "bytes=1020-5000": body[1020:]}
    for header, expected in cases.items():
        got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert got["Body"].read() == expected, header
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"].endswith(f"/{len(body)}")
        assert got["ContentLength"] == len(expected)
    head = s3.head_object(Bucket=bucket, Key="r", Range="bytes=0-9")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentRange"] == f"bytes 0-9/{len(body)}"
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=5000-")
    assert error_code(raised.value) == "InvalidRange"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_conditional_reads(s3: Any, bucket: str) -> None:
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"cond")
    etag = put["ETag"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"cond"
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert error_code(raised.value) == "PreconditionFailed"
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    past = datetime.now(UTC) - timedelta(days=1)
    future = datetime.now(UTC) + timedelta(days=1)
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() == b"cond"
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert error_code(raised.value) == "PreconditionFailed"
    # AWS precedence: If-Match true wins over a failing If-Unmodified-Since ...
    ok = s3.get_object(Bucket=bucket, Key="c", IfMatch=etag, IfUnmodifiedSince=past)
    assert ok["Body"].read() == b"cond"
    # ... and a matching If-None-Match gives 304 whatever If-Modified-Since says.
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag, IfModifiedSince=past)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304


def test_response_overrides(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="application/x-custom",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-store",
        ResponseContentLanguage="de",
    )
    assert got["ContentType"] == "application/x-custom"
    assert got["ContentDisposition"] == "inline"
    assert got["CacheControl"] == "no-store"
    assert got["ContentLanguage"] == "de"


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_flexible_checksums_stored_and_returned(s3: Any, bucket: str, algorithm: str) -> None:
    body = b"checksum me " * 1000
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumAlgorithm=algorithm)
    value = put[f"Checksum{algorithm}"]
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == value
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == value
    assert got["Body"].read() == body  # boto3 validates the returned checksum too
    if algorithm == "SHA256":
        assert base64.b64decode(value) == hashlib.sha256(body).digest()
    plain = s3.head_object(Bucket=bucket, Key="k")
    assert f"Checksum{algorithm}" not in plain  # only when x-amz-checksum-mode: ENABLED
    ranged = s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-3", ChecksumMode="ENABLED")
    assert f"Checksum{algorithm}" not in ranged  # never on a ranged response


def test_server_computes_crc64nvme_when_client_sends_none(server: Any, bucket: str) -> None:
    s3 = server.client(request_checksum_calculation="when_required")
    s3.put_object(Bucket=bucket, Key="n", Body=b"no checksum sent")
    head = s3.head_object(Bucket=bucket, Key="n", ChecksumMode="ENABLED")
    assert "ChecksumCRC64NVME" in head


def test_conditional_writes(s3: Any, bucket: str) -> None:
    first = s3.put_object(Bucket=bucket, Key="lock", Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=bucket, Key="lock", Body=b"two", IfNoneMatch="*")
    assert error_code(raised.value) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="lock")["Body"].read() == b"one"
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=bucket, Key="lock", Body=b"two", IfMatch='"ffff"')
    assert error_code(raised.value) == "PreconditionFailed"
    second = s3.put_object(Bucket=bucket, Key="lock", Body=b"two", IfMatch=first["ETag"])
    assert second["ETag"] != first["ETag"]
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=bucket, Key="missing", Body=b"x", IfMatch=first["ETag"])
    assert error_code(raised.value) == "NoSuchKey"
    assert s3.get_object(Bucket=bucket, Key="lock")["Body"].read() == b"two"


def test_concurrent_if_none_match_has_exactly_one_winner(server: Any, bucket: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def attempt(n: int) -> str:
        client = server.client()
        try:
            client.put_object(
                Bucket=bucket, Key="terraform.tflock", Body=f"{n}".encode(), IfNoneMatch="*"
            )
            return "won"
        except ClientError as exc:
            return error_code(exc)

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(16)))
    assert outcomes.count("won") == 1
    assert set(outcomes) <= {"won", "PreconditionFailed", "ConditionalRequestConflict"}


def test_delete_object_is_204_also_for_missing_keys(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="d", Body=b"x")
    assert s3.delete_object(Bucket=bucket, Key="d")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.delete_object(Bucket=bucket, Key="d")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=bucket, Key="d")
    assert error_code(raised.value) == "NoSuchKey"


@pytest.mark.parametrize("quiet", [False, True])
def test_delete_objects(s3: Any, bucket: str, quiet: bool) -> None:
    keys = [f"many/{i}" for i in range(20)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": k} for k in [*keys[:10], "never-existed"]], "Quiet": quiet},
    )
    if quiet:
        assert "Deleted" not in result
    else:
        assert sorted(d["Key"] for d in result["Deleted"]) == sorted([*keys[:10], "never-existed"])
    assert "Errors" not in result
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert left == sorted(keys[10:])


def test_presigned_get_and_put_with_plain_http(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="shared file.bin", Body=b"presigned bytes")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared file.bin"}, ExpiresIn=300
    )
    got = httpx.get(url)
    assert got.status_code == 200
    assert got.content == b"presigned bytes"
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "uploaded"}, ExpiresIn=300
    )
    assert httpx.put(put_url, content=b"via presigned put").status_code == 200
    assert s3.get_object(Bucket=bucket, Key="uploaded")["Body"].read() == b"via presigned put"


def test_large_object_streams(s3: Any, bucket: str) -> None:
    body = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32 + 7)
    s3.put_object(Bucket=bucket, Key="big", Body=body)
    got = s3.get_object(Bucket=bucket, Key="big")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


def test_last_modified_is_recent(s3: Any, bucket: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    s3.put_object(Bucket=bucket, Key="t", Body=b"1")
    modified = s3.head_object(Bucket=bucket, Key="t")["LastModified"]
    assert before - timedelta(seconds=2) <= modified <= datetime.now(UTC) + timedelta(seconds=2)
    time.sleep(0)  # keep the import honest for linters on slow clocks
