"""`s3facade retention s3://bucket/key`: the effective retention of each version, and what
set it (request, bucket default, a configured policy, PutObjectRetention), with legal
holds and delete markers; against a running server (--endpoint) and offline (--data-dir).

The same scenario is built twice: through boto3 against a real server (needs the Object
Lock handlers), and through the registry as a library (independent of the protocol
layer), so the command is tested either way.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from s3facade.admin_client import AdminClient
from s3facade.backends import BackendSet
from s3facade.backends.local import LocalCAS
from s3facade.registry import ObjectSpec, Provenance, Registry
from s3facade.registry.model import DefaultRetention, Lock, LockMode
from s3facade.registry.retention import RetentionPolicy
from tests.clients import cli
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer

WHO = Provenance("AKIDTEST", "127.0.0.1:5555", "pytest/1", "REQ1")
POLICIES = [
    {
        "name": "release-artifacts",
        "bucket": "ret-*",
        "prefix": "release/",
        "lock_mode": "governance",
        "lock_days": 30,
    },
    {"name": "scratch", "bucket": "ret-*", "prefix": "scratch/", "expire_days": 7},
]
CONFIG = "".join(
    "[[retention]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in policy.items())
    for policy in POLICIES
)
LOCKED, PLAIN = "ret-locked", "plain-bucket"
KEYS = ("default.bin", "request.bin", "retained.bin", "held.bin", "release/app.bin")


def retention(where: list[str], url: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cli("retention", *where, url, "--json").stdout)
    return data


def utc(text: str) -> datetime:
    assert text.endswith("Z")
    return datetime.fromisoformat(text[:-1])


def close_to(text: str | None, expected: datetime, slack: float = 120) -> bool:
    return text is not None and abs((utc(text) - expected).total_seconds()) < slack


def check_scenario(where: list[str], until: dict[str, datetime]) -> None:
    """The expectations both ways of building the scenario share."""
    now = datetime.now(UTC).replace(tzinfo=None)

    def single(key: str, bucket: str = LOCKED) -> dict[str, Any]:
        data = retention(where, f"s3://{bucket}/{key}")
        assert (data["bucket"], data["key"]) == (bucket, key)
        assert close_to(data["now"], now)
        [version] = data["versions"]
        assert version["is_latest"] is True and version["delete_marker"] is False
        return dict(version)

    v = single("default.bin")
    assert (v["lock_mode"], v["retention_source"], v["retention_policy"]) == (
        "GOVERNANCE", "bucket-default", None,
    )  # fmt: skip
    assert close_to(v["retain_until"], now + timedelta(days=1))
    assert v["protected"] is True and v["legal_hold"] is False

    v = single("request.bin")
    assert (v["lock_mode"], v["retention_source"]) == ("COMPLIANCE", "request")
    assert close_to(v["retain_until"], until["request"], slack=1)
    assert v["protected"] is True

    v = single("retained.bin")
    assert (v["lock_mode"], v["retention_source"]) == ("GOVERNANCE", "PutObjectRetention")
    assert close_to(v["retain_until"], until["retention"], slack=1)

    v = single("held.bin")
    assert v["legal_hold"] is True and v["protected"] is True
    assert v["retention_source"] == "bucket-default"

    v = single("release/app.bin")
    assert (v["lock_mode"], v["retention_source"], v["retention_policy"]) == (
        "GOVERNANCE", "policy:release-artifacts", "release-artifacts",
    )  # fmt: skip
    assert close_to(v["retain_until"], now + timedelta(days=30))

    # A policy without a lock is still named; the bucket default supplies the lock.
    v = single("scratch/tmp.bin")
    assert (v["retention_source"], v["retention_policy"]) == ("bucket-default", "scratch")

    v = single("other.bin", PLAIN)
    assert (v["lock_mode"], v["retain_until"], v["retention_source"]) == (None, None, None)
    assert v["protected"] is False

    history = retention(where, f"s3://{LOCKED}/multi.bin")["versions"]
    assert [(h["is_latest"], h["delete_marker"]) for h in history] == [
        (True, True), (False, False), (False, False),
    ]  # fmt: skip
    marker, newer, older = history
    assert (marker["protected"], marker["lock_mode"], marker["retention_source"]) == (
        False, None, None,
    )  # fmt: skip
    assert newer["protected"] and older["protected"]  # noncurrent versions keep their lock
    assert newer["version_id"] > older["version_id"]  # newest first

    table = cli("retention", *where, f"s3://{LOCKED}/retained.bin").stdout
    assert "PutObjectRetention" in table and "GOVERNANCE" in table
    missing = cli("retention", *where, f"s3://{LOCKED}/nothing-here", ok=False)
    assert missing.returncode == 2
    missing = cli("retention", *where, "s3://no-such-bucket/k", ok=False)
    assert missing.returncode == 2
    bad = cli("retention", *where, "not-a-url", ok=False)
    assert bad.returncode == 2


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "s3facade.toml"
    path.write_text(CONFIG)
    return path


# -- through boto3 against a real server ---------------------------------------------------


def build_with_boto3(s3: Any) -> dict[str, datetime]:
    request_until = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    retention_until = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    s3.create_bucket(Bucket=LOCKED, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=LOCKED,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    s3.create_bucket(Bucket=PLAIN)
    s3.put_object(Bucket=LOCKED, Key="default.bin", Body=b"default")
    s3.put_object(
        Bucket=LOCKED,
        Key="request.bin",
        Body=b"request",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=request_until,
    )
    s3.put_object(Bucket=LOCKED, Key="retained.bin", Body=b"retained")
    s3.put_object_retention(
        Bucket=LOCKED,
        Key="retained.bin",
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": retention_until},
    )
    s3.put_object(Bucket=LOCKED, Key="held.bin", Body=b"held")
    s3.put_object_legal_hold(Bucket=LOCKED, Key="held.bin", LegalHold={"Status": "ON"})
    s3.put_object(Bucket=LOCKED, Key="release/app.bin", Body=b"release")
    s3.put_object(Bucket=LOCKED, Key="scratch/tmp.bin", Body=b"scratch")
    s3.put_object(Bucket=LOCKED, Key="multi.bin", Body=b"one")
    s3.put_object(Bucket=LOCKED, Key="multi.bin", Body=b"two")
    s3.delete_object(Bucket=LOCKED, Key="multi.bin")
    s3.put_object(Bucket=PLAIN, Key="other.bin", Body=b"other")
    naive = {"request": request_until, "retention": retention_until}
    return {name: t.astimezone(UTC).replace(tzinfo=None) for name, t in naive.items()}


def test_retention_command_over_boto3_written_objects(tmp_path: Path) -> None:
    """Needs the protocol's Object Lock handlers (lock headers, PutObjectRetention,
    PutObjectLegalHold, PutObjectLockConfiguration) and versioned listings."""
    config = config_file(tmp_path)
    server = RunningServer(tmp_path / "data", extra_args=["--config", str(config)]).start()
    try:
        s3 = server.client()
        until = build_with_boto3(s3)
        check_scenario(["--endpoint", server.endpoint], until)
        # The version ids are the ones S3 clients see.
        listed = s3.list_object_versions(Bucket=LOCKED, Prefix="multi.bin")
        ours = retention(["--endpoint", server.endpoint], f"s3://{LOCKED}/multi.bin")
        assert {v["version_id"] for v in ours["versions"]} == {
            v["VersionId"] for v in [*listed["Versions"], *listed["DeleteMarkers"]]
        }
        online = {key: retention(["--endpoint", server.endpoint], f"s3://{LOCKED}/{key}")
                  for key in KEYS}  # fmt: skip
    finally:
        server.stop()
    offline = ["--data-dir", str(server.data_dir), "--config", str(config)]
    check_scenario(offline, until)
    for key in KEYS:  # offline and online agree (but for "now")
        assert retention(offline, f"s3://{LOCKED}/{key}")["versions"] == online[key]["versions"]


# -- through the registry as a library ------------------------------------------------------


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def build_with_registry(data_dir: Path) -> dict[str, datetime]:
    policies = [RetentionPolicy.from_config(p) for p in POLICIES]
    cas = LocalCAS(data_dir / "blobs")
    registry = Registry.open(data_dir, BackendSet({"local": cas}, "local"), policies=policies)
    now = registry.clock()
    until = {"request": now + timedelta(days=2), "retention": now + timedelta(days=5)}

    async def put(bucket: str, key: str, data: bytes, lock: Lock | None = None) -> None:
        await registry.put_object(
            bucket, key, body(data), spec=ObjectSpec(), provenance=WHO, lock=lock
        )

    await registry.create_bucket(LOCKED, "us-east-1", WHO, object_lock=True)
    default = DefaultRetention(LockMode.GOVERNANCE, days=1)
    await registry.put_object_lock_configuration(LOCKED, default, WHO)
    await registry.create_bucket(PLAIN, "us-east-1", WHO)
    await put(LOCKED, "default.bin", b"default")
    await put(LOCKED, "request.bin", b"request", Lock(LockMode.COMPLIANCE, until["request"]))
    await put(LOCKED, "retained.bin", b"retained")
    await registry.put_object_retention(
        LOCKED, "retained.bin", None, LockMode.GOVERNANCE, until["retention"], WHO
    )
    await put(LOCKED, "held.bin", b"held")
    await registry.put_object_legal_hold(LOCKED, "held.bin", None, True, WHO)
    await put(LOCKED, "release/app.bin", b"release")
    await put(LOCKED, "scratch/tmp.bin", b"scratch")
    await put(LOCKED, "multi.bin", b"one")
    await put(LOCKED, "multi.bin", b"two")
    await registry.delete_object(LOCKED, "multi.bin", WHO)
    await put(PLAIN, "other.bin", b"other")
    await registry.close()
    return until


@pytest.fixture(scope="module")
def library_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, datetime]]:
    data_dir = tmp_path_factory.mktemp("retention-library") / "data"
    return data_dir, asyncio.run(build_with_registry(data_dir))


def test_retention_command_offline(library_built: tuple[Path, dict[str, datetime]]) -> None:
    data_dir, until = library_built
    check_scenario(["--data-dir", str(data_dir)], until)


def test_retention_command_against_the_server(
    library_built: tuple[Path, dict[str, datetime]],
) -> None:
    data_dir, until = library_built
    server = RunningServer(data_dir).start()
    try:
        check_scenario(["--endpoint", server.endpoint], until)
        online = {key: retention(["--endpoint", server.endpoint], f"s3://{LOCKED}/{key}")
                  for key in KEYS}  # fmt: skip
    finally:
        server.stop()
    for key in KEYS:  # the admin API and the offline command show the same
        offline = retention(["--data-dir", str(data_dir)], f"s3://{LOCKED}/{key}")
        assert offline["versions"] == online[key]["versions"]


def test_retention_protected_follows_the_server_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once retention expires (the test clock moved past it), the version is no longer
    protected; the legal hold keeps its version protected regardless."""
    config = tmp_path / "s3facade.toml"
    config.write_text("[server]\ntest_clock = true\n")
    data_dir = tmp_path / "data"
    asyncio.run(build_with_registry(data_dir))
    server = RunningServer(data_dir, extra_args=["--config", str(config)]).start()
    monkeypatch.setenv("S3FACADE_ACCESS_KEY_ID", ACCESS_KEY)  # for AdminClient below
    monkeypatch.setenv("S3FACADE_SECRET_ACCESS_KEY", SECRET_KEY)
    try:
        where = ["--endpoint", server.endpoint]
        assert retention(where, f"s3://{LOCKED}/default.bin")["versions"][0]["protected"]
        AdminClient(server.endpoint).json("POST", "/-/admin/clock", {"advance": str(2 * 86400)})
        assert not retention(where, f"s3://{LOCKED}/default.bin")["versions"][0]["protected"]
        assert retention(where, f"s3://{LOCKED}/held.bin")["versions"][0]["protected"]
        assert retention(where, f"s3://{LOCKED}/request.bin")["versions"][0]["protected"] is False
        assert retention(where, f"s3://{LOCKED}/retained.bin")["versions"][0]["protected"]
    finally:
        server.stop()
