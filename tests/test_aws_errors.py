"""Errors as AWS names them, through boto3 at its defaults: each refusal changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import RunningServer
from tests.rawhttp import send


def refused(call: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


@pytest.fixture
def locked(s3: Any) -> str:
    name = f"lock-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"])
def test_a_wrong_flexible_checksum_is_bad_digest(
    server: RunningServer, s3: Any, bucket: str, algorithm: str
) -> None:
    wrong = {"CRC32": "AAAAAA==", "CRC32C": "AAAAAA==", "CRC64NVME": "AAAAAAAAAAA=",
             "SHA1": "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
             "SHA256": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}[algorithm]  # fmt: skip
    headers = {f"x-amz-checksum-{algorithm.lower()}": wrong}
    reply = send(server.port, "PUT", f"/{bucket}/k", body=b"body", headers=headers)
    assert (reply.status, b"<Code>BadDigest</Code>" in reply.body) == (400, True), reply.body
    assert refused(s3.head_object, Bucket=bucket, Key="k")[0] == 404


def test_a_part_number_beyond_the_parts_is_invalid_part_number(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert refused(s3.get_object, Bucket=bucket, Key="k", PartNumber=2) == (
        400,
        "InvalidPartNumber",
    )
    assert refused(s3.head_object, Bucket=bucket, Key="k", PartNumber=2)[0] == 400


def test_a_copy_range_beyond_the_source_is_invalid_range(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    _, code = refused(
        s3.upload_part_copy, Bucket=bucket, Key="dst", UploadId=upload, PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange="bytes=5-20",
    )  # fmt: skip
    assert code == "InvalidRange"
    assert s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload).get("Parts", []) == []


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ({"Mode": "GOVERNANCE", "Days": 0}, "InvalidRetentionPeriod"),
        ({"Mode": "GOVERNANCE", "Days": -1}, "InvalidRetentionPeriod"),
        ({"Mode": "COMPLIANCE", "Years": 0}, "InvalidRetentionPeriod"),
        ({"Mode": "SOMETIMES", "Days": 1}, "MalformedXML"),
    ],
)
def test_bad_default_retention(s3: Any, locked: str, rule: dict[str, Any], code: str) -> None:
    configuration = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": rule}}
    status, got = refused(
        s3.put_object_lock_configuration, Bucket=locked, ObjectLockConfiguration=configuration
    )
    assert (status, got) == (400, code)
    assert "Rule" not in s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]


def test_retention_with_an_unknown_mode_is_malformed(s3: Any, locked: str) -> None:
    s3.put_object(Bucket=locked, Key="k", Body=b"x")
    until = datetime.now(UTC) + timedelta(days=1)
    assert refused(
        s3.put_object_retention, Bucket=locked, Key="k",
        Retention={"Mode": "FOREVER", "RetainUntilDate": until},
    ) == (400, "MalformedXML")  # fmt: skip


def test_governance_to_compliance_needs_the_bypass_right(s3: Any, locked: str) -> None:
    s3.put_object(Bucket=locked, Key="k", Body=b"x")
    until = datetime.now(UTC) + timedelta(days=1)
    s3.put_object_retention(
        Bucket=locked, Key="k", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}
    )
    assert refused(
        s3.put_object_retention, Bucket=locked, Key="k",
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until + timedelta(days=1)},
    ) == (403, "AccessDenied")  # fmt: skip
    assert s3.get_object_retention(Bucket=locked, Key="k")["Retention"]["Mode"] == "GOVERNANCE"


def test_more_than_ten_tags_is_invalid_tag(s3: Any, bucket: str) -> None:
    tags = [{"Key": f"k{n}", "Value": "v"} for n in range(11)]
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert refused(s3.put_object_tagging, Bucket=bucket, Key="k", Tagging={"TagSet": tags}) == (
        400,
        "InvalidTag",
    )
    header = "&".join(f"k{n}=v" for n in range(11))
    assert refused(s3.put_object, Bucket=bucket, Key="t", Body=b"x", Tagging=header) == (
        400,
        "InvalidTag",
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
