"""ListObjects v1 and v2 through boto3, and the raw url encoding botocore relies on."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from lxml import etree

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY

KEYS = [
    "a.txt",
    "dir/one",
    "dir/sub/two",
    "dir/three",
    "dir2/x",
    "emptydir/",
    "space key",
    "plus+key",
    "zz/ü",
]


@pytest.fixture
def filled(s3: Any, bucket: str) -> str:
    for key in KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"" if key.endswith("/") else key.encode())
    return bucket


def test_v2_full_listing_is_sorted(s3: Any, filled: str) -> None:
    listed = s3.list_objects_v2(Bucket=filled)
    assert [o["Key"] for o in listed["Contents"]] == sorted(KEYS)
    assert listed["KeyCount"] == len(KEYS)
    assert listed["IsTruncated"] is False
    empty_marker = next(o for o in listed["Contents"] if o["Key"] == "emptydir/")
    assert empty_marker["Size"] == 0


def test_v2_delimiter_and_prefix(s3: Any, filled: str) -> None:
    top = s3.list_objects_v2(Bucket=filled, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["dir/", "dir2/", "emptydir/", "zz/"]
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "plus+key", "space key"]
    inner = s3.list_objects_v2(Bucket=filled, Delimiter="/", Prefix="dir/")
    assert [o["Key"] for o in inner["Contents"]] == ["dir/one", "dir/three"]
    assert [p["Prefix"] for p in inner["CommonPrefixes"]] == ["dir/sub/"]


def test_v2_pagination_counts_prefixes_and_keys(s3: Any, filled: str) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"Bucket": filled, "Delimiter": "/", "MaxKeys": 2}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        pages += 1
        entries = [o["Key"] for o in page.get("Contents", [])]
        entries += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] == len(entries) <= 2
        seen += entries
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert sorted(seen) == ["a.txt", "dir/", "dir2/", "emptydir/", "plus+key", "space key", "zz/"]
    assert pages == 4


def test_v2_start_after_and_fetch_owner(s3: Any, filled: str) -> None:
    listed = s3.list_objects_v2(Bucket=filled, StartAfter="dir/three", FetchOwner=True)
    keys = [o["Key"] for o in listed["Contents"]]
    assert keys == [k for k in sorted(KEYS) if k > "dir/three"]
    assert all("Owner" in o for o in listed["Contents"])
    assert "Owner" not in s3.list_objects_v2(Bucket=filled)["Contents"][0]


def test_start_after_ignored_with_token(s3: Any, filled: str) -> None:
    first = s3.list_objects_v2(Bucket=filled, MaxKeys=1)
    second = s3.list_objects_v2(
        Bucket=filled, MaxKeys=1, ContinuationToken=first["NextContinuationToken"], StartAfter="z"
    )
    assert second["Contents"][0]["Key"] == sorted(KEYS)[1]


def test_paginator_over_many_keys(s3: Any, bucket: str) -> None:
    keys = [f"k/{i:04d}" for i in range(1205)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"."), keys))
    paginator = s3.get_paginator("list_objects_v2")
    listed = [o["Key"] for page in paginator.paginate(Bucket=bucket) for o in page["Contents"]]
    assert listed == keys
    v1 = s3.get_paginator("list_objects")
    listed_v1 = [o["Key"] for page in v1.paginate(Bucket=bucket) for o in page["Contents"]]
    assert listed_v1 == keys


def test_v1_marker_and_next_marker(s3: Any, filled: str) -> None:
    page = s3.list_objects(Bucket=filled, Delimiter="/", MaxKeys=3)
    assert page["IsTruncated"] is True
    assert page["NextMarker"] == "dir2/"  # a.txt, dir/, dir2/
    rest = s3.list_objects(Bucket=filled, Delimiter="/", Marker=page["NextMarker"])
    names = [o["Key"] for o in rest.get("Contents", [])]
    names += [p["Prefix"] for p in rest.get("CommonPrefixes", [])]
    assert sorted(names) == ["emptydir/", "plus+key", "space key", "zz/"]
    plain = s3.list_objects(Bucket=filled, MaxKeys=2)
    assert "NextMarker" not in plain  # AWS sends it only with a delimiter
    assert plain["IsTruncated"] is True


def _signed_get(endpoint: str, path: str, query: str) -> httpx.Response:
    request = AWSRequest(method="GET", url=f"{endpoint}{path}?{query}")
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    return httpx.get(request.url, headers=dict(request.headers.items()))


def test_url_encoding_only_when_asked(server: Any, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a b+c%d/ü", Body=b"x")
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    encoded = _signed_get(server.endpoint, f"/{bucket}", "encoding-type=url&list-type=2")
    root = etree.fromstring(encoded.content)
    assert root.findtext("s3:EncodingType", namespaces=ns) == "url"
    assert root.findtext("s3:Contents/s3:Key", namespaces=ns) == "a%20b%2Bc%25d/%C3%BC"
    raw = _signed_get(server.endpoint, f"/{bucket}", "list-type=2")
    root = etree.fromstring(raw.content)
    assert root.find("s3:EncodingType", namespaces=ns) is None
    assert root.findtext("s3:Contents/s3:Key", namespaces=ns) == "a b+c%d/ü"


def test_invalid_listing_arguments(server: Any, bucket: str) -> None:
    for query in ("list-type=2&max-keys=-1", "list-type=2&encoding-type=xml",
                  "list-type=2&continuation-token=bogus"):  # fmt: skip
        response = _signed_get(server.endpoint, f"/{bucket}", query)
        assert response.status_code == 400, query
        assert "<Code>InvalidArgument</Code>" in response.text
