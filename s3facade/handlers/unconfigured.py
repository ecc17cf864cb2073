"""Bucket settings s3facade does not keep, answered as AWS answers for a bucket without
them: an empty document, or the "not found" error AWS sends.

Tools that manage buckets read every one of these (Terraform's aws_s3_bucket does on each
plan), so a 501 would fail them. Setting one has no route and stays NotImplemented, naming
the sub-resource: s3facade cannot honour it. Encryption answers "not found" rather than
AWS's default SSE-S3 because s3facade does not encrypt the bytes it stores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.responses import Response

from s3facade.context import ServerContext
from s3facade.errors import S3Error
from s3facade.operations import Action
from s3facade.request import S3Request
from s3facade.responses import xml_response
from s3facade.xml import Document, add


@dataclass(frozen=True)
class Unconfigured:
    error: str | None = None  # the error an unconfigured bucket answers with
    root: str = ""  # else the empty document's root element ...
    children: tuple[tuple[str, str], ...] = ()  # ... and its fixed children
    by_id: bool = False  # one configuration by ?id= is NoSuchConfiguration


def _empty_listing(root: str) -> Unconfigured:
    return Unconfigured(root=root, children=(("IsTruncated", "false"),), by_id=True)


ANSWERS: Mapping[Action, Unconfigured] = {
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketEncryption.html
    Action.GET_BUCKET_ENCRYPTION: Unconfigured("ServerSideEncryptionConfigurationNotFoundError"),
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketWebsite.html
    Action.GET_BUCKET_WEBSITE: Unconfigured("NoSuchWebsiteConfiguration"),
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketReplication.html
    Action.GET_BUCKET_REPLICATION: Unconfigured("ReplicationConfigurationNotFoundError"),
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLogging.html
    Action.GET_BUCKET_LOGGING: Unconfigured(root="BucketLoggingStatus"),
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketNotificationConfiguration.html
    Action.GET_BUCKET_NOTIFICATION: Unconfigured(root="NotificationConfiguration"),
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketAccelerateConfiguration.html
    Action.GET_BUCKET_ACCELERATE: Unconfigured(root="AccelerateConfiguration"),
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketRequestPayment.html
    Action.GET_BUCKET_REQUEST_PAYMENT: Unconfigured(
        root="RequestPaymentConfiguration", children=(("Payer", "BucketOwner"),)
    ),
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListBucketAnalyticsConfigurations.html
    Action.LIST_BUCKET_ANALYTICS: _empty_listing("ListBucketAnalyticsConfigurationResult"),
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListBucketInventoryConfigurations.html
    Action.LIST_BUCKET_INVENTORY: _empty_listing("ListInventoryConfigurationsResult"),
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListBucketMetricsConfigurations.html
    Action.LIST_BUCKET_METRICS: _empty_listing("ListMetricsConfigurationsResult"),
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListBucketIntelligentTieringConfigurations.html
    Action.LIST_BUCKET_INTELLIGENT_TIERING: _empty_listing(
        "ListBucketIntelligentTieringConfigurationsOutput"
    ),
}


async def answer(req: S3Request, server: ServerContext) -> Response:
    server.registry.bucket(req.bucket)  # NoSuchBucket first, as for any bucket operation
    unconfigured = ANSWERS[req.operation.action]
    if unconfigured.by_id and "id" in req.query:
        raise S3Error("NoSuchConfiguration")
    if unconfigured.error is not None:
        raise S3Error(unconfigured.error, extra={"BucketName": req.bucket})
    doc = Document(unconfigured.root)
    for name, text in unconfigured.children:
        add(doc.root, name, text)
    return xml_response(doc)
