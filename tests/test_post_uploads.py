"""Browser POST uploads driven by `requests` with forms from boto3's generate_presigned_post
(SigV4, and SigV2 with signature_version "s3"): conditions, statuses, redirects, the
signer's rights, and every violated condition refused with nothing stored."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from lxml import etree

from s3facade.admin_client import AdminClient
from tests.access_server import (
    ALICE,
    BOB,
    SECRETS,
    Clients,
)
from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, RunningServer


@pytest.fixture
def bucket(users: Clients) -> str:
    return users.bucket(users.alice)


def presigned_post(server: RunningServer, user: Any, bucket: str, **kwargs: Any) -> Any:
    config = kwargs.pop("config", None)
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=user.access_key,
        aws_secret_access_key=SECRETS[user.access_key],
        region_name=REGION,
        config=config,
    )
    return client.generate_presigned_post(Bucket=bucket, **kwargs)


def post(form: Any, body: bytes, filename: str = "local.bin", **fields: str) -> Any:
    data = {**form["fields"], **fields}
    return requests.post(form["url"], data=data, files={"file": (filename, body)}, timeout=30)


def stored(users: Clients, bucket: str, key: str) -> bytes | None:
    try:
        body: bytes = users.alice.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError:
        return None
    return body


def test_a_signed_form_uploads_with_its_fields_and_provenance(users: Clients, bucket: str) -> None:
    form = presigned_post(
        users.server,
        ALICE,
        bucket,
        Key="uploads/${filename}",
        Fields={"Content-Type": "text/plain", "x-amz-meta-build": "42"},
        Conditions=[
            ["starts-with", "$key", "uploads/"],
            {"Content-Type": "text/plain"},
            {"x-amz-meta-build": "42"},
            ["content-length-range", 1, 1024],
        ],
    )
    reply = post(form, b"hello from a form", filename="report.txt")
    assert reply.status_code == 204, reply.text
    assert reply.headers["ETag"] == f'"{hashlib.md5(b"hello from a form").hexdigest()}"'
    head = users.alice.head_object(Bucket=bucket, Key="uploads/report.txt")
    assert head["ContentType"] == "text/plain" and head["Metadata"] == {"build": "42"}
    assert stored(users, bucket, "uploads/report.txt") == b"hello from a form"
    admin = AdminClient(users.server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))
    events = admin.json("GET", "/-/admin/log", {"bucket": bucket, "oldest": "true"})["events"]
    written = [e for e in events if e["type"] == "ObjectWritten"]
    assert written[-1]["data"]["principal"] == ALICE.access_key
    assert written[-1]["data"]["sha256"] == hashlib.sha256(b"hello from a form").hexdigest()


def test_statuses_and_redirects(users: Clients, bucket: str) -> None:
    form = presigned_post(
        users.server, ALICE, bucket, Key="k201",
        Fields={"success_action_status": "201"},
        Conditions=[{"success_action_status": "201"}],
    )  # fmt: skip
    reply = post(form, b"x")
    assert reply.status_code == 201
    document = etree.fromstring(reply.content)
    assert [c.text for c in document if etree.QName(c).localname == "Key"] == ["k201"]
    target = "https://app.example.com/done?from=form"
    form = presigned_post(
        users.server, ALICE, bucket, Key="kredirect",
        Fields={"success_action_redirect": target},
        Conditions=[{"success_action_redirect": target}],
    )  # fmt: skip
    data = form["fields"]
    reply = requests.post(
        form["url"], data=data, files={"file": ("f", b"y")}, allow_redirects=False, timeout=30
    )
    assert reply.status_code == 303
    location = urlsplit(reply.headers["Location"])
    assert location.netloc == "app.example.com"
    query = parse_qs(location.query)
    assert query["from"] == ["form"] and query["key"] == ["kredirect"]
    assert query["bucket"] == [bucket]


def test_sigv2_forms_work_too(users: Clients, bucket: str) -> None:
    form = presigned_post(
        users.server, ALICE, bucket, Key="v2", config=Config(signature_version="s3")
    )
    assert "AWSAccessKeyId" in form["fields"] and "signature" in form["fields"]
    reply = post(form, b"v2 body")
    assert reply.status_code == 204, reply.text
    assert stored(users, bucket, "v2") == b"v2 body"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"key": "elsewhere/x"}, "AccessDenied"),  # starts-with fails
        ({"Content-Type": "image/png"}, "AccessDenied"),  # eq fails
        ({"x-amz-meta-extra": "1"}, "AccessDenied"),  # a field no condition covers
        ({"policy": "eyJleHBpcmF0aW9uIjoiMjAwMC0wMS0wMVQwMDowMDowMFoiLCJjb25kaXRpb25zIjpbXX0="},
         "SignatureDoesNotMatch"),  # another policy than the signed one
    ],
)  # fmt: skip
def test_violated_conditions_store_nothing(
    users: Clients, bucket: str, change: dict[str, str], code: str
) -> None:
    form = presigned_post(
        users.server,
        ALICE,
        bucket,
        Key="in/${filename}",
        Fields={"Content-Type": "text/plain"},
        Conditions=[["starts-with", "$key", "in/"], {"Content-Type": "text/plain"}],
    )
    reply = post(form, b"data", filename="f.txt", **change)
    assert reply.status_code in (400, 403), reply.text
    assert f"<Code>{code}</Code>" in reply.text
    assert stored(users, bucket, "in/f.txt") is None
    assert stored(users, bucket, change.get("key", "in/f.txt")) is None


def test_length_limits_and_expiry(users: Clients, bucket: str) -> None:
    form = presigned_post(
        users.server, ALICE, bucket, Key="sized",
        Conditions=[["content-length-range", 10, 1024 * 1024]],
    )  # fmt: skip
    small = post(form, b"tiny")
    assert small.status_code == 400 and "<Code>EntityTooSmall</Code>" in small.text
    large = post(form, os.urandom(2 * 1024 * 1024))
    assert large.status_code == 400 and "<Code>EntityTooLarge</Code>" in large.text
    assert stored(users, bucket, "sized") is None
    expired = presigned_post(users.server, ALICE, bucket, Key="late", ExpiresIn=-60)
    reply = post(expired, b"late")
    assert reply.status_code == 403 and "Policy expired" in reply.text
    assert stored(users, bucket, "late") is None


def test_a_form_acts_with_its_signers_rights(users: Clients, bucket: str) -> None:
    form = presigned_post(users.server, BOB, bucket, Key="from-bob")
    reply = post(form, b"b")
    assert reply.status_code == 403 and "<Code>AccessDenied</Code>" in reply.text
    assert stored(users, bucket, "from-bob") is None
    anonymous = {"url": f"{users.server.endpoint}/{bucket}", "fields": {"key": "anon"}}
    assert post(anonymous, b"a").status_code == 403
    open_bucket = users.bucket(users.alice, ACL="public-read-write")
    reply = post({"url": f"{users.server.endpoint}/{open_bucket}", "fields": {"key": "anon"}}, b"a")
    assert reply.status_code == 204, reply.text
    assert users.alice.get_object(Bucket=open_bucket, Key="anon")["Body"].read() == b"a"


def test_a_large_file_streams_through(users: Clients, bucket: str) -> None:
    body = os.urandom(24 * 1024 * 1024 + 17)
    form = presigned_post(users.server, ALICE, bucket, Key="big")
    reply = post(form, body)
    assert reply.status_code == 204, reply.text
    head = users.alice.head_object(Bucket=bucket, Key="big")
    assert head["ContentLength"] == len(body)
    assert stored(users, bucket, "big") == body


def test_policy_conditions_see_the_forms_signer_and_auth_type(users: Clients, bucket: str) -> None:
    """The request is unsigned; its form is not: aws:username is the form's signer and
    s3:authtype is POST, as AWS evaluates them."""
    resource = f"arn:aws:s3:::{bucket}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": [BOB.arn]},
                "Action": "s3:PutObject",
                "Resource": f"{resource}/*",
                "Condition": {"StringEquals": {"aws:username": "Bob"}},
            },
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"{resource}/no-forms/*",
                "Condition": {"StringEquals": {"s3:authtype": "POST"}},
            },
        ],
    }
    users.alice.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    reply = post(presigned_post(users.server, BOB, bucket, Key="from-bob"), b"by form")
    assert reply.status_code == 204, reply.text
    assert stored(users, bucket, "from-bob") == b"by form"
    refused = post(presigned_post(users.server, ALICE, bucket, Key="no-forms/x"), b"x")
    assert refused.status_code == 403 and "<Code>AccessDenied</Code>" in refused.text
    assert stored(users, bucket, "no-forms/x") is None
    users.alice.put_object(Bucket=bucket, Key="no-forms/x", Body=b"signed PUT")  # REST-HEADER
    assert stored(users, bucket, "no-forms/x") == b"signed PUT"
