"""Presigned URLs from boto3 at its defaults for bucket-level operations (SigV2 there:
the canonical resource of a bucket is `/bucket/`, as AWS documents)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest


@pytest.mark.parametrize(
    ("operation", "params", "marker"),
    [
        ("list_objects", {}, b"<ListBucketResult"),
        ("list_objects_v2", {"Prefix": "p"}, b"<KeyCount>1</KeyCount>"),
        ("list_object_versions", {}, b"<ListVersionsResult"),
        ("get_bucket_versioning", {}, b"<VersioningConfiguration"),
        ("get_bucket_location", {}, b"<LocationConstraint"),
    ],
)
def test_presigned_bucket_operations(
    s3: Any, bucket: str, operation: str, params: dict[str, str], marker: bytes
) -> None:
    s3.put_object(Bucket=bucket, Key="p/x", Body=b"x")
    url = s3.generate_presigned_url(operation, Params={"Bucket": bucket, **params})
    reply = httpx.get(url)
    assert reply.status_code == 200, (url, reply.text)
    assert marker in reply.content


def test_a_tampered_presigned_listing_is_refused(s3: Any, bucket: str) -> None:
    # SigV2 signs the bucket, the sub-resources and Expires (not listing parameters).
    url = s3.generate_presigned_url("list_objects", Params={"Bucket": bucket})
    expires = re.search(r"Expires=(\d+)", url)
    assert expires is not None
    later = url.replace(expires[0], f"Expires={int(expires[1]) + 60}")
    for tampered in (later, url.replace(f"/{bucket}?", f"/{bucket}?versions&")):
        reply = httpx.get(tampered)
        assert reply.status_code == 403 and b"SignatureDoesNotMatch" in reply.content
