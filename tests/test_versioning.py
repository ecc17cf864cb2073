"""Versioning and tagging through boto3 at its default settings."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


@pytest.fixture
def versioned(s3: Any) -> str:
    name = f"ver-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def test_versioning_configuration(s3: Any, bucket: str) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_versions_and_delete_markers(s3: Any, versioned: str) -> None:
    first = s3.put_object(Bucket=versioned, Key="k", Body=b"one")
    second = s3.put_object(Bucket=versioned, Key="k", Body=b"two")
    assert first["VersionId"] != second["VersionId"] != "null"
    assert s3.get_object(Bucket=versioned, Key="k")["Body"].read() == b"two"
    old = s3.get_object(Bucket=versioned, Key="k", VersionId=first["VersionId"])
    assert old["Body"].read() == b"one"
    assert old["VersionId"] == first["VersionId"]
    deleted = s3.delete_object(Bucket=versioned, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=versioned, Key="k")
    assert error_code(raised.value) == "NoSuchKey"
    headers = raised.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amz-delete-marker"] == "true"
    assert headers["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket=versioned, Key="k", VersionId=marker)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 405
    assert "KeyCount" in s3.list_objects_v2(Bucket=versioned)
    assert s3.list_objects_v2(Bucket=versioned)["KeyCount"] == 0
    listed = s3.list_object_versions(Bucket=versioned)
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [
        (second["VersionId"], False),
        (first["VersionId"], False),
    ]
    assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [(marker, True)]
    # Removing the marker brings the object back.
    removed = s3.delete_object(Bucket=versioned, Key="k", VersionId=marker)
    assert removed["DeleteMarker"] is True
    assert s3.get_object(Bucket=versioned, Key="k")["Body"].read() == b"two"
    s3.delete_object(Bucket=versioned, Key="k", VersionId=second["VersionId"])
    assert s3.get_object(Bucket=versioned, Key="k")["Body"].read() == b"one"


def test_null_version_in_suspended_bucket(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"before versioning")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"suspended 1")
    s3.put_object(Bucket=bucket, Key="k", Body=b"suspended 2")  # replaces the null version
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["VersionId"] for v in versions] == ["null", kept["VersionId"]]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"suspended 2"


def test_list_object_versions_pagination(s3: Any, versioned: str) -> None:
    expected = []
    for key in ("a", "b/1", "b/2", "c"):
        for n in range(3):
            put = s3.put_object(Bucket=versioned, Key=key, Body=f"{key}{n}".encode())
            expected.append((key, put["VersionId"]))
    order = {entry: n for n, entry in enumerate(expected)}
    expected.sort(key=lambda entry: (entry[0], -order[entry]))  # keys ascending, newest first
    paginator = s3.get_paginator("list_object_versions")
    pages = list(paginator.paginate(Bucket=versioned, PaginationConfig={"PageSize": 4}))
    seen = [(v["Key"], v["VersionId"]) for p in pages for v in p.get("Versions", [])]
    assert len(pages) == 3
    assert seen == expected
    grouped = s3.list_object_versions(Bucket=versioned, Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["b/"]
    assert {v["Key"] for v in grouped["Versions"]} == {"a", "c"}


def test_delete_objects_with_versions(s3: Any, versioned: str) -> None:
    one = s3.put_object(Bucket=versioned, Key="x", Body=b"1")
    s3.put_object(Bucket=versioned, Key="x", Body=b"2")
    result = s3.delete_objects(
        Bucket=versioned,
        Delete={"Objects": [{"Key": "x", "VersionId": one["VersionId"]}, {"Key": "y"}]},
    )
    deleted = {(d["Key"], d.get("VersionId")): d for d in result["Deleted"]}
    assert ("x", one["VersionId"]) in deleted
    assert deleted[("y", None)]["DeleteMarker"] is True
    assert "DeleteMarkerVersionId" in deleted[("y", None)]
    versions = [v["VersionId"] for v in s3.list_object_versions(Bucket=versioned)["Versions"]]
    assert one["VersionId"] not in versions


def test_object_tagging(s3: Any, versioned: str) -> None:
    put = s3.put_object(Bucket=versioned, Key="t", Body=b"x", Tagging="team=infra&tier=gold")
    assert s3.get_object(Bucket=versioned, Key="t")["TagCount"] == 2
    tags = s3.get_object_tagging(Bucket=versioned, Key="t")["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "infra", "tier": "gold"}
    s3.put_object_tagging(
        Bucket=versioned, Key="t", Tagging={"TagSet": [{"Key": "stage", "Value": "release"}]}
    )
    tags = s3.get_object_tagging(Bucket=versioned, Key="t", VersionId=put["VersionId"])["TagSet"]
    assert tags == [{"Key": "stage", "Value": "release"}]
    s3.delete_object_tagging(Bucket=versioned, Key="t")
    assert s3.get_object_tagging(Bucket=versioned, Key="t")["TagSet"] == []
    with pytest.raises(ClientError) as raised:
        s3.put_object_tagging(
            Bucket=versioned,
            Key="t",
            Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]},
        )
    assert error_code(raised.value) == "InvalidTag"


def test_copy_a_specific_version(s3: Any, versioned: str) -> None:
    first = s3.put_object(Bucket=versioned, Key="src", Body=b"first")
    s3.put_object(Bucket=versioned, Key="src", Body=b"second")
    copied = s3.copy_object(
        Bucket=versioned,
        Key="dst",
        CopySource={"Bucket": versioned, "Key": "src", "VersionId": first["VersionId"]},
    )
    assert copied["CopySourceVersionId"] == first["VersionId"]
    assert s3.get_object(Bucket=versioned, Key="dst")["Body"].read() == b"first"


def test_versioned_bucket_is_not_empty_until_every_version_is_gone(s3: Any, versioned: str) -> None:
    put = s3.put_object(Bucket=versioned, Key="k", Body=b"x")
    marker = s3.delete_object(Bucket=versioned, Key="k")["VersionId"]
    with pytest.raises(ClientError) as raised:
        s3.delete_bucket(Bucket=versioned)
    assert error_code(raised.value) == "BucketNotEmpty"
    s3.delete_object(Bucket=versioned, Key="k", VersionId=put["VersionId"])
    s3.delete_object(Bucket=versioned, Key="k", VersionId=marker)
    s3.delete_bucket(Bucket=versioned)


@pytest.mark.parametrize("state", ["never", "Enabled", "Suspended"])
def test_writes_name_their_version_only_while_versioning_is_enabled(
    s3: Any, bucket: str, state: str
) -> None:
    if state != "never":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": state})
    enabled = state == "Enabled"

    def named(answer: dict[str, Any]) -> bool:
        return "x-amz-version-id" in answer["ResponseMetadata"]["HTTPHeaders"]

    put = s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    copied = s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k"})
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="m", UploadId=upload, PartNumber=1, Body=b"p")
    completed = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="m",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert [named(put), named(copied), named(completed)] == [enabled] * 3
    if enabled:
        assert put["VersionId"] != "null" and completed["VersionId"] != "null"
    deleted = s3.delete_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]
    if state == "never":  # the version is gone, no marker
        assert "x-amz-delete-marker" not in deleted and "x-amz-version-id" not in deleted
    else:  # a marker: a new id while Enabled, the "null" one while Suspended
        assert deleted["x-amz-delete-marker"] == "true"
        assert (deleted["x-amz-version-id"] == "null") == (state == "Suspended")
