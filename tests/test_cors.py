"""CORS with real requests: rules set and read with boto3, preflights answered from them,
and CORS headers on actual responses, presigned ones included."""

from __future__ import annotations

import httpx
import pytest

from tests.access_server import (
    Clients,
    denied,
)
from tests.conftest import RunningServer

RULES = {
    "CORSRules": [
        {
            "AllowedOrigins": ["https://app.example.com", "https://*.tools.example"],
            "AllowedMethods": ["GET", "PUT"],
            "AllowedHeaders": ["content-type", "x-amz-*"],
            "ExposeHeaders": ["ETag", "x-amz-version-id"],
            "MaxAgeSeconds": 600,
        },
        {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]},
    ]
}


@pytest.fixture
def bucket(users: Clients) -> str:
    name = users.bucket(users.alice)
    users.alice.put_bucket_cors(Bucket=name, CORSConfiguration=RULES)
    users.alice.put_object(Bucket=name, Key="k", Body=b"v")
    return name


def preflight(server: RunningServer, path: str, **headers: str) -> httpx.Response:
    names = {k.replace("_", "-"): v for k, v in headers.items()}
    return httpx.options(f"{server.endpoint}{path}", headers=names)


def test_rules_round_trip_and_can_be_removed(users: Clients, bucket: str) -> None:
    got = users.alice.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got[0]["AllowedOrigins"] == RULES["CORSRules"][0]["AllowedOrigins"]
    assert got[0]["MaxAgeSeconds"] == 600 and got[1]["AllowedMethods"] == ["HEAD"]
    denied(lambda: users.bob.get_bucket_cors(Bucket=bucket))
    bad = {"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]}
    denied(
        lambda: users.alice.put_bucket_cors(Bucket=bucket, CORSConfiguration=bad),
        "InvalidRequest",
        400,
    )
    users.alice.delete_bucket_cors(Bucket=bucket)
    denied(lambda: users.alice.get_bucket_cors(Bucket=bucket), "NoSuchCORSConfiguration", 404)


def test_preflights_are_answered_from_the_rules(users: Clients, bucket: str) -> None:
    allowed = preflight(
        users.server,
        f"/{bucket}/k",
        Origin="https://a.tools.example",
        Access_Control_Request_Method="PUT",
        Access_Control_Request_Headers="Content-Type, X-Amz-Meta-Build",
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == "https://a.tools.example"
    assert allowed.headers["access-control-allow-methods"] == "GET, PUT"
    assert allowed.headers["access-control-allow-headers"] == "content-type, x-amz-meta-build"
    assert allowed.headers["access-control-max-age"] == "600"
    assert allowed.headers["access-control-expose-headers"] == "ETag, x-amz-version-id"
    wildcard = preflight(
        users.server,
        f"/{bucket}/k",
        Origin="https://elsewhere",
        Access_Control_Request_Method="HEAD",
    )
    assert wildcard.headers["access-control-allow-origin"] == "*"
    for origin, method, headers in (
        ("https://evil.example", "GET", ""),  # origin matches no rule
        ("https://app.example.com", "DELETE", ""),  # method not allowed
        ("https://app.example.com", "PUT", "authorization-extra"),  # header not allowed
    ):
        asked = {"Origin": origin, "Access_Control_Request_Method": method}
        if headers:
            asked["Access_Control_Request_Headers"] = headers
        refused = preflight(users.server, f"/{bucket}/k", **asked)
        assert refused.status_code == 403, (origin, method, refused.text)
        assert "<Code>AccessForbidden</Code>" in refused.text
        assert "<ResourceType>OBJECT</ResourceType>" in refused.text
        assert "access-control-allow-origin" not in refused.headers


def test_a_bucket_without_rules_refuses_preflights(users: Clients) -> None:
    bucket = users.bucket(users.alice)
    reply = preflight(
        users.server,
        f"/{bucket}",
        Origin="https://app.example.com",
        Access_Control_Request_Method="GET",
    )
    assert reply.status_code == 403 and "CORS is not enabled" in reply.text
    assert "<ResourceType>BUCKET</ResourceType>" in reply.text
    no_origin = preflight(users.server, f"/{bucket}", Access_Control_Request_Method="GET")
    assert no_origin.status_code == 400


def test_actual_responses_carry_cors_headers(users: Clients, bucket: str) -> None:
    url = users.alice.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    ok = httpx.get(url, headers={"Origin": "https://app.example.com"})
    assert ok.status_code == 200 and ok.content == b"v"
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    assert ok.headers["access-control-expose-headers"] == "ETag, x-amz-version-id"
    assert "Origin" in ok.headers["vary"]
    other = httpx.get(url, headers={"Origin": "https://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    plain = httpx.get(url)
    assert "access-control-allow-origin" not in plain.headers
