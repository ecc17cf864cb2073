"""Bucket operations through boto3 at its default settings."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from s3facade.admin_client import AdminClient
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def test_bucket_lifecycle(s3: Any) -> None:
    name = f"life-{uuid.uuid4().hex[:10]}"
    created = s3.create_bucket(Bucket=name)
    assert created["Location"] == f"/{name}"
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None  # us-east-1
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as raised:
        s3.delete_bucket(Bucket=name)
    assert error_code(raised.value) == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as raised:
        s3.head_bucket(Bucket=name)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_creating_an_owned_bucket_again_in_us_east_1_succeeds_and_changes_nothing(
    server: Any, s3: Any, bucket: str
) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="kept", Body=b"x")
    admin = AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))
    before = admin.json("GET", "/-/admin/log", {"bucket": bucket, "oldest": "true"})["events"]
    again = s3.create_bucket(Bucket=bucket)
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert again["Location"] == f"/{bucket}"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["kept"]
    after = admin.json("GET", "/-/admin/log", {"bucket": bucket, "oldest": "true"})["events"]
    assert after == before  # nothing recorded: nothing changed


def test_creating_an_owned_bucket_again_elsewhere_is_already_owned(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = tmp_path_factory.mktemp("eu-config") / "s3facade.toml"
    config.write_text('[server]\nregion = "eu-west-1"\n')
    data = tmp_path_factory.mktemp("eu") / "data"
    eu = RunningServer(data, extra_args=["--config", str(config)]).start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=eu.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="eu-west-1",
        )
        name = f"eu-{uuid.uuid4().hex[:10]}"
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        with pytest.raises(ClientError) as raised:
            s3.create_bucket(
                Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
            )
        assert error_code(raised.value) == "BucketAlreadyOwnedByYou"
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    finally:
        eu.stop()


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "Upper", "under_score", "-lead", "trail-", "dou..ble", "192.168.1.1",
     "xn--punycode", "bucket-s3alias", "dot.-dash"],
)  # fmt: skip
def test_invalid_bucket_names(s3: Any, name: str) -> None:
    with pytest.raises(ClientError) as raised:
        s3.create_bucket(Bucket=name)
    assert error_code(raised.value) == "InvalidBucketName"
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_location_constraint_must_match_region(s3: Any) -> None:
    name = f"loc-{uuid.uuid4().hex[:10]}"
    with pytest.raises(ClientError) as raised:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert error_code(raised.value) == "InvalidLocationConstraint"
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_missing_bucket_errors(s3: Any) -> None:
    name = f"nobody-{uuid.uuid4().hex[:10]}"
    for call in (
        lambda: s3.list_objects_v2(Bucket=name),
        lambda: s3.put_object(Bucket=name, Key="k", Body=b"x"),
        lambda: s3.get_object(Bucket=name, Key="k"),
        lambda: s3.delete_bucket(Bucket=name),
        lambda: s3.get_bucket_location(Bucket=name),
    ):
        with pytest.raises(ClientError) as raised:
            call()
        assert error_code(raised.value) == "NoSuchBucket"


def test_operational_endpoints(server: Any) -> None:
    health = httpx.get(f"{server.endpoint}/-/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    ready = httpx.get(f"{server.endpoint}/-/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok"}  # no paths or sizes for the anonymous
    details = AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY)).json(
        "GET", "/-/ready"
    )
    assert details["backends"]["local"]["healthy"] is True
    assert details["space"]["reserve_held"] is True
    assert str(server.data_dir) not in ready.text


def test_every_response_has_a_request_id(server: Any, s3: Any) -> None:
    listed = s3.list_buckets()
    assert listed["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    anonymous = httpx.get(f"{server.endpoint}/")
    assert anonymous.status_code == 403
    assert "<Code>AccessDenied</Code>" in anonymous.text
    assert anonymous.headers["x-amz-request-id"] in anonymous.text


def test_unimplemented_subresource_is_not_another_operation(
    server: Any, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as raised:  # ?torrent: not a GetObject
        s3.get_object_torrent(Bucket=bucket, Key="k")
    assert error_code(raised.value) == "NotImplemented"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_settings_s3facade_does_not_keep_read_as_unconfigured(s3: Any, bucket: str) -> None:
    """What Terraform and the aws cli read of every bucket: AWS's answers for a bucket
    without these settings, through boto3's own parsers."""
    for read, code in [
        (s3.get_bucket_encryption, "ServerSideEncryptionConfigurationNotFoundError"),
        (s3.get_bucket_website, "NoSuchWebsiteConfiguration"),
        (s3.get_bucket_replication, "ReplicationConfigurationNotFoundError"),
    ]:
        with pytest.raises(ClientError) as raised:
            read(Bucket=bucket)
        assert error_code(raised.value) == code
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket)
    notification = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert not {"TopicConfigurations", "QueueConfigurations"} & set(notification)
    assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket=bucket)
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"
    for listing, entries in [
        (s3.list_bucket_analytics_configurations, "AnalyticsConfigurationList"),
        (s3.list_bucket_inventory_configurations, "InventoryConfigurationList"),
        (s3.list_bucket_metrics_configurations, "MetricsConfigurationList"),
        (s3.list_bucket_intelligent_tiering_configurations, "IntelligentTieringConfigurationList"),
    ]:
        answer = listing(Bucket=bucket)
        assert answer["IsTruncated"] is False and entries not in answer
    with pytest.raises(ClientError) as raised:
        s3.get_bucket_analytics_configuration(Bucket=bucket, Id="nightly")
    assert error_code(raised.value) == "NoSuchConfiguration"
    with pytest.raises(ClientError) as raised:
        s3.get_bucket_logging(Bucket=f"absent-{uuid.uuid4().hex[:8]}")
    assert error_code(raised.value) == "NoSuchBucket"


def test_setting_what_s3facade_does_not_keep_is_not_implemented(s3: Any, bucket: str) -> None:
    rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    with pytest.raises(ClientError) as raised:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [rule]})
    assert error_code(raised.value) == "NotImplemented"
    assert "encryption" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as raised:  # and nothing changed
        s3.get_bucket_encryption(Bucket=bucket)
    assert error_code(raised.value) == "ServerSideEncryptionConfigurationNotFoundError"


def test_metrics_in_prometheus_text_format(server: Any, s3: Any, bucket: str) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    s3.put_object(Bucket=bucket, Key="counted", Body=b"x")
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="missing")
    response = httpx.get(f"{server.endpoint}/-/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    requests = {
        (s.labels["operation"], s.labels["status"]): s.value
        for s in families["s3facade_requests"].samples
        if s.name == "s3facade_requests_total"
    }
    assert requests[("PutObject", "200")] >= 1
    assert requests[("GetObject", "404")] >= 1
    assert families["s3facade_objects"].samples[0].value >= 1
    assert families["s3facade_events"].samples[0].value >= 2


def test_bucket_tagging(server: Any, s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as raised:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_code(raised.value) == "NoSuchTagSet"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    tags = [{"Key": "team", "Value": "release"}, {"Key": "cost-center", "Value": ""}]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    got = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert sorted(got, key=lambda t: t["Key"]) == sorted(tags, key=lambda t: t["Key"])
    too_many = [{"Key": f"k{n}", "Value": "v"} for n in range(51)]
    with pytest.raises(ClientError) as raised:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": too_many})
    assert error_code(raised.value) == "InvalidTag"
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 2  # unchanged
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "only", "Value": "1"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "only", "Value": "1"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as raised:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_code(raised.value) == "NoSuchTagSet"
    admin = AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))
    events = admin.json("GET", "/-/admin/log", {"bucket": bucket, "oldest": "true"})["events"]
    assert [e["data"]["tags"] for e in events if e["type"] == "BucketTagsSet"] == [
        {"cost-center": "", "team": "release"},
        {"only": "1"},
        None,
    ]
