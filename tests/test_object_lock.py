"""Object Lock, legal hold and retention policies — and an adversarial suite that tries
to lose a protected version through every path, checking its bytes after each try."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from s3facade.admin_client import AdminClient
from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, RunningServer

NOBYPASS_KEY = "AKIDNOBYPASS00000001"
NOBYPASS_SECRET = "no-bypass-secret-0123456789abcdefghij"
MiB = 1024 * 1024

CONFIG = f"""
[server]
test_clock = true

[users.{NOBYPASS_KEY}]
secret = "{NOBYPASS_SECRET}"

[[retention]]
name = "evidence"
bucket = "policy-*"
prefix = "evidence/"
lock_mode = "COMPLIANCE"
lock_days = 30
"""


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("lock")
    config = root / "s3facade.toml"
    config.write_text(CONFIG)
    server = RunningServer(root / "data", extra_args=["--config", str(config)]).start()
    yield server
    server.stop()


@pytest.fixture
def s3(locked_server: RunningServer) -> Any:
    return locked_server.client()


@pytest.fixture
def nobypass(locked_server: RunningServer) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=locked_server.endpoint,
        region_name=REGION,
        aws_access_key_id=NOBYPASS_KEY,
        aws_secret_access_key=NOBYPASS_SECRET,
    )


@pytest.fixture
def lock_bucket(s3: Any) -> str:
    """The admin's bucket, where the second user may do all but bypass governance."""
    name = f"lock-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": NOBYPASS_KEY},
        "NotAction": "s3:BypassGovernanceRetention",
        "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
    }
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    return name


def advance_clock(server: RunningServer, seconds: float) -> None:
    AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY)).json(
        "POST", "/-/admin/clock", {"advance": str(seconds)}
    )


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def future(days: float = 1) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def test_lock_configuration_and_default_retention(s3: Any, lock_bucket: str) -> None:
    assert s3.get_bucket_versioning(Bucket=lock_bucket)["Status"] == "Enabled"
    config = s3.get_object_lock_configuration(Bucket=lock_bucket)["ObjectLockConfiguration"]
    assert config == {"ObjectLockEnabled": "Enabled"}
    s3.put_object_lock_configuration(
        Bucket=lock_bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}},
        },
    )
    rule = s3.get_object_lock_configuration(Bucket=lock_bucket)["ObjectLockConfiguration"]["Rule"]
    assert rule == {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}}
    put = s3.put_object(Bucket=lock_bucket, Key="d", Body=b"defaulted")
    head = s3.head_object(Bucket=lock_bucket, Key="d")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert timedelta(days=1, hours=23) < until - datetime.now(UTC) <= timedelta(days=2)
    retention = s3.get_object_retention(Bucket=lock_bucket, Key="d", VersionId=put["VersionId"])
    assert retention["Retention"]["Mode"] == "GOVERNANCE"
    with pytest.raises(ClientError) as raised:
        s3.put_bucket_versioning(
            Bucket=lock_bucket, VersioningConfiguration={"Status": "Suspended"}
        )
    assert error_code(raised.value) == "InvalidBucketState"


def test_lock_headers_need_an_object_lock_bucket(s3: Any) -> None:
    name = f"plain-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    with pytest.raises(ClientError) as raised:
        s3.put_object(
            Bucket=name,
            Key="k",
            Body=b"x",
            ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=future(),
        )
    assert error_code(raised.value) == "InvalidRequest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=name, Key="k")
    with pytest.raises(ClientError) as raised:
        s3.get_object_lock_configuration(Bucket=name)
    assert error_code(raised.value) == "ObjectLockConfigurationNotFoundError"


def test_retention_rules(s3: Any, nobypass: Any, lock_bucket: str) -> None:
    put = s3.put_object(
        Bucket=lock_bucket,
        Key="r",
        Body=b"r",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=future(2),
    )
    vid = put["VersionId"]

    def set_retention(client: Any, mode: str, days: float, bypass: bool = False) -> None:
        client.put_object_retention(
            Bucket=lock_bucket,
            Key="r",
            VersionId=vid,
            Retention={"Mode": mode, "RetainUntilDate": future(days)},
            BypassGovernanceRetention=bypass,
        )

    set_retention(s3, "GOVERNANCE", 3)  # extending: always allowed
    with pytest.raises(ClientError) as raised:
        set_retention(s3, "GOVERNANCE", 1)  # shortening without bypass
    assert error_code(raised.value) == "AccessDenied"
    with pytest.raises(ClientError) as raised:
        set_retention(nobypass, "GOVERNANCE", 1, bypass=True)  # not allowed to bypass
    assert error_code(raised.value) == "AccessDenied"
    set_retention(s3, "GOVERNANCE", 1, bypass=True)  # root may bypass
    with pytest.raises(ClientError) as raised:
        set_retention(s3, "COMPLIANCE", 2)  # GOVERNANCE to COMPLIANCE needs the bypass right
    assert error_code(raised.value) == "AccessDenied"
    set_retention(s3, "COMPLIANCE", 2, bypass=True)
    for mode, days in (("COMPLIANCE", 1), ("GOVERNANCE", 5)):
        with pytest.raises(ClientError) as raised:
            set_retention(s3, mode, days, bypass=True)  # nothing weakens COMPLIANCE
        assert error_code(raised.value) == "AccessDenied"
    until = s3.get_object_retention(Bucket=lock_bucket, Key="r", VersionId=vid)["Retention"]
    assert until["Mode"] == "COMPLIANCE"


def test_legal_hold(s3: Any, lock_bucket: str) -> None:
    put = s3.put_object(Bucket=lock_bucket, Key="h", Body=b"held", ObjectLockLegalHoldStatus="ON")
    vid = put["VersionId"]
    assert (
        s3.get_object_legal_hold(Bucket=lock_bucket, Key="h", VersionId=vid)["LegalHold"]["Status"]
        == "ON"
    )
    with pytest.raises(ClientError) as raised:
        s3.delete_object(Bucket=lock_bucket, Key="h", VersionId=vid, BypassGovernanceRetention=True)
    assert error_code(raised.value) == "AccessDenied"
    s3.put_object_legal_hold(
        Bucket=lock_bucket, Key="h", VersionId=vid, LegalHold={"Status": "OFF"}
    )
    s3.delete_object(Bucket=lock_bucket, Key="h", VersionId=vid)
    assert s3.list_object_versions(Bucket=lock_bucket, Prefix="h").get("Versions", []) == []


# --- the adversarial suite -----------------------------------------------------------------

PROTECTIONS = {
    "compliance": {"ObjectLockMode": "COMPLIANCE"},
    "governance": {"ObjectLockMode": "GOVERNANCE"},
    "legal-hold": {"ObjectLockLegalHoldStatus": "ON"},
}


def protect(s3: Any, bucket: str, kind: str) -> dict[str, Any]:
    extra = dict(PROTECTIONS[kind])
    if "ObjectLockMode" in extra:
        extra["ObjectLockRetainUntilDate"] = future(1)
    body = os.urandom(100_000)
    put = s3.put_object(Bucket=bucket, Key="evidence.bin", Body=body, **extra)
    return {
        "bucket": bucket,
        "key": "evidence.bin",
        "version": put["VersionId"],
        "sha256": hashlib.sha256(body).hexdigest(),
        "kind": kind,
    }


@pytest.fixture(params=sorted(PROTECTIONS))
def protected(request: pytest.FixtureRequest, s3: Any, lock_bucket: str) -> dict[str, Any]:
    return protect(s3, lock_bucket, request.param)


@pytest.fixture(params=["compliance", "governance"])
def retained(request: pytest.FixtureRequest, s3: Any, lock_bucket: str) -> dict[str, Any]:
    """Protected by a retention period (which is what could be shortened)."""
    return protect(s3, lock_bucket, request.param)


def assert_intact(s3: Any, target: dict[str, Any]) -> None:
    got = s3.get_object(Bucket=target["bucket"], Key=target["key"], VersionId=target["version"])
    assert hashlib.sha256(got["Body"].read()).hexdigest() == target["sha256"]


def refused(call: Callable[[], Any], code: str = "AccessDenied") -> None:
    with pytest.raises(ClientError) as raised:
        call()
    assert error_code(raised.value) == code


def test_delete_object_version(s3: Any, nobypass: Any, protected: dict[str, Any]) -> None:
    b, k, v = protected["bucket"], protected["key"], protected["version"]
    refused(lambda: s3.delete_object(Bucket=b, Key=k, VersionId=v))
    assert_intact(s3, protected)
    refused(
        lambda: nobypass.delete_object(Bucket=b, Key=k, VersionId=v, BypassGovernanceRetention=True)
    )
    assert_intact(s3, protected)
    if protected["kind"] != "governance":  # root's bypass works on GOVERNANCE only
        refused(
            lambda: s3.delete_object(Bucket=b, Key=k, VersionId=v, BypassGovernanceRetention=True)
        )
        assert_intact(s3, protected)


def test_delete_objects(s3: Any, protected: dict[str, Any]) -> None:
    b, k, v = protected["bucket"], protected["key"], protected["version"]
    result = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k, "VersionId": v}]})
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [(k, "AccessDenied")]
    assert_intact(s3, protected)


def test_overwrite_copy_and_complete_keep_the_version(s3: Any, protected: dict[str, Any]) -> None:
    b, k = protected["bucket"], protected["key"]
    s3.put_object(Bucket=b, Key=k, Body=b"overwrite")
    assert_intact(s3, protected)
    s3.put_object(Bucket=b, Key="other", Body=b"other")
    s3.copy_object(Bucket=b, Key=k, CopySource={"Bucket": b, "Key": "other"})
    assert_intact(s3, protected)
    upload = s3.create_multipart_upload(Bucket=b, Key=k)["UploadId"]
    part = s3.upload_part(Bucket=b, Key=k, UploadId=upload, PartNumber=1, Body=b"mp")
    s3.complete_multipart_upload(
        Bucket=b,
        Key=k,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert_intact(s3, protected)
    s3.delete_object(Bucket=b, Key=k)  # a delete marker hides it; it is not lost
    assert_intact(s3, protected)


def test_shortening_retention(s3: Any, nobypass: Any, retained: dict[str, Any]) -> None:
    protected = retained
    b, k, v = protected["bucket"], protected["key"], protected["version"]
    sooner = {"Mode": "GOVERNANCE", "RetainUntilDate": future(0.01)}
    refused(lambda: s3.put_object_retention(Bucket=b, Key=k, VersionId=v, Retention=sooner))
    refused(
        lambda: nobypass.put_object_retention(
            Bucket=b, Key=k, VersionId=v, Retention=sooner, BypassGovernanceRetention=True
        )
    )
    assert_intact(s3, protected)


def test_protection_ends_when_retention_expires(
    locked_server: RunningServer, s3: Any, lock_bucket: str
) -> None:
    put = s3.put_object(
        Bucket=lock_bucket,
        Key="short",
        Body=b"x",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=future(1),
    )
    refused(lambda: s3.delete_object(Bucket=lock_bucket, Key="short", VersionId=put["VersionId"]))
    advance_clock(locked_server, 2 * 86400)
    s3.delete_object(Bucket=lock_bucket, Key="short", VersionId=put["VersionId"])


def test_retention_policy_protects_unversioned_evidence(s3: Any) -> None:
    bucket = f"policy-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(50_000)
    s3.put_object(Bucket=bucket, Key="evidence/run-1.log", Body=body)
    target = {
        "bucket": bucket,
        "key": "evidence/run-1.log",
        "version": "null",
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    head = s3.head_object(Bucket=bucket, Key="evidence/run-1.log")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    key = target["key"]
    refused(lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"overwrite"))
    refused(lambda: s3.delete_object(Bucket=bucket, Key=key))
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})
    assert [e["Code"] for e in result["Errors"]] == ["AccessDenied"]
    s3.put_object(Bucket=bucket, Key="scratch", Body=b"scratch")
    refused(lambda: s3.copy_object(Bucket=bucket, Key=key, CopySource=f"{bucket}/scratch"))

    def multipart() -> None:
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x")
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )

    refused(multipart)
    assert_intact(s3, target)
    s3.put_object(Bucket=bucket, Key="scratch", Body=b"outside the policy: replaceable")


def test_provenance_records_what_set_the_retention(
    locked_server: RunningServer, s3: Any, tmp_path: Path
) -> None:
    bucket = f"policy-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="evidence/x", Body=b"x")
    history = AdminClient(locked_server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY)).json(
        "GET", f"/-/provenance/{bucket}/evidence/x"
    )
    write = history["current"]["data"]
    assert write["retention_policy"] == "evidence"
    assert write["retention_source"] == "policy:evidence"
    assert write["lock_mode"] == "COMPLIANCE"


def test_lifecycle_and_gc_never_take_a_protected_version(
    locked_server: RunningServer, s3: Any, lock_bucket: str
) -> None:
    """The last paths: an expiry rule that matches everything, then garbage collection."""
    targets = []
    for key, extra in (
        (
            "kept-by-date",
            {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": future(365)},
        ),
        ("kept-by-hold", {"ObjectLockLegalHoldStatus": "ON"}),
    ):
        body = os.urandom(70_000)
        put = s3.put_object(Bucket=lock_bucket, Key=key, Body=body, **extra)
        targets.append(
            {
                "bucket": lock_bucket,
                "key": key,
                "version": put["VersionId"],
                "sha256": hashlib.sha256(body).hexdigest(),
            }
        )
        s3.put_object(Bucket=lock_bucket, Key=key, Body=b"newer")  # now noncurrent
    s3.put_bucket_lifecycle_configuration(
        Bucket=lock_bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-everything",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "Expiration": {"Days": 1},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
                }
            ]
        },
    )
    advance_clock(locked_server, 40 * 86400)
    admin = AdminClient(locked_server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))
    admin.json("POST", "/-/admin/lifecycle/run", {"bucket": lock_bucket})
    admin.json("POST", "/-/admin/gc")
    for target in targets:
        assert_intact(s3, target)
        # The rule did act on what it may: the unprotected current version is expired.
        refused(lambda t=target: s3.get_object(Bucket=lock_bucket, Key=t["key"]), "NoSuchKey")
    versions = s3.list_object_versions(Bucket=lock_bucket)["Versions"]
    kept = {(v["Key"], v["VersionId"]) for v in versions}
    assert {(t["key"], t["version"]) for t in targets} <= kept
