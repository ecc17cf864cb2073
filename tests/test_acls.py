"""ACLs and object ownership with real clients: canned ACLs and grant headers on buckets
and writes, Get/Put Bucket and Object ACLs, the AllUsers and AuthenticatedUsers groups, and
BucketOwnerEnforced turning ACLs off as on AWS."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx

from s3facade.registry.access.acl import ALL_USERS, AUTHENTICATED_USERS
from tests.access_server import (
    ALICE,
    BOB,
    Clients,
    denied,
)


def grants(acl: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (g["Grantee"].get("ID") or g["Grantee"].get("URI", ""), g["Permission"])
        for g in acl["Grants"]
    }


def test_a_new_bucket_is_private_to_its_owner(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    acl = users.alice.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"] == {"ID": ALICE.canonical_id, "DisplayName": "Alice"}
    assert grants(acl) == {(ALICE.canonical_id, "FULL_CONTROL")}
    assert acl["Grants"][0]["Grantee"]["DisplayName"] == "Alice"


def test_canned_bucket_acls_open_listing(users: Clients) -> None:
    bucket = users.bucket(users.alice, ACL="public-read")
    users.alice.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert grants(users.alice.get_bucket_acl(Bucket=bucket)) == {
        (ALICE.canonical_id, "FULL_CONTROL"),
        (ALL_USERS, "READ"),
    }
    keys = [o["Key"] for o in users.anonymous.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["k"]
    # READ on the bucket lists; it does not read objects (their ACLs decide that).
    denied(lambda: users.anonymous.get_object(Bucket=bucket, Key="k"))
    # ...but it tells a missing key from a hidden one: 404, as on AWS.
    denied(lambda: users.bob.get_object(Bucket=bucket, Key="none"), "NoSuchKey", 404)
    # Recreating one's own bucket (us-east-1) keeps its ACL.
    users.alice.create_bucket(Bucket=bucket)
    assert (ALL_USERS, "READ") in grants(users.alice.get_bucket_acl(Bucket=bucket))
    users.alice.put_bucket_acl(Bucket=bucket, ACL="private")
    denied(lambda: users.anonymous.list_objects_v2(Bucket=bucket))


def test_public_read_write_lets_anyone_write_and_the_writer_owns_it(users: Clients) -> None:
    bucket = users.bucket(users.alice, ACL="public-read-write")
    users.bob.put_object(Bucket=bucket, Key="bobs", Body=b"b")
    acl = users.bob.get_object_acl(Bucket=bucket, Key="bobs")
    assert acl["Owner"]["ID"] == BOB.canonical_id
    users.anonymous.put_object(Bucket=bucket, Key="anon", Body=b"a")
    assert users.alice.get_object(Bucket=bucket, Key="anon")["Body"].read() == b"a"


def test_grant_headers_name_users_and_groups(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    users.alice.put_bucket_acl(
        Bucket=bucket,
        GrantRead=f'id="{BOB.canonical_id}"',
        GrantFullControl=f'id="{ALICE.canonical_id}"',
        GrantReadACP=f'uri="{AUTHENTICATED_USERS}"',
    )
    assert grants(users.alice.get_bucket_acl(Bucket=bucket)) == {
        (ALICE.canonical_id, "FULL_CONTROL"),
        (BOB.canonical_id, "READ"),
        (AUTHENTICATED_USERS, "READ_ACP"),
    }
    users.alice.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert [o["Key"] for o in users.bob.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    acl = users.bob.get_bucket_acl(Bucket=bucket)  # READ_ACP through AuthenticatedUsers
    assert {g["Grantee"].get("DisplayName") for g in acl["Grants"]} >= {"Alice", "Bob"}
    denied(lambda: users.anonymous.get_bucket_acl(Bucket=bucket))
    denied(lambda: users.bob.put_bucket_acl(Bucket=bucket, ACL="public-read"))
    denied(
        lambda: users.alice.put_bucket_acl(Bucket=bucket, GrantRead='id="' + "0" * 64 + '"'),
        "InvalidArgument",
        400,
    )
    denied(
        lambda: users.alice.put_bucket_acl(Bucket=bucket, GrantRead='emailAddress="a@b.c"'),
        "UnresolvableGrantByEmailAddress",
        400,
    )


def test_object_acls_from_a_write_and_from_a_policy_document(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    users.alice.put_object(Bucket=bucket, Key="open", Body=b"o", ACL="public-read")
    users.alice.put_object(Bucket=bucket, Key="closed", Body=b"c")
    assert users.anonymous.get_object(Bucket=bucket, Key="open")["Body"].read() == b"o"
    denied(lambda: users.anonymous.get_object(Bucket=bucket, Key="closed"))
    acl = users.alice.get_object_acl(Bucket=bucket, Key="closed")
    acl_document = {
        "Owner": acl["Owner"],
        "Grants": [
            *acl["Grants"],
            {"Grantee": {"Type": "CanonicalUser", "ID": BOB.canonical_id}, "Permission": "READ"},
        ],
    }
    users.alice.put_object_acl(Bucket=bucket, Key="closed", AccessControlPolicy=acl_document)
    assert users.bob.get_object(Bucket=bucket, Key="closed")["Body"].read() == b"c"
    assert (BOB.canonical_id, "READ") in grants(
        users.alice.get_object_acl(Bucket=bucket, Key="closed")
    )
    # An ACL document may not hand the object to another owner.
    stolen = {**acl_document, "Owner": {"ID": BOB.canonical_id}}
    denied(
        lambda: users.alice.put_object_acl(Bucket=bucket, Key="closed", AccessControlPolicy=stolen)
    )
    # A copy and a multipart upload take the ACL they ask for.
    users.alice.copy_object(
        Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "closed"},
        ACL="public-read",
    )  # fmt: skip
    assert users.anonymous.get_object(Bucket=bucket, Key="copy")["Body"].read() == b"c"
    upload = users.alice.create_multipart_upload(Bucket=bucket, Key="mp", ACL="public-read")
    part = users.alice.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1, Body=b"m"
    )
    users.alice.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )  # fmt: skip
    assert users.anonymous.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"m"
    # Overwriting an object with a plain write leaves it private again.
    users.alice.put_object(Bucket=bucket, Key="open", Body=b"o2")
    denied(lambda: users.anonymous.get_object(Bucket=bucket, Key="open"))


def test_versions_keep_their_own_acls(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    users.alice.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = users.alice.put_object(Bucket=bucket, Key="k", Body=b"1", ACL="public-read")
    users.alice.put_object(Bucket=bucket, Key="k", Body=b"2")
    denied(lambda: users.anonymous.get_object(Bucket=bucket, Key="k"))
    old = users.anonymous.get_object(Bucket=bucket, Key="k", VersionId=first["VersionId"])
    assert old["Body"].read() == b"1"


def test_bucket_owner_enforced_turns_acls_off(users: Clients) -> None:
    bucket = users.bucket(users.alice, ObjectOwnership="BucketOwnerEnforced")
    controls = users.alice.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert controls == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    denied(
        lambda: users.alice.put_bucket_acl(Bucket=bucket, ACL="public-read"),
        "AccessControlListNotSupported",
        400,
    )
    denied(
        lambda: users.alice.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="public-read"),
        "AccessControlListNotSupported",
        400,
    )
    users.alice.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="bucket-owner-full-control")
    users.alice.delete_bucket_ownership_controls(Bucket=bucket)
    denied(
        lambda: users.alice.get_bucket_ownership_controls(Bucket=bucket),
        "OwnershipControlsNotFoundError",
        404,
    )
    # With ACLs on again, a public ACL blocks enforcing ownership.
    users.alice.put_bucket_acl(Bucket=bucket, ACL="public-read")
    denied(
        lambda: users.alice.put_bucket_ownership_controls(
            Bucket=bucket,
            OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        ),
        "InvalidBucketAclWithObjectOwnership",
        400,
    )


def test_malformed_acl_documents_change_nothing(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    url = users.alice.generate_presigned_url(
        "put_bucket_acl", Params={"Bucket": bucket, "AccessControlPolicy": {}}
    )
    for body in (b"<nope", b"<AccessControlPolicy/>", b"<Other/>"):
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        reply = httpx.put(url, content=body, headers={"Content-MD5": md5})
        assert reply.status_code == 400 and "<Code>MalformedACLError</Code>" in reply.text
    assert grants(users.alice.get_bucket_acl(Bucket=bucket)) == {
        (ALICE.canonical_id, "FULL_CONTROL")
    }
