"""Listing edges as AWS answers them: max-keys=0, empty delimiter and continuation token,
encoding-type=url, control characters, ListBuckets pagination. boto3 at its defaults
(which asks for encoding-type=url itself and decodes), and raw answers where boto3 would
hide the difference."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.rawhttp import send

KEYS = ["asdf+b", "foo+1/bar", "foo/bar/xyzzy", "quux ab/thud", "100%.csv"]


@pytest.fixture
def filled(s3: Any, bucket: str) -> str:
    for key in KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    return bucket


def test_max_keys_zero_lists_nothing_and_is_not_truncated(s3: Any, filled: str) -> None:
    v2 = s3.list_objects_v2(Bucket=filled, MaxKeys=0)
    assert (v2["KeyCount"], v2["IsTruncated"]) == (0, False)
    assert "Contents" not in v2 and "NextContinuationToken" not in v2
    v1 = s3.list_objects(Bucket=filled, MaxKeys=0, Delimiter="/")
    assert v1["IsTruncated"] is False and "Contents" not in v1 and "NextMarker" not in v1
    versions = s3.list_object_versions(Bucket=filled, MaxKeys=0)
    assert versions["IsTruncated"] is False and "Versions" not in versions
    uploads = s3.list_multipart_uploads(Bucket=filled, MaxUploads=0)
    assert uploads["IsTruncated"] is False


def test_an_empty_delimiter_is_no_delimiter(server: RunningServer, s3: Any, filled: str) -> None:
    answer = s3.list_objects_v2(Bucket=filled, Delimiter="")
    assert "Delimiter" not in answer and "CommonPrefixes" not in answer
    assert sorted(o["Key"] for o in answer["Contents"]) == sorted(KEYS)
    for query in ("list-type=2&delimiter=", "delimiter=", "versions&delimiter="):
        reply = send(server.port, "GET", f"/{filled}", query)
        assert reply.status == 200 and b"<Delimiter" not in reply.body, query


def test_an_empty_continuation_token_lists_from_the_start(s3: Any, filled: str) -> None:
    answer = s3.list_objects_v2(Bucket=filled, ContinuationToken="")
    assert answer["ContinuationToken"] == ""
    assert sorted(o["Key"] for o in answer["Contents"]) == sorted(KEYS)


def test_encoding_type_url_percent_encodes_every_name(s3: Any, filled: str) -> None:
    # Asked for explicitly, botocore hands the encoded text through undecoded.
    answer = s3.list_objects(Bucket=filled, Delimiter="/", EncodingType="url")
    assert sorted(o["Key"] for o in answer["Contents"]) == ["100%25.csv", "asdf%2Bb"]
    prefixes = sorted(p["Prefix"] for p in answer["CommonPrefixes"])
    assert prefixes == ["foo%2B1/", "foo/", "quux%20ab/"]
    grouped = s3.list_objects_v2(
        Bucket=filled, Prefix="quux", StartAfter="quux", Delimiter=" ", EncodingType="url"
    )
    assert (grouped["StartAfter"], grouped["Delimiter"]) == ("quux", "%20")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["quux%20"]
    spaced = s3.list_objects_v2(Bucket=filled, Prefix="quux a", EncodingType="url")
    assert spaced["Prefix"] == "quux%20a"
    assert [o["Key"] for o in spaced["Contents"]] == ["quux%20ab/thud"]
    marker = s3.list_objects(Bucket=filled, Marker="a b", EncodingType="url")
    assert marker["Marker"] == "a%20b"


def test_control_characters_round_trip(s3: Any, bucket: str) -> None:
    key = "ctl\x01tab\tnl\ncr\r/end"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == [key]
    prefixes = s3.list_objects_v2(Bucket=bucket, Delimiter="/")["CommonPrefixes"]
    assert [p["Prefix"] for p in prefixes] == ["ctl\x01tab\tnl\ncr\r/"]
    unreadable = s3.list_objects(Bucket=bucket, Prefix="\n")
    assert unreadable["Prefix"] == "\n" and "Contents" not in unreadable


def test_list_buckets_pages_filters_by_prefix_and_region(s3: Any) -> None:
    prefix = f"page-{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{n}" for n in "abc"]
    for name in names:
        s3.create_bucket(Bucket=name)
    first = s3.list_buckets(Prefix=prefix, MaxBuckets=2)
    assert [b["Name"] for b in first["Buckets"]] == names[:2]
    assert first["Prefix"] == prefix and first["ContinuationToken"]
    assert {b["BucketRegion"] for b in first["Buckets"]} == {"us-east-1"}
    second = s3.list_buckets(
        Prefix=prefix, MaxBuckets=2, ContinuationToken=first["ContinuationToken"]
    )
    assert [b["Name"] for b in second["Buckets"]] == names[2:]
    assert "ContinuationToken" not in second
    regional = s3.list_buckets(Prefix=prefix, BucketRegion="us-east-1")
    assert [b["Name"] for b in regional["Buckets"]] == names
    assert s3.list_buckets(Prefix=prefix, BucketRegion="eu-west-1")["Buckets"] == []


def test_list_buckets_refuses_a_bad_max_buckets(server: RunningServer) -> None:
    for value in ("0", "-1", "many"):  # boto3 refuses these itself: sent raw
        reply = send(server.port, "GET", "/", f"max-buckets={value}")
        assert reply.status == 400 and b"<Code>InvalidArgument</Code>" in reply.body, value
