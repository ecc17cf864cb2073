"""Bucket lifecycle: configurations through boto3 at its default settings, and expiry
with the server's clock moved forward through the admin API (never by sleeping).

One server serves most tests, so its clock only moves forward and everything written
after a test moved it is already "old" by that much: `Clock.horizon()` picks a number of
days that nothing written from then on has reached yet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from s3facade.admin_client import AdminClient
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer
from tests.rawhttp import send

DAY = 86400
EVERYTHING = {"Prefix": ""}


def start(root: Path, config: str) -> RunningServer:
    path = root / "s3facade.toml"
    path.write_text(config)
    return RunningServer(root / "data", extra_args=["--config", str(path)]).start()


@pytest.fixture(scope="module")
def life_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start(tmp_path_factory.mktemp("lifecycle"), "[server]\ntest_clock = true\n")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3(life_server: RunningServer) -> Any:
    return life_server.client()


@pytest.fixture(scope="module")
def admin(life_server: RunningServer) -> AdminClient:
    return AdminClient(life_server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))


@dataclass
class Clock:
    admin: AdminClient

    def now(self) -> datetime:
        reply = self.admin.json("POST", "/-/admin/clock", {"advance": "0"})
        return datetime.fromisoformat(reply["now"])

    def horizon(self) -> int:
        """A number of days that nothing written from now on is old enough for yet."""
        offset = (self.now() - datetime.now(UTC)).total_seconds()
        return int(offset // DAY) + 2

    def pass_days(self, days: int) -> None:
        """Move the clock until everything written so far is at least `days` old."""
        offset = (self.now() - datetime.now(UTC)).total_seconds()
        advance = max(0.0, days * DAY + 60 - offset)
        self.admin.json("POST", "/-/admin/clock", {"advance": str(advance)})


@pytest.fixture(scope="module")
def clock(admin: AdminClient) -> Clock:
    return Clock(admin)


def new_bucket(s3: Any, *, versioned: bool = False, locked: bool = False) -> str:
    name = f"life-{uuid.uuid4().hex[:12]}"
    if locked:
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def rule(rule_id: str, filter_: dict[str, Any] | None = None, **actions: Any) -> dict[str, Any]:
    return {"ID": rule_id, "Status": "Enabled", "Filter": filter_ or EVERYTHING, **actions}


def configure(s3: Any, bucket: str, *rules: dict[str, Any]) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": list(rules)}
    )


def run(admin: AdminClient, bucket: str, *, dry_run: bool = False) -> dict[str, Any]:
    params = {"bucket": bucket} | ({"dry-run": "true"} if dry_run else {})
    result: dict[str, Any] = admin.json("POST", "/-/admin/lifecycle/run", params)
    return result


def taken(result: dict[str, Any], status: str = "applied") -> set[tuple[str, str]]:
    return {(s["action"], s["key"]) for s in result["steps"] if s["status"] == status}


def keys(s3: Any, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def stacks(s3: Any, bucket: str) -> dict[str, list[tuple[str, bool]]]:
    """key -> [(version id, is a delete marker)], newest first (ids sort by time)."""
    listing = s3.list_object_versions(Bucket=bucket)
    entries = [(v["Key"], v["VersionId"], False) for v in listing.get("Versions", [])]
    entries += [(m["Key"], m["VersionId"], True) for m in listing.get("DeleteMarkers", [])]
    found: dict[str, list[tuple[str, bool]]] = {}
    for key, version_id, marker in sorted(entries, key=lambda e: e[1], reverse=True):
        found.setdefault(key, []).append((version_id, marker))
    return found


def error_code(call: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as raised:
        call()
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def cli(*args: str) -> Any:
    env = {
        **os.environ,
        "S3FACADE_ACCESS_KEY_ID": ACCESS_KEY,
        "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    result = subprocess.run(
        [sys.executable, "-m", "s3facade", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- configurations ------------------------------------------------------------------------


def test_round_trip_of_every_element(s3: Any) -> None:
    bucket = new_bucket(s3)
    tags = [{"Key": "class", "Value": "scratch"}, {"Key": "team", "Value": "ci"}]
    rules = [
        rule(
            "days",
            {"Prefix": "logs/"},
            Expiration={"Days": 30},
            AbortIncompleteMultipartUpload={"DaysAfterInitiation": 2},
        ),
        rule("date", {"Tag": tags[0]}, Expiration={"Date": datetime(2030, 1, 1, tzinfo=UTC)}),
        rule(
            "markers",
            EVERYTHING,
            Expiration={"ExpiredObjectDeleteMarker": True},
            NoncurrentVersionExpiration={"NoncurrentDays": 7, "NewerNoncurrentVersions": 3},
        ),
        rule(
            "and",
            {
                "And": {
                    "Prefix": "a/",
                    "Tags": tags,
                    "ObjectSizeGreaterThan": 10,
                    "ObjectSizeLessThan": 1000,
                }
            },
            Expiration={"Days": 9},
        )
        | {"Status": "Disabled"},
        rule("bigger", {"ObjectSizeGreaterThan": 5}, Expiration={"Days": 1}),
        rule(
            "smaller",
            {"ObjectSizeLessThan": 100},
            NoncurrentVersionExpiration={"NoncurrentDays": 4},
        ),
        rule("no-delete-marker", {}, Expiration={"ExpiredObjectDeleteMarker": False}),
        {"ID": "legacy", "Prefix": "old/", "Status": "Enabled", "Expiration": {"Days": 3}},
    ]
    configure(s3, bucket, *rules)
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert got == rules

    configure(s3, bucket, {"Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}})
    (generated,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert generated.pop("ID")  # AWS names a rule given without an ID too
    assert generated == {"Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}


def test_missing_configuration_and_delete(s3: Any) -> None:
    bucket = new_bucket(s3)

    def get() -> Any:
        return s3.get_bucket_lifecycle_configuration(Bucket=bucket)

    assert error_code(get) == (404, "NoSuchLifecycleConfiguration")
    configure(s3, bucket, rule("r", Expiration={"Days": 1}))
    assert get()["Rules"][0]["ID"] == "r"
    deleted = s3.delete_bucket_lifecycle(Bucket=bucket)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_code(get) == (404, "NoSuchLifecycleConfiguration")
    s3.delete_bucket_lifecycle(Bucket=bucket)  # none: still 204, as in AWS
    missing = "life-missing-" + uuid.uuid4().hex[:8]
    gone = lambda: s3.get_bucket_lifecycle_configuration(Bucket=missing)  # noqa: E731
    assert error_code(gone) == (404, "NoSuchBucket")


EXPIRE = {"Expiration": {"Days": 1}}
TAG = {"Key": "k", "Value": "v"}
MIDNIGHT = datetime(2030, 1, 1, tzinfo=UTC)
NOON = datetime(2030, 1, 1, 12, tzinfo=UTC)
INVALID = [
    ([rule("zero", Expiration={"Days": 0})], "InvalidArgument"),
    ([rule("neg", NoncurrentVersionExpiration={"NoncurrentDays": -1})], "InvalidArgument"),
    ([rule("a", AbortIncompleteMultipartUpload={"DaysAfterInitiation": 0})], "InvalidArgument"),
    (
        [
            rule(
                "n", NoncurrentVersionExpiration={"NoncurrentDays": 1, "NewerNoncurrentVersions": 0}
            )
        ],
        "InvalidArgument",
    ),
    ([rule("same", **EXPIRE), rule("same", {"Prefix": "b/"}, **EXPIRE)], "InvalidArgument"),
    ([rule("x" * 256, **EXPIRE)], "InvalidArgument"),
    ([rule(f"r{i}", {"Prefix": f"p{i}/"}, **EXPIRE) for i in range(1001)], "InvalidArgument"),
    ([rule("noon", Expiration={"Date": MIDNIGHT + timedelta(hours=12)})], "InvalidArgument"),
    ([rule("status", **EXPIRE) | {"Status": "enabled"}], "MalformedXML"),
    ([rule("two", {"Prefix": "a/", "Tag": TAG}, **EXPIRE)], "MalformedXML"),
    ([{"ID": "nofilter", "Status": "Enabled", **EXPIRE}], "MalformedXML"),
    ([rule("both", Expiration={"Days": 1, "Date": MIDNIGHT})], "MalformedXML"),
    ([rule("nothing")], "InvalidRequest"),
    ([rule("m", {"Tag": TAG}, Expiration={"ExpiredObjectDeleteMarker": True})], "InvalidRequest"),
    (
        [rule("u", {"Tag": TAG}, AbortIncompleteMultipartUpload={"DaysAfterInitiation": 1})],
        "InvalidRequest",
    ),
    ([rule("dup", {"And": {"Tags": [TAG, TAG | {"Value": "w"}]}}, **EXPIRE)], "InvalidRequest"),
    ([rule("move", Transitions=[{"Days": 30, "StorageClass": "GLACIER"}])], "NotImplemented"),
    # A transition AWS would refuse is its 400, not 501.
    ([rule("noon", Transitions=[{"Date": NOON, "StorageClass": "GLACIER"}])], "InvalidArgument"),
    ([rule("when", Transitions=[{"StorageClass": "GLACIER"}])], "MalformedXML"),
    ([rule("neg", Transitions=[{"Days": -1, "StorageClass": "GLACIER"}])], "InvalidArgument"),
    ([rule("where", Transitions=[{"Days": 1, "StorageClass": "TAPE"}])], "InvalidStorageClass"),
    (
        [rule("old", NoncurrentVersionTransitions=[{"NoncurrentDays": 1, "StorageClass": "X"}])],
        "InvalidStorageClass",
    ),
]


@pytest.mark.parametrize(("rules", "code"), INVALID, ids=lambda v: v if isinstance(v, str) else "")
def test_invalid_configurations(s3: Any, rules: list[dict[str, Any]], code: str) -> None:
    bucket = new_bucket(s3)
    put = lambda: configure(s3, bucket, *rules)  # noqa: E731
    assert error_code(put)[1] == code
    get = lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket)  # noqa: E731
    assert error_code(get)[1] == "NoSuchLifecycleConfiguration"  # nothing was recorded


RAW_RULE = "<Rule><ID>r</ID><Filter/><Status>Enabled</Status>{}</Rule>"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (RAW_RULE.format("<Expiration><Days>soon</Days></Expiration>"), "MalformedXML"),
        (RAW_RULE.format("<Expiration><Days>1</Days></Expiration><Bogus/>"), "MalformedXML"),
        (RAW_RULE.format("<Expiration><Date>20300101</Date></Expiration>"), "MalformedXML"),
        (RAW_RULE.format("<Expiration><Days>1</Days><Days>2</Days></Expiration>"), "MalformedXML"),
        # ceph's s3-tests test_lifecycle_transition_set_invalid_date: 400, not 501
        (
            RAW_RULE.format(
                "<Transition><Date>20200101</Date><StorageClass>GLACIER</StorageClass></Transition>"
            ),
            "MalformedXML",
        ),
        ("", "MalformedXML"),
        ("not xml", "MalformedXML"),
    ],
)
def test_malformed_xml(life_server: RunningServer, s3: Any, body: str, code: str) -> None:
    bucket = new_bucket(s3)
    if body.startswith("<Rule>"):
        body = f"<LifecycleConfiguration>{body}</LifecycleConfiguration>"
    data = body.encode()
    headers = {"Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode()}
    reply = send(life_server.port, "PUT", f"/{bucket}", "lifecycle", headers, data)
    assert (reply.status, reply.code) == (400, code), reply.body


def test_integrity_header_is_required(life_server: RunningServer, s3: Any) -> None:
    bucket = new_bucket(s3)
    body = f"<LifecycleConfiguration>{RAW_RULE.format('')}</LifecycleConfiguration>".encode()
    reply = send(life_server.port, "PUT", f"/{bucket}", "lifecycle", {}, body)
    assert (reply.status, reply.code) == (400, "InvalidRequest")


# -- expiry ----------------------------------------------------------------------------------


def test_expiry_in_an_unversioned_bucket_is_logged(
    life_server: RunningServer, s3: Any, admin: AdminClient, clock: Clock
) -> None:
    bucket = new_bucket(s3)
    days = clock.horizon()
    configure(s3, bucket, rule("tmp", {"Prefix": "tmp/"}, Expiration={"Days": days}))
    for key in ("tmp/a", "tmp/b", "keep/c"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert run(admin, bucket)["steps"] == []  # not old enough yet
    clock.pass_days(days)
    result = run(admin, bucket)
    assert taken(result) == {("expire", "tmp/a"), ("expire", "tmp/b")}
    assert keys(s3, bucket) == {"keep/c"}
    assert s3.list_object_versions(Bucket=bucket).get("DeleteMarkers") is None

    events = cli("log", "--endpoint", life_server.endpoint, "--bucket", bucket)["events"]
    expired = [e for e in events if e["data"].get("reason") == "lifecycle"]
    assert {(e["type"], e["key"]) for e in expired} == {
        ("ObjectDeleted", "tmp/a"),
        ("ObjectDeleted", "tmp/b"),
    }
    for event in expired:
        assert event["data"]["rule"] == "tmp"
        assert event["data"]["principal"] == "s3facade:lifecycle"
        assert event["data"]["user_agent"] == "s3facade-lifecycle/1"


def test_expiry_in_a_versioned_bucket_places_a_delete_marker(
    s3: Any, admin: AdminClient, clock: Clock
) -> None:
    bucket = new_bucket(s3, versioned=True)
    days = clock.horizon()
    configure(s3, bucket, rule("current", Expiration={"Days": days}))
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    clock.pass_days(days)
    assert taken(run(admin, bucket)) == {("place-delete-marker", "k")}
    (_, is_marker), *rest = stacks(s3, bucket)["k"]
    assert is_marker and rest == [(second, False), (first, False)]
    assert error_code(lambda: s3.get_object(Bucket=bucket, Key="k"))[0] == 404
    body = s3.get_object(Bucket=bucket, Key="k", VersionId=second)["Body"].read()
    assert body == b"two"
    # The marker is current now: the rule has nothing more to do, it does not stack markers.
    assert run(admin, bucket)["steps"] == []


def test_expiry_with_versioning_suspended_replaces_the_null_version(
    s3: Any, admin: AdminClient, clock: Clock
) -> None:
    bucket = new_bucket(s3, versioned=True)
    days = clock.horizon()
    configure(s3, bucket, rule("current", Expiration={"Days": days}))
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")["VersionId"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"null version")
    clock.pass_days(days)
    assert taken(run(admin, bucket)) == {("place-delete-marker", "k")}
    listing = s3.list_object_versions(Bucket=bucket)
    assert [m["VersionId"] for m in listing["DeleteMarkers"]] == ["null"]
    assert [v["VersionId"] for v in listing["Versions"]] == [kept]  # the null version is gone


def test_noncurrent_expiry_keeps_the_newest_noncurrent_versions(
    s3: Any, admin: AdminClient, clock: Clock
) -> None:
    bucket = new_bucket(s3, versioned=True)
    days = clock.horizon()
    noncurrent = {"NoncurrentDays": days, "NewerNoncurrentVersions": 2}
    configure(s3, bucket, rule("old", NoncurrentVersionExpiration=noncurrent))
    ids = [
        s3.put_object(Bucket=bucket, Key="k", Body=f"v{i}".encode())["VersionId"] for i in range(5)
    ]
    s3.put_object(Bucket=bucket, Key="single", Body=b"only")
    assert run(admin, bucket)["steps"] == []
    clock.pass_days(days)
    result = run(admin, bucket)
    removed = {s["version_id"] for s in result["steps"] if s["status"] == "applied"}
    assert removed == set(ids[:2])
    assert {s["action"] for s in result["steps"]} == {"delete-noncurrent-version"}
    assert [vid for vid, _ in stacks(s3, bucket)["k"]] == ids[:1:-1]  # v4 current, v3, v2
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v4"
    assert "single" in stacks(s3, bucket)


def test_expired_delete_markers_are_removed(s3: Any, admin: AdminClient, clock: Clock) -> None:
    bucket = new_bucket(s3, versioned=True)
    days = clock.horizon()
    configure(
        s3,
        bucket,
        rule(
            "cleanup",
            Expiration={"ExpiredObjectDeleteMarker": True},
            NoncurrentVersionExpiration={"NoncurrentDays": days},
        ),
    )
    # "alone": a marker with nothing behind it; "behind": a marker hiding a young version.
    alone = s3.put_object(Bucket=bucket, Key="alone", Body=b"x")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="alone")
    s3.delete_object(Bucket=bucket, Key="alone", VersionId=alone)
    s3.put_object(Bucket=bucket, Key="behind", Body=b"y")
    s3.delete_object(Bucket=bucket, Key="behind")
    assert taken(run(admin, bucket)) == {("remove-expired-delete-marker", "alone")}
    assert set(stacks(s3, bucket)) == {"behind"}
    # Once the version behind is old enough, it goes, and its marker with it in one run.
    clock.pass_days(days)
    assert taken(run(admin, bucket)) == {
        ("delete-noncurrent-version", "behind"),
        ("remove-expired-delete-marker", "behind"),
    }
    assert stacks(s3, bucket) == {}


def test_incomplete_uploads_are_aborted(s3: Any, admin: AdminClient, clock: Clock) -> None:
    bucket = new_bucket(s3)
    days = clock.horizon()
    abort = {"DaysAfterInitiation": days}
    configure(s3, bucket, rule("uploads", {"Prefix": "up/"}, AbortIncompleteMultipartUpload=abort))
    for key in ("up/big", "other/big"):
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"part")
    assert run(admin, bucket)["steps"] == []
    clock.pass_days(days)
    assert taken(run(admin, bucket)) == {("abort-upload", "up/big")}
    remaining = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["Key"] for u in remaining] == ["other/big"]
    events = admin.json("GET", "/-/admin/log", {"bucket": bucket, "oldest": "true"})["events"]
    (aborted,) = [e for e in events if e["type"] == "MultipartUploadAborted"]
    assert aborted["data"]["reason"] == "lifecycle" and aborted["data"]["rule"] == "uploads"


def test_filters_and_disabled_rules(s3: Any, admin: AdminClient, clock: Clock) -> None:
    bucket = new_bucket(s3)
    days = clock.horizon()
    expire = {"Expiration": {"Days": days}}
    scratch = {"Key": "class", "Value": "scratch"}
    ci, stage = {"Key": "team", "Value": "ci"}, {"Key": "stage", "Value": "tmp"}
    both = {"Prefix": "and/", "Tags": [ci, stage], "ObjectSizeGreaterThan": 10}
    configure(
        s3,
        bucket,
        rule("prefix", {"Prefix": "pre/"}, **expire),
        rule("tag", {"Tag": scratch}, **expire),
        rule("big", {"ObjectSizeGreaterThan": 1000}, **expire),
        rule("tiny", {"ObjectSizeLessThan": 2}, **expire),
        rule("and", {"And": both | {"ObjectSizeLessThan": 100}}, **expire),
        {"ID": "legacy", "Prefix": "old/", "Status": "Enabled", **expire},
        rule("off", EVERYTHING, Expiration={"Days": 1}) | {"Status": "Disabled"},
    )
    objects = {
        # key: (size, tags, expected to expire by)
        "pre/a": (20, "", "prefix"),
        "notpre/a": (20, "", None),
        "tagged": (20, "class=scratch", "tag"),
        "tagged-other": (20, "class=keep", None),
        "huge": (2000, "", "big"),
        "medium": (500, "", None),
        "t": (1, "", "tiny"),
        "and/match": (50, "stage=tmp&team=ci", "and"),
        "and/one-tag": (50, "team=ci", None),
        "and/too-small": (5, "stage=tmp&team=ci", None),
        "and/too-big": (150, "team=ci&stage=tmp", None),
        "old/a": (20, "", "legacy"),
    }
    for key, (size, tagging, _) in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" * size, Tagging=tagging)
    clock.pass_days(days)
    result = run(admin, bucket)
    expected = {key: cause for key, (_, _, cause) in objects.items() if cause}
    assert {s["key"]: s["rule"] for s in result["steps"]} == expected
    assert keys(s3, bucket) == {key for key, (_, _, cause) in objects.items() if not cause}


def test_dry_run_changes_nothing(
    life_server: RunningServer, s3: Any, admin: AdminClient, clock: Clock
) -> None:
    bucket = new_bucket(s3)
    days = clock.horizon()
    configure(s3, bucket, rule("all", Expiration={"Days": days}))
    s3.put_object(Bucket=bucket, Key="k", Body=b"still here")
    clock.pass_days(days)
    endpoint = ["--endpoint", life_server.endpoint, "--bucket", bucket]
    for _ in range(2):  # planned both times: nothing happened in between
        planned = cli("lifecycle", "run", "--dry-run", *endpoint)
        assert planned["dry_run"] is True
        assert taken(planned, "planned") == {("expire", "k")}
        assert planned["counts"] == {"planned": 1, "applied": 0, "skipped": 0}
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"still here"
    events = admin.json("GET", "/-/admin/log", {"bucket": bucket, "oldest": "true"})["events"]
    assert not [e for e in events if e["data"].get("reason") == "lifecycle"]
    applied = cli("lifecycle", "run", *endpoint)
    assert taken(applied) == {("expire", "k")} and keys(s3, bucket) == set()


def test_locked_versions_are_never_expired(s3: Any, admin: AdminClient, clock: Clock) -> None:
    bucket = new_bucket(s3, locked=True)
    days = clock.horizon()
    until = clock.now() + timedelta(days=10 * days)  # still ahead after the clock moves
    locks: dict[str, dict[str, Any]] = {
        "governance": {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": until},
        "compliance": {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until},
        "held": {"ObjectLockLegalHoldStatus": "ON"},
    }
    written: dict[tuple[str, str], bytes] = {}
    for key, lock in locks.items():
        for n in range(2):  # a current and a noncurrent version, both protected
            body = f"{key} {n}".encode()
            version = s3.put_object(Bucket=bucket, Key=key, Body=body, **lock)["VersionId"]
            written[(key, version)] = body
    s3.put_object(Bucket=bucket, Key="free", Body=b"free")
    noncurrent = {"NoncurrentDays": days}
    configure(
        s3, bucket, rule("all", Expiration={"Days": days}, NoncurrentVersionExpiration=noncurrent)
    )
    clock.pass_days(days)
    first = run(admin, bucket)
    assert taken(first) == {("place-delete-marker", "free")}
    for result in (first, run(admin, bucket)):  # skipped every time, not just once
        skipped = [s for s in result["steps"] if s["status"] == "skipped"]
        assert {(s["key"], s["version_id"]) for s in skipped} == set(written)
        assert all("legal hold" in s["reason"] or "retention" in s["reason"] for s in skipped)
    assert error_code(lambda: s3.get_object(Bucket=bucket, Key="free"))[0] == 404
    for (key, version_id), body in written.items():
        got = s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read()
        assert got == body
    for key in locks:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == f"{key} 1".encode()


# -- the background sweeper and retention policies; offline runs ------------------------------

SWEEPER_CONFIG = """
[server]
test_clock = true
lifecycle_interval_seconds = 0.1

[[retention]]
name = "scratch"
bucket = "scratch-*"
prefix = "tmp/"
expire_days = 1
"""


def test_the_sweeper_applies_rules_and_retention_expiry(tmp_path: Path) -> None:
    server = start(tmp_path, SWEEPER_CONFIG)
    try:
        s3 = server.client()
        policed, ruled = f"scratch-{uuid.uuid4().hex[:8]}", f"ruled-{uuid.uuid4().hex[:8]}"
        for bucket in (policed, ruled):
            s3.create_bucket(Bucket=bucket)
            for key in ("tmp/a", "keep/b"):
                s3.put_object(Bucket=bucket, Key=key, Body=b"data")
        configure(s3, ruled, rule("keep", {"Prefix": "keep/"}, Expiration={"Days": 1}))
        admin = AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))
        admin.json("POST", "/-/admin/clock", {"advance": str(2 * DAY)})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            keys(s3, policed) != {"keep/b"} or keys(s3, ruled) != {"tmp/a"}
        ):
            time.sleep(0.05)  # waiting for the sweeper's next pass, not for the clock
        assert keys(s3, policed) == {"keep/b"}  # the policy's prefix only
        assert keys(s3, ruled) == {"tmp/a"}  # the policy's bucket pattern does not match
        events = admin.json("GET", "/-/admin/log", {"bucket": policed, "oldest": "true"})["events"]
        (expired,) = [e for e in events if e["data"].get("reason") == "lifecycle"]
        assert expired["data"]["rule"] == "policy:scratch"
    finally:
        server.stop()


def test_offline_runs_on_a_stopped_server(tmp_path: Path) -> None:
    server = start(tmp_path, "[server]\nlifecycle_interval_seconds = 0\n")  # no sweeper
    try:
        s3 = server.client()
        bucket = new_bucket(s3)
        past = datetime(2000, 1, 1, tzinfo=UTC)  # due whatever the clock says
        configure(s3, bucket, rule("dated", {"Prefix": "old/"}, Expiration={"Date": past}))
        for key in ("old/a", "new/b"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"data")
    finally:
        server.stop()
    offline = ["--data-dir", str(server.data_dir), "--config", str(tmp_path / "s3facade.toml")]
    planned = cli("lifecycle", "run", "--dry-run", *offline)
    assert taken(planned, "planned") == {("expire", "old/a")}
    assert taken(cli("lifecycle", "run", *offline)) == {("expire", "old/a")}
    events = cli("log", *offline, "--bucket", bucket)["events"]
    (expired,) = [e for e in events if e["data"].get("reason") == "lifecycle"]
    assert (expired["type"], expired["key"], expired["data"]["rule"]) == (
        "ObjectDeleted",
        "old/a",
        "dated",
    )
