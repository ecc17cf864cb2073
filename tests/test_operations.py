"""Routing table: METHOD /uri?query -> operation, in path-style and virtual-hosted form."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from s3facade.errors import S3Error
from s3facade.operations import Action, parse_operation, resolve_address

BASE = "s3.example.test"

ROUTES = [
    ("GET", "/", "", None, None, Action.LIST_BUCKETS),
    ("PUT", "/bkt", "", "bkt", None, Action.CREATE_BUCKET),
    ("HEAD", "/bkt", "", "bkt", None, Action.HEAD_BUCKET),
    ("DELETE", "/bkt", "", "bkt", None, Action.DELETE_BUCKET),
    ("GET", "/bkt", "location", "bkt", None, Action.GET_BUCKET_LOCATION),
    ("GET", "/bkt", "list-type=2&prefix=a", "bkt", None, Action.LIST_OBJECTS_V2),
    ("GET", "/bkt", "prefix=a&marker=b", "bkt", None, Action.LIST_OBJECTS),
    ("POST", "/bkt", "delete", "bkt", None, Action.DELETE_OBJECTS),
    ("PUT", "/bkt/a/b", "", "bkt", "a/b", Action.PUT_OBJECT),
    ("GET", "/bkt/a%20b%2Bc", "", "bkt", "a b+c", Action.GET_OBJECT),
    ("GET", "/bkt/k", "x-id=GetObject&partNumber=1", "bkt", "k", Action.GET_OBJECT),
    ("HEAD", "/bkt/dir//x/", "", "bkt", "dir//x/", Action.HEAD_OBJECT),
    ("DELETE", "/bkt/%C3%BC", "", "bkt", "ü", Action.DELETE_OBJECT),
    ("GET", "/bkt/a%2Fb", "", "bkt", "a/b", Action.GET_OBJECT),
    ("GET", "/bkt/k", "versionId=abc", "bkt", "k", Action.GET_OBJECT),
    ("DELETE", "/bkt/k", "versionId=abc", "bkt", "k", Action.DELETE_OBJECT),
    ("PUT", "/bkt/k", "partNumber=2&uploadId=u", "bkt", "k", Action.UPLOAD_PART),
    ("POST", "/bkt/k", "uploads", "bkt", "k", Action.CREATE_MULTIPART_UPLOAD),
    ("POST", "/bkt/k", "uploadId=u", "bkt", "k", Action.COMPLETE_MULTIPART_UPLOAD),
    ("GET", "/bkt/k", "uploadId=u", "bkt", "k", Action.LIST_PARTS),
    ("DELETE", "/bkt/k", "uploadId=u", "bkt", "k", Action.ABORT_MULTIPART_UPLOAD),
    ("GET", "/bkt", "uploads", "bkt", None, Action.LIST_MULTIPART_UPLOADS),
    ("GET", "/bkt", "versioning", "bkt", None, Action.GET_BUCKET_VERSIONING),
    ("PUT", "/bkt", "versioning", "bkt", None, Action.PUT_BUCKET_VERSIONING),
    ("GET", "/bkt", "versions&prefix=a", "bkt", None, Action.LIST_OBJECT_VERSIONS),
    ("GET", "/bkt", "object-lock", "bkt", None, Action.GET_OBJECT_LOCK_CONFIGURATION),
    ("PUT", "/bkt", "object-lock", "bkt", None, Action.PUT_OBJECT_LOCK_CONFIGURATION),
    ("GET", "/bkt", "lifecycle", "bkt", None, Action.GET_BUCKET_LIFECYCLE_CONFIGURATION),
    ("PUT", "/bkt", "lifecycle", "bkt", None, Action.PUT_BUCKET_LIFECYCLE_CONFIGURATION),
    ("DELETE", "/bkt", "lifecycle", "bkt", None, Action.DELETE_BUCKET_LIFECYCLE),
    ("PUT", "/bkt/k", "retention&versionId=v", "bkt", "k", Action.PUT_OBJECT_RETENTION),
    ("GET", "/bkt/k", "legal-hold", "bkt", "k", Action.GET_OBJECT_LEGAL_HOLD),
    ("PUT", "/bkt/k", "tagging", "bkt", "k", Action.PUT_OBJECT_TAGGING),
    ("DELETE", "/bkt/k", "tagging", "bkt", "k", Action.DELETE_OBJECT_TAGGING),
]


@pytest.mark.parametrize(("method", "path", "query", "bucket", "key", "action"), ROUTES)
def test_path_style(
    method: str, path: str, query: str, bucket: str | None, key: str | None, action: Action
) -> None:
    address = resolve_address(path.encode(), "127.0.0.1:9000", BASE)
    operation = parse_operation(method, address, dict(parse_qsl(query, True)), {})
    assert (operation.action, operation.bucket, operation.key) == (action, bucket, key)


@pytest.mark.parametrize(("method", "path", "query", "bucket", "key", "action"), ROUTES)
def test_virtual_hosted(
    method: str, path: str, query: str, bucket: str | None, key: str | None, action: Action
) -> None:
    if bucket is None:
        host, vpath = BASE, "/"
    else:
        host = f"{bucket}.{BASE}:9000"
        vpath = path[len(bucket) + 1 :] or "/"
    address = resolve_address(vpath.encode(), host, BASE)
    operation = parse_operation(method, address, dict(parse_qsl(query, True)), {})
    assert (operation.action, operation.bucket, operation.key) == (action, bucket, key)


@pytest.mark.parametrize(
    ("method", "path", "query", "code"),
    [
        ("GET", "/bkt", "session", "NotImplemented"),
        ("GET", "/bkt", "metadataConfiguration", "NotImplemented"),
        ("GET", "/bkt/k", "torrent", "NotImplemented"),
        ("POST", "/bkt/k", "", "MethodNotAllowed"),
        ("PATCH", "/bkt", "", "MethodNotAllowed"),
        ("GET", "/bkt/%FF", "", "InvalidURI"),
    ],
)
def test_refused(method: str, path: str, query: str, code: str) -> None:
    with pytest.raises(S3Error) as raised:
        address = resolve_address(path.encode(), "localhost", None)
        parse_operation(method, address, dict(parse_qsl(query, True)), {})
    assert raised.value.code == code
