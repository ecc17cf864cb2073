"""Headers kept byte for byte as the client sent them."""

from __future__ import annotations

from typing import Any

from tests.conftest import RunningServer
from tests.rawhttp import send


def test_non_ascii_metadata_round_trips_exactly(server: RunningServer, bucket: str) -> None:
    # botocore's signer over http.client: the header text goes out latin-1 encoded but is
    # signed UTF-8 encoded. The answer repeats the bytes that were sent.
    raw = "größe=Ünïcödé ✓".encode()
    put = send(
        server.port,
        "PUT",
        f"/{bucket}/meta",
        headers={"x-amz-meta-note": raw.decode("latin-1")},
        body=b"x",
    )
    assert put.status == 200, put.body
    head = send(server.port, "HEAD", f"/{bucket}/meta")
    assert head.headers["x-amz-meta-note"].encode("latin-1") == raw


def test_content_encoding_is_kept_minus_aws_chunked(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="enc", Body=b"x", ContentEncoding="deflate, gzip")
    assert s3.head_object(Bucket=bucket, Key="enc")["ContentEncoding"] == "deflate, gzip"


def test_tagging_header_keeps_a_key_without_value(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="tags", Body=b"x", Tagging="foo=bar&bar")
    tags = s3.get_object_tagging(Bucket=bucket, Key="tags")["TagSet"]
    assert tags == [{"Key": "bar", "Value": ""}, {"Key": "foo", "Value": "bar"}]


def test_boto3_non_ascii_metadata_round_trips_byte_for_byte(
    server: RunningServer, bucket: str
) -> None:
    # botocore refuses non-ASCII metadata as a parameter, so tools set the header in an event
    # hook (as the public S3 test suite does); it goes out as UTF-8 and signed so.
    s3 = server.client()

    def add_note(params: dict[str, Any], **_: Any) -> None:
        params["headers"]["x-amz-meta-note"] = "Hello World\xe9"

    s3.meta.events.register("before-call.s3.PutObject", add_note)
    s3.put_object(Bucket=bucket, Key="utf8", Body=b"x")
    got = s3.get_object(Bucket=bucket, Key="utf8")["Metadata"]["note"]
    assert got.encode("latin-1") == "Hello World\xe9".encode()  # header bytes, as sent
