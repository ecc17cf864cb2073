"""Access control with real clients: each user owns its buckets; bucket policies, the
public access block, anonymous callers, presigned URLs, governance bypass as a permission,
and refused requests kept as evidence."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from s3facade.admin_client import AdminClient
from tests.access_server import (
    ALICE,
    BOB,
    Clients,
    denied,
)
from tests.conftest import ACCESS_KEY, SECRET_KEY


def policy(bucket: str, *statements: dict[str, Any]) -> str:
    for statement in statements:
        statement.setdefault("Effect", "Allow")
        statement.setdefault("Principal", "*")
        statement.setdefault("Resource", f"arn:aws:s3:::{bucket}/*")
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_a_user_may_not_touch_another_users_bucket(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    users.alice.put_object(Bucket=bucket, Key="k", Body=b"alice's")
    bob = users.bob
    for call in (
        lambda: bob.get_object(Bucket=bucket, Key="k"),
        lambda: bob.put_object(Bucket=bucket, Key="k", Body=b"bob's"),
        lambda: bob.delete_object(Bucket=bucket, Key="k"),
        lambda: bob.list_objects_v2(Bucket=bucket),
        lambda: bob.list_object_versions(Bucket=bucket),
        lambda: bob.delete_bucket(Bucket=bucket),
        lambda: bob.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
        ),
        lambda: bob.get_bucket_tagging(Bucket=bucket),
        lambda: bob.put_bucket_policy(Bucket=bucket, Policy=policy(bucket, {"Action": "s3:*"})),
        lambda: bob.get_bucket_acl(Bucket=bucket),
        lambda: bob.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k"}),
        lambda: bob.create_multipart_upload(Bucket=bucket, Key="m"),
    ):
        denied(call)
    denied(lambda: bob.head_object(Bucket=bucket, Key="k"))
    denied(lambda: bob.head_bucket(Bucket=bucket))
    assert users.alice.get_object(Bucket=bucket, Key="k")["Body"].read() == b"alice's"
    # The admin acts as every bucket's owner.
    assert users.admin.get_object(Bucket=bucket, Key="k")["Body"].read() == b"alice's"
    # A bucket that does not exist is NoSuchBucket for anyone, as on AWS.
    denied(lambda: bob.list_objects_v2(Bucket="no-such-bucket-here"), "NoSuchBucket", 404)


def test_copying_needs_the_right_to_read_the_source(users: Clients) -> None:
    alices = users.bucket(users.alice)
    bobs = users.bucket(users.bob)
    users.alice.put_object(Bucket=alices, Key="secret", Body=b"s")
    denied(
        lambda: users.bob.copy_object(
            Bucket=bobs, Key="stolen", CopySource={"Bucket": alices, "Key": "secret"}
        )
    )
    denied(lambda: users.bob.head_object(Bucket=bobs, Key="stolen"), "404", 404)


def test_list_buckets_shows_the_callers_own_with_its_ids(users: Clients) -> None:
    alices, bobs = users.bucket(users.alice), users.bucket(users.bob)
    listed = users.bob.list_buckets()
    names = {b["Name"] for b in listed["Buckets"]}
    assert bobs in names and alices not in names
    assert listed["Owner"] == {"ID": BOB.canonical_id, "DisplayName": "Bob"}
    denied(lambda: users.bob.create_bucket(Bucket=alices), "BucketAlreadyExists", 409)
    denied(lambda: users.anonymous.list_buckets())


def test_refusals_are_recorded_and_anonymous_ones_counted(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    admin = AdminClient(users.server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))
    metrics = httpx.get(f"{users.server.endpoint}/-/metrics").text
    before = _anonymous_denials(metrics)
    denied(lambda: users.bob.get_object(Bucket=bucket, Key="missing"))
    denied(lambda: users.anonymous.list_objects_v2(Bucket=bucket))
    events = admin.json("GET", "/-/admin/log", {"bucket": bucket, "oldest": "true"})["events"]
    refusals = [e for e in events if e["type"] == "AccessDenied"]
    assert len(refusals) == 1, refusals  # the anonymous refusal is not in the log
    data = refusals[0]["data"]
    assert data["principal"] == BOB.access_key
    assert data["action"] == "s3:GetObject"
    assert data["resource"] == f"arn:aws:s3:::{bucket}/missing"
    assert data["reason"]
    after = _anonymous_denials(httpx.get(f"{users.server.endpoint}/-/metrics").text)
    assert after == before + 1


def _anonymous_denials(metrics: str) -> float:
    line = next(x for x in metrics.splitlines() if x.startswith("s3facade_anonymous_denied_total"))
    return float(line.split()[-1])


def test_a_policy_grants_by_prefix_and_an_explicit_deny_wins(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    for key in ("shared/a", "shared/secret", "private/b"):
        users.alice.put_object(Bucket=bucket, Key=key, Body=key.encode())
    users.alice.put_bucket_policy(
        Bucket=bucket,
        Policy=policy(
            bucket,
            {
                "Principal": {"AWS": BOB.arn},
                "Action": ["s3:GetObject"],
                "Resource": f"arn:aws:s3:::{bucket}/shared/*",
            },
            {
                "Principal": {"CanonicalUser": BOB.canonical_id},
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": "shared/*"}},
            },
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/shared/secret",
            },
        ),
    )
    assert users.bob.get_object(Bucket=bucket, Key="shared/a")["Body"].read() == b"shared/a"
    denied(lambda: users.bob.get_object(Bucket=bucket, Key="private/b"))
    denied(lambda: users.bob.get_object(Bucket=bucket, Key="shared/secret"))
    # The Deny binds the owner too (only the policy calls stay the owner's).
    denied(lambda: users.alice.get_object(Bucket=bucket, Key="shared/secret"))
    listed = users.bob.list_objects_v2(Bucket=bucket, Prefix="shared/")
    assert [o["Key"] for o in listed["Contents"]] == ["shared/a", "shared/secret"]
    denied(lambda: users.bob.list_objects_v2(Bucket=bucket, Prefix="private/"))
    denied(lambda: users.bob.put_object(Bucket=bucket, Key="shared/new", Body=b"x"))
    # A missing key is 403: Bob's s3:ListBucket holds only for listings under shared/.
    denied(lambda: users.bob.get_object(Bucket=bucket, Key="shared/none"))
    denied(lambda: users.anonymous.get_object(Bucket=bucket, Key="shared/a"))


def test_policy_documents_round_trip_and_bad_ones_are_malformed(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    denied(lambda: users.alice.get_bucket_policy(Bucket=bucket), "NoSuchBucketPolicy", 404)
    denied(lambda: users.alice.get_bucket_policy_status(Bucket=bucket), "NoSuchBucketPolicy", 404)
    text = policy(bucket, {"Principal": {"AWS": BOB.arn}, "Action": "s3:GetObject"})
    users.alice.put_bucket_policy(Bucket=bucket, Policy=text)
    assert users.alice.get_bucket_policy(Bucket=bucket)["Policy"] == text
    status = users.alice.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]
    assert status["IsPublic"] is False
    for bad in (
        "not json",
        json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}),
        policy(bucket, {"Action": "s3:GetObject", "Resource": "arn:aws:s3:::other-bucket/*"}),
        policy(bucket, {"Action": "ec2:RunInstances"}),
        policy(bucket, {"Action": "s3:GetObject", "Condition": {"Bogus": {"aws:SourceIp": "1"}}}),
        policy(bucket, *({"Sid": f"s{n}", "Action": "s3:GetObject"} for n in range(300))),
    ):
        denied(lambda bad=bad: users.alice.put_bucket_policy(Bucket=bucket, Policy=bad),
               "MalformedPolicy", 400)  # fmt: skip
    assert users.alice.get_bucket_policy(Bucket=bucket)["Policy"] == text  # unchanged
    public = policy(bucket, {"Action": "s3:GetObject"})
    users.alice.put_bucket_policy(Bucket=bucket, Policy=public)
    assert users.alice.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"]
    users.alice.delete_bucket_policy(Bucket=bucket)
    denied(lambda: users.alice.get_bucket_policy(Bucket=bucket), "NoSuchBucketPolicy", 404)


def test_anonymous_callers_get_what_a_policy_grants(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    users.alice.put_object(Bucket=bucket, Key="pub/file", Body=b"hello")
    denied(lambda: users.anonymous.get_object(Bucket=bucket, Key="pub/file"))
    users.alice.put_bucket_policy(
        Bucket=bucket,
        Policy=policy(
            bucket,
            {"Action": ["s3:GetObject"]},
            {
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{bucket}/drop/*",
                "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}},
            },
        ),
    )
    anonymous = users.anonymous
    assert anonymous.get_object(Bucket=bucket, Key="pub/file")["Body"].read() == b"hello"
    assert anonymous.head_object(Bucket=bucket, Key="pub/file")["ContentLength"] == 5
    assert httpx.get(f"{users.server.endpoint}/{bucket}/pub/file").content == b"hello"
    # No s3:ListBucket: a missing key is 403, and listing is refused.
    denied(lambda: anonymous.get_object(Bucket=bucket, Key="pub/none"))
    denied(lambda: anonymous.list_objects_v2(Bucket=bucket))
    anonymous.put_object(Bucket=bucket, Key="drop/in", Body=b"dropped")
    assert users.alice.get_object(Bucket=bucket, Key="drop/in")["Body"].read() == b"dropped"
    denied(lambda: anonymous.put_object(Bucket=bucket, Key="elsewhere", Body=b"x"))
    denied(lambda: anonymous.delete_object(Bucket=bucket, Key="pub/file"))
    # A policy that also grants listing: a missing key is 404, as on AWS.
    users.alice.put_bucket_policy(
        Bucket=bucket,
        Policy=policy(
            bucket,
            {"Action": "s3:GetObject"},
            {"Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"},
        ),
    )
    denied(lambda: anonymous.get_object(Bucket=bucket, Key="pub/none"), "NoSuchKey", 404)
    keys = [o["Key"] for o in anonymous.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["drop/in", "pub/file"]


def test_conditions_on_transport_time_and_tags(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    users.alice.put_object(Bucket=bucket, Key="blue", Body=b"b", Tagging="colour=blue")
    users.alice.put_object(Bucket=bucket, Key="red", Body=b"r", Tagging="colour=red")
    past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    users.alice.put_bucket_policy(
        Bucket=bucket,
        Policy=policy(
            bucket,
            {
                "Principal": {"AWS": BOB.arn},
                "Action": "s3:GetObject",
                "Condition": {
                    "StringEquals": {"s3:ExistingObjectTag/colour": "blue"},
                    "DateGreaterThan": {"aws:CurrentTime": past},
                },
            },
            {
                "Principal": {"AWS": BOB.arn},
                "Action": "s3:PutObject",
                "Condition": {"StringEquals": {"s3:RequestObjectTag/colour": "green"}},
            },
            {
                "Effect": "Deny",
                "Principal": {"AWS": BOB.arn},
                "Action": "s3:PutObject",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}, "StringLike": {
                    "s3:x-amz-acl": "public-*"}},
            },
        ),
    )  # fmt: skip
    assert users.bob.get_object(Bucket=bucket, Key="blue")["Body"].read() == b"b"
    denied(lambda: users.bob.get_object(Bucket=bucket, Key="red"))
    users.bob.put_object(Bucket=bucket, Key="g", Body=b"g", Tagging="colour=green")
    denied(lambda: users.bob.put_object(Bucket=bucket, Key="y", Body=b"y", Tagging="colour=y"))
    denied(
        lambda: users.bob.put_object(
            Bucket=bucket, Key="p", Body=b"p", Tagging="colour=green", ACL="public-read"
        )
    )


def test_public_access_block(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    users.alice.put_object(Bucket=bucket, Key="k", Body=b"v")
    denied(
        lambda: users.alice.get_public_access_block(Bucket=bucket),
        "NoSuchPublicAccessBlockConfiguration",
        404,
    )
    config = {
        "BlockPublicAcls": False,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": False,
    }
    users.alice.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=config)
    got = users.alice.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert got == config
    public = policy(bucket, {"Action": "s3:GetObject"})
    denied(lambda: users.alice.put_bucket_policy(Bucket=bucket, Policy=public))
    denied(lambda: users.alice.get_bucket_policy(Bucket=bucket), "NoSuchBucketPolicy", 404)
    # RestrictPublicBuckets: a public policy already in place grants nobody outside.
    users.alice.delete_public_access_block(Bucket=bucket)
    users.alice.put_bucket_policy(Bucket=bucket, Policy=public)
    assert users.anonymous.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    users.alice.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={**config, "RestrictPublicBuckets": True},
    )
    denied(lambda: users.anonymous.get_object(Bucket=bucket, Key="k"))
    status = users.alice.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]
    assert status["IsPublic"] is False
    # BlockPublicAcls: a public ACL is refused, on the bucket and on a write.
    users.alice.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration={**config, "BlockPublicAcls": True}
    )
    denied(lambda: users.alice.put_bucket_acl(Bucket=bucket, ACL="public-read"))
    denied(lambda: users.alice.put_object(Bucket=bucket, Key="p", Body=b"p", ACL="public-read"))
    denied(lambda: users.alice.head_object(Bucket=bucket, Key="p"), "404", 404)


def test_presigned_urls_act_with_their_signers_rights(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    users.alice.put_object(Bucket=bucket, Key="k", Body=b"v")
    params = {"Bucket": bucket, "Key": "k"}
    by_alice = users.alice.generate_presigned_url("get_object", Params=params)
    by_bob = users.bob.generate_presigned_url("get_object", Params=params)
    assert httpx.get(by_alice).content == b"v"
    refused = httpx.get(by_bob)
    assert refused.status_code == 403 and "<Code>AccessDenied</Code>" in refused.text


def test_owners_bypass_governance_on_their_own_buckets_others_need_a_grant(
    users: Clients,
) -> None:
    bucket = users.bucket(users.bob, ObjectLockEnabledForBucket=True)
    until = datetime.now(UTC) + timedelta(days=1)
    version = users.bob.put_object(
        Bucket=bucket,
        Key="k",
        Body=b"v",
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=until,
    )["VersionId"]

    def delete(client: Any) -> Any:
        return client.delete_object(
            Bucket=bucket, Key="k", VersionId=version, BypassGovernanceRetention=True
        )

    # Alice may delete versions by policy, but may not bypass: the lock holds.
    users.bob.put_bucket_policy(
        Bucket=bucket,
        Policy=policy(
            bucket, {"Principal": {"AWS": ALICE.arn}, "Action": "s3:DeleteObjectVersion"}
        ),
    )
    denied(lambda: delete(users.alice))
    # Nor may she lift or shorten the retention of Bob's object, or its legal hold.
    denied(
        lambda: users.alice.put_object_retention(
            Bucket=bucket, Key="k", VersionId=version, Retention={"Mode": "GOVERNANCE",
            "RetainUntilDate": until - timedelta(hours=1)}, BypassGovernanceRetention=True)
    )  # fmt: skip
    denied(
        lambda: users.alice.put_object_legal_hold(
            Bucket=bucket, Key="k", VersionId=version, LegalHold={"Status": "ON"}
        )
    )
    # The owner bypasses on its own bucket without any flag in the config.
    users.bob.put_object(Bucket=bucket, Key="k2", Body=b"w", ObjectLockMode="GOVERNANCE",
                         ObjectLockRetainUntilDate=until)  # fmt: skip
    version2 = users.bob.list_object_versions(Bucket=bucket, Prefix="k2")["Versions"][0]
    users.bob.delete_object(
        Bucket=bucket, Key="k2", VersionId=version2["VersionId"], BypassGovernanceRetention=True
    )
    # A policy grant of s3:BypassGovernanceRetention lets Alice bypass too.
    users.bob.put_bucket_policy(
        Bucket=bucket,
        Policy=policy(
            bucket,
            {
                "Principal": {"AWS": ALICE.arn},
                "Action": ["s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"],
            },
        ),
    )
    delete(users.alice)
    with pytest.raises(ClientError):
        users.bob.head_object(Bucket=bucket, Key="k", VersionId=version)


def test_a_grant_to_write_is_no_grant_to_lock(users: Clients) -> None:
    """Lock headers on a write need s3:PutObjectRetention / s3:PutObjectLegalHold too:
    otherwise a grantee could make the owner's bucket hold its data until 2999."""
    bucket = users.bucket(users.alice, ObjectLockEnabledForBucket=True)
    grant = {"Principal": {"AWS": BOB.arn}, "Action": ["s3:PutObject"]}
    users.alice.put_bucket_policy(Bucket=bucket, Policy=policy(bucket, grant))
    forever = datetime(2999, 1, 1, tzinfo=UTC)
    lock = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": forever}
    denied(lambda: users.bob.put_object(Bucket=bucket, Key="k", Body=b"v", **lock))
    denied(lambda: users.bob.put_object(Bucket=bucket, Key="k", Body=b"v",
                                         ObjectLockLegalHoldStatus="ON"))  # fmt: skip
    denied(lambda: users.bob.create_multipart_upload(Bucket=bucket, Key="m", **lock))
    assert users.alice.list_objects_v2(Bucket=bucket)["KeyCount"] == 0  # nothing written
    users.bob.put_object(Bucket=bucket, Key="plain", Body=b"v")  # writing is granted
    soon = datetime.now(UTC) + timedelta(days=1)
    grant["Action"] = ["s3:PutObject", "s3:PutObjectRetention"]
    users.alice.put_bucket_policy(Bucket=bucket, Policy=policy(bucket, grant))
    users.bob.put_object(Bucket=bucket, Key="locked", Body=b"v", ObjectLockMode="GOVERNANCE",
                         ObjectLockRetainUntilDate=soon)  # fmt: skip
    assert (
        users.alice.get_object_retention(Bucket=bucket, Key="locked")["Retention"]["Mode"]
        == "GOVERNANCE"
    )


def test_compliance_is_never_bypassed_even_by_the_owner(users: Clients) -> None:
    bucket = users.bucket(users.bob, ObjectLockEnabledForBucket=True)
    until = datetime.now(UTC) + timedelta(days=1)
    version = users.bob.put_object(
        Bucket=bucket, Key="k", Body=b"v", ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )["VersionId"]  # fmt: skip
    denied(
        lambda: users.bob.delete_object(
            Bucket=bucket, Key="k", VersionId=version, BypassGovernanceRetention=True
        )
    )
    assert users.bob.head_object(Bucket=bucket, Key="k", VersionId=version)["ContentLength"] == 1


def test_delete_objects_refuses_key_by_key(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    for key in ("bob/1", "alice/1"):
        users.alice.put_object(Bucket=bucket, Key=key, Body=b"x")
    users.alice.put_bucket_policy(
        Bucket=bucket,
        Policy=policy(
            bucket,
            {
                "Principal": {"AWS": BOB.arn},
                "Action": "s3:DeleteObject",
                "Resource": f"arn:aws:s3:::{bucket}/bob/*",
            },
        ),
    )
    result = users.bob.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "bob/1"}, {"Key": "alice/1"}]}
    )
    assert [d["Key"] for d in result["Deleted"]] == ["bob/1"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("alice/1", "AccessDenied")]
    keys = [o["Key"] for o in users.alice.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["alice/1"]


def test_a_flood_of_refusals_is_counted_not_written_one_by_one(users: Clients) -> None:
    """A signed user with no right to write cannot grow the log at request speed: past its
    budget, its refusals are counted, and the count lands in its next recorded refusal."""
    bucket = users.bucket(users.alice)
    keys = [{"Key": f"k{n}"} for n in range(1000)]
    result = users.bob.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    assert len(result["Errors"]) == 1000
    assert {e["Code"] for e in result["Errors"]} == {"AccessDenied"}
    time.sleep(1.1)  # the budget refills (one a second)
    denied(lambda: users.bob.get_object(Bucket=bucket, Key="one-more"))
    admin = AdminClient(users.server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))
    events = admin.json("GET", "/-/admin/log", {"bucket": bucket, "oldest": "true"})["events"]
    refusals = [e["data"] for e in events if e["type"] == "AccessDenied"]
    assert 1 < len(refusals) < 500, len(refusals)  # the burst (less what earlier tests used)
    assert refusals[-1]["resource"].endswith("/one-more")
    unrecorded = sum(refusal.get("suppressed", 0) for refusal in refusals)
    assert len(refusals) + unrecorded == 1001  # every refusal is accounted for
    metrics = httpx.get(f"{users.server.endpoint}/-/metrics").text
    assert f"s3facade_denials_unrecorded_total {float(unrecorded)}" in metrics
