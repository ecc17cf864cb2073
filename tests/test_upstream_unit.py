"""Unit tests of the upstream backend's parts: SigV4 signing, retry policy, addressing,
configuration (catalog, placement, quick-start flags). No network."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3facade.backends import BackendSet
from s3facade.backends.catalog import ConfigError, build_backend_set, upstream_config
from s3facade.backends.local import LocalCAS
from s3facade.backends.retry import Backoff, RetryPolicy, is_retryable
from s3facade.backends.s3client import Endpoint
from s3facade.backends.signing import EMPTY_SHA256, Signer, canonical_query, uri_encode
from s3facade.backends.upstream import MiB, UpstreamCAS, UpstreamConfig
from s3facade.config import load_config
from tests.upstream_services import config_file

# The worked examples of the S3 SigV4 documentation ("Signature Calculations for the
# Authorization Header: Transferring Payload in a Single Chunk").
AWS_KEY, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_DATE = datetime(2013, 5, 24, tzinfo=UTC)
EXAMPLE_HOST = "examplebucket.s3.amazonaws.com"


def signature(headers: dict[str, str]) -> str:
    return headers["authorization"].rsplit("Signature=", 1)[1]


def test_signer_matches_the_aws_documentation_examples() -> None:
    signer = Signer(AWS_KEY, AWS_SECRET, "us-east-1")
    get = signer.sign(
        "GET", "/test.txt", "", {"host": EXAMPLE_HOST, "range": "bytes=0-9"}, EMPTY_SHA256, AWS_DATE
    )
    assert signature(get) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date," in get["authorization"]
    body_hash = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
    put = signer.sign(
        "PUT",
        "/" + uri_encode("test$file.text"),
        "",
        {
            "host": EXAMPLE_HOST,
            "date": "Fri, 24 May 2013 00:00:00 GMT",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
        },
        body_hash,
        AWS_DATE,
    )
    assert signature(put) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    query = canonical_query([("max-keys", "2"), ("prefix", "J")])
    listing = signer.sign("GET", "/", query, {"host": EXAMPLE_HOST}, EMPTY_SHA256, AWS_DATE)
    assert signature(listing) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    query = canonical_query([("lifecycle", "")])
    lifecycle = signer.sign("GET", "/", query, {"host": EXAMPLE_HOST}, EMPTY_SHA256, AWS_DATE)
    expected = "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
    assert signature(lifecycle) == expected


def test_signer_agrees_with_botocore_on_odd_keys_and_queries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = Endpoint("http://127.0.0.1:7480", "bkt", "eu-west-3")
    key = "pre fix/ü+%?&=~*/sha256/ab"
    _, host, path = endpoint.locate(key)
    query = canonical_query([("uploadId", "a/b+c=="), ("partNumber", "7")])
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    signer = Signer("AKID", "secret", "eu-west-3")
    ours = signer.sign("PUT", path, query, {"host": host}, EMPTY_SHA256, now)
    request = AWSRequest("PUT", f"http://{host}{path}?{query}")
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: now.replace(tzinfo=None))
    S3SigV4Auth(Credentials("AKID", "secret"), "s3", "eu-west-3").add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]


def test_addressing_styles() -> None:
    path_style = Endpoint("https://rgw.example:7480", "art", addressing_style="path")
    assert path_style.locate("a b/c") == ("https", "rgw.example:7480", "/art/a%20b/c")
    assert path_style.locate(None) == ("https", "rgw.example:7480", "/art")
    virtual = Endpoint("https://s3.example", "art", addressing_style="virtual")
    assert virtual.locate("k") == ("https", "art.s3.example", "/k")
    assert virtual.copy_source("x/y z") == "/art/x/y%20z"
    for bad in ["rgw:7480", "ftp://x", "http://x/path", "http://x?q=1"]:
        with pytest.raises(ValueError):
            Endpoint(bad, "b")


def test_backoff_is_jittered_exponential_and_bounded_in_time() -> None:
    policy = RetryPolicy(max_attempts=100, base_delay=0.1, max_delay=1.0, deadline=5.0)
    assert [policy.delay(n, rand=lambda: 1.0) for n in range(1, 7)] == [
        0.1,
        0.2,
        0.4,
        0.8,
        1.0,
        1.0,
    ]
    assert policy.delay(3, rand=lambda: 0.0) == 0.0
    now = [0.0]
    backoff = Backoff(policy, clock=lambda: now[0])
    delays = []
    while (delay := backoff.next_delay()) is not None:
        delays.append(delay)
        now[0] += delay + 0.5  # each failed attempt itself takes half a second
    assert now[0] <= policy.deadline + 1.0 + 0.5
    assert len(delays) < 100
    capped = Backoff(RetryPolicy(max_attempts=3, deadline=60.0))
    assert [capped.next_delay() is not None for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    ("status", "code", "retry"),
    [
        (503, "SlowDown", True),
        (500, "InternalError", True),
        (200, "InternalError", True),  # an <Error> inside a 200 CompleteMultipartUpload
        (400, "RequestTimeout", True),
        (502, None, True),
        (429, None, True),
        (403, "AccessDenied", False),
        (404, "NoSuchBucket", False),
        (400, "InvalidPart", False),
    ],
)
def test_what_is_retried(status: int, code: str | None, retry: bool) -> None:
    assert is_retryable(status, code) is retry


def test_catalog_builds_backends_and_placement(tmp_path: Path) -> None:
    tables = {
        "ceph": {
            "type": "s3",
            "endpoint": "https://rgw.example:7480/",
            "bucket": "artifacts",
            "prefix": "facade",
            "addressing_style": "virtual",
            "verify_tls": False,
            "part_size_mib": 16,
            "upload_concurrency": 8,
            "retry_deadline_seconds": 12,
        },
        "archive": {"type": "local", "root": str(tmp_path / "archive")},
    }
    env = {"S3FACADE_UPSTREAM_ACCESS_KEY_ID": "k", "S3FACADE_UPSTREAM_SECRET_ACCESS_KEY": "s"}
    placement = {"default": "ceph", "buckets": {"scratch-*": "local", "old-?": "archive"}}
    backends = build_backend_set(tables, placement, tmp_path, env)
    assert sorted(backends) == ["archive", "ceph", "local"]
    assert backends.placement_of("builds") == "ceph"
    assert backends.placement_of("scratch-1") == "local"
    assert backends.placement_of("old-1") == "archive"
    assert backends.placement_of("old-12") == "ceph"
    ceph = backends["ceph"]
    assert isinstance(ceph, UpstreamCAS)
    assert ceph.config.endpoint == "https://rgw.example:7480"
    assert ceph.config.key_prefix == "facade/"
    assert ceph.config.part_size == 16 * MiB
    assert ceph.config.retry.deadline == 12
    assert "secret_access_key" not in repr(ceph.config)
    assert ceph.blob_key("ab" * 32) == f"facade/sha256/ab/ab/{'ab' * 32}"
    assert isinstance(backends["local"], LocalCAS)
    assert backends["local"].root == (tmp_path / "blobs").resolve()  # type: ignore[attr-defined]


def test_default_is_the_local_backend(tmp_path: Path) -> None:
    backends = build_backend_set({}, {}, tmp_path, {})
    assert list(backends) == ["local"]
    assert backends.for_bucket("anything") is backends["local"]


@pytest.mark.parametrize(
    ("tables", "placement", "message"),
    [
        ({"u": {"type": "s3", "bucket": "b"}}, {}, "endpoint is required"),
        ({"u": {"type": "s3", "endpoint": "http://x"}}, {}, "bucket is required"),
        ({"u": {"type": "ftp"}}, {}, "type must be"),
        ({"u": {"type": "s3", "endpoint": "http://x", "bucket": "b", "colour": 1}}, {}, "colour"),
        ({}, {"default": "nowhere"}, "nowhere"),
        ({}, {"buckets": {"a-*": "nowhere"}}, "nowhere"),
        ({}, {"rules": []}, "unknown settings rules"),
        ({"u": {"type": "s3", "endpoint": "x", "bucket": "b"}}, {}, "http(s)://"),
        (
            {"u": {"type": "s3", "endpoint": "http://x", "bucket": "b", "part_size_mib": 1}},
            {},
            "5242",
        ),
    ],
)
def test_catalog_refuses_bad_settings(
    tmp_path: Path, tables: dict[str, dict[str, object]], placement: dict[str, object], message: str
) -> None:
    env = {"S3FACADE_UPSTREAM_ACCESS_KEY_ID": "k", "S3FACADE_UPSTREAM_SECRET_ACCESS_KEY": "s"}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_backend_set(tables, placement, tmp_path, env)


def test_credentials_come_from_the_table_or_the_named_environment() -> None:
    base = {"type": "s3", "endpoint": "http://x", "bucket": "b"}
    with pytest.raises(ConfigError, match="S3FACADE_UPSTREAM_ACCESS_KEY_ID"):
        upstream_config("u", base, {})
    inline = upstream_config("u", {**base, "access_key_id": "a", "secret_access_key": "s"}, {})
    assert (inline.access_key_id, inline.secret_access_key) == ("a", "s")
    named = {**base, "access_key_id_env": "CEPH_KEY", "secret_access_key_env": "CEPH_SECRET"}
    from_env = upstream_config("u", named, {"CEPH_KEY": "k2", "CEPH_SECRET": "s2"})
    assert (from_env.access_key_id, from_env.secret_access_key) == ("k2", "s2")


def test_config_file_tables_reach_the_catalog(tmp_path: Path) -> None:
    path = config_file(
        tmp_path / "s3facade.toml",
        {"ceph": {"type": "s3", "endpoint": "http://rgw:7480", "bucket": "b"}},
        {"default": "local", "buckets": {"ml-*": "ceph", "ml-scratch": "local"}},
    )
    config = load_config(path, env={})
    assert config.backends == {"ceph": {"type": "s3", "endpoint": "http://rgw:7480", "bucket": "b"}}
    env = {"S3FACADE_UPSTREAM_ACCESS_KEY_ID": "k", "S3FACADE_UPSTREAM_SECRET_ACCESS_KEY": "s"}
    backends = build_backend_set(config.backends, config.placement, tmp_path, env)
    assert backends.placement == (("ml-*", "ceph"), ("ml-scratch", "local"))  # file order
    assert backends.placement_of("ml-scratch") == "ceph"  # the first match wins


def test_quick_start_flags_put_every_bucket_upstream(tmp_path: Path) -> None:
    config = load_config(
        None,
        {"upstream_endpoint": "http://rgw:7480", "upstream_bucket": "b", "upstream_prefix": "p/"},
        env={},
    )
    assert config.backends == {
        "upstream": {"type": "s3", "endpoint": "http://rgw:7480", "bucket": "b", "prefix": "p/"}
    }
    assert config.placement == {"default": "upstream"}
    with pytest.raises(ValueError, match="together"):
        load_config(None, {"upstream_endpoint": "http://rgw:7480"}, env={})


def test_backend_set_refuses_placement_on_unknown_backends(tmp_path: Path) -> None:
    local = LocalCAS(tmp_path)
    with pytest.raises(ValueError, match="elsewhere"):
        BackendSet({"local": local}, "local", [("a*", "elsewhere")])


def test_parts_are_signed_over_plain_http_unless_told() -> None:
    def config(endpoint: str, **extra: object) -> UpstreamConfig:
        return UpstreamConfig(endpoint, "b", "key", "secret", **extra)  # type: ignore[arg-type]

    assert config("http://rgw:7480").signs_parts
    assert not config("https://rgw:7480").signs_parts  # TLS protects the bytes
    assert config("https://rgw:7480", sign_payload=True).signs_parts
    assert not config("http://rgw:7480", sign_payload=False).signs_parts
