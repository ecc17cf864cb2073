"""ListObjects (v1) and ListObjectsV2."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

from lxml import etree
from starlette.responses import Response

from s3facade.context import ServerContext
from s3facade.continuation import decode_token, encode_token
from s3facade.errors import S3Error
from s3facade.handlers.buckets import add_owner
from s3facade.registry import ListingPage
from s3facade.registry.access.principals import canonical_user_id
from s3facade.registry.model import ListedObject
from s3facade.request import S3Request, int_param
from s3facade.responses import xml_response
from s3facade.xml import S3_NS, Document, add, iso8601, set_text, url_encode

MAX_KEYS = 1000


def max_keys_param(req: S3Request) -> int:
    return int_param(req, "max-keys", MAX_KEYS, MAX_KEYS)


def encoder(req: S3Request) -> Callable[[str], str]:
    encoding = req.query.get("encoding-type")
    if encoding is None:
        return lambda value: value
    if encoding.lower() != "url":
        raise S3Error(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
            extra={"ArgumentName": "encoding-type", "ArgumentValue": encoding},
        )
    return url_encode


def _page(req: S3Request, server: ServerContext, after: str, max_keys: int) -> ListingPage:
    return server.registry.list_objects(
        req.bucket,
        prefix=req.query.get("prefix", ""),
        delimiter=req.query.get("delimiter", ""),
        after=after,
        max_keys=max_keys,
    )


def _contents(
    root: etree._Element,
    page: ListingPage,
    encode: Callable[[str], str],
    owner: Callable[[str], str] | None,
) -> None:
    """`owner`: the display name of an owner, when entries show their Owner."""
    for version in page.objects:
        _add_object(root, version, encode, owner)
    for prefix in page.common_prefixes:
        add(add(root, "CommonPrefixes"), "Prefix", encode(prefix))


def _add_object(
    root: etree._Element,
    version: ListedObject,
    encode: Callable[[str], str],
    owner: Callable[[str], str] | None,
) -> None:
    # A page holds up to 1000 of these: each is a copy of a prepared entry (lxml copies a
    # subtree in C, twice as fast as making its elements one by one) whose texts are filled
    # in; only the key (the one text a client chose) goes through the checks `add` makes.
    entry = copy.copy(_entry_template(tuple(version.checksums), owner is not None))
    key, modified, etag = entry[0], entry[1], entry[2]
    set_text(key, encode(version.key))
    modified.text = iso8601(version.last_modified)
    etag.text = f'"{version.etag}"'
    size_at = 3 + len(version.checksums) + (1 if version.checksums else 0)
    entry[size_at].text = str(version.size)
    if owner is not None:
        owner_id, display_name = entry[size_at + 1]
        owner_id.text = canonical_user_id(version.owner)
        display_name.text = owner(version.owner)
    root.append(entry)


@functools.lru_cache(maxsize=64)  # one per checksum set and owner flag seen
def _entry_template(algorithms: tuple[str, ...], owner: bool) -> etree._Element:
    """A Contents element in AWS's order, its per-object texts left empty."""
    entry = etree.Element(f"{{{S3_NS}}}Contents")
    for name in ("Key", "LastModified", "ETag"):
        add(entry, name)
    for algorithm in algorithms:
        add(entry, "ChecksumAlgorithm", algorithm)
    if algorithms:
        add(entry, "ChecksumType", "FULL_OBJECT")
    add(entry, "Size")
    if owner:
        add_owner(entry, "", "")
    add(entry, "StorageClass", "STANDARD")
    return entry


def _header(doc: Document, req: S3Request, prefix: str) -> None:
    add(doc.root, "Name", req.bucket)
    add(doc.root, "Prefix", prefix)


async def list_objects_v2(req: S3Request, server: ServerContext) -> Response:
    max_keys = max_keys_param(req)
    encode = encoder(req)
    token = req.query.get("continuation-token")
    start_after = req.query.get("start-after", "")
    # start-after is ignored once a continuation token is given (rule 11); an empty token
    # lists from the start (and is echoed, as AWS does).
    after = decode_token(token) if token else start_after
    page = _page(req, server, after, max_keys)
    doc = Document("ListBucketResult")
    _header(doc, req, encode(req.query.get("prefix", "")))
    if token is not None:
        add(doc.root, "ContinuationToken", token)
    if page.next_marker is not None:
        add(doc.root, "NextContinuationToken", encode_token(page.next_marker))
    add(doc.root, "KeyCount", len(page.objects) + len(page.common_prefixes))
    add(doc.root, "MaxKeys", max_keys)
    if req.query.get("delimiter"):  # an empty delimiter is no delimiter
        add(doc.root, "Delimiter", encode(req.query["delimiter"]))
    add(doc.root, "IsTruncated", page.is_truncated)
    if start_after:
        add(doc.root, "StartAfter", encode(start_after))
    if "encoding-type" in req.query:
        add(doc.root, "EncodingType", "url")
    fetch_owner = req.query.get("fetch-owner", "").lower() == "true"
    _contents(doc.root, page, encode, server.display_name if fetch_owner else None)
    return xml_response(doc)


async def list_objects(req: S3Request, server: ServerContext) -> Response:
    max_keys = max_keys_param(req)
    encode = encoder(req)
    marker = req.query.get("marker", "")
    page = _page(req, server, marker, max_keys)
    doc = Document("ListBucketResult")
    # ListObjects (v1) echoes its prefix unencoded even under encoding-type=url: AWS's
    # clients decode its Delimiter, Marker and NextMarker but not its Prefix.
    _header(doc, req, req.query.get("prefix", ""))
    add(doc.root, "Marker", encode(marker))
    # AWS sends NextMarker only with a delimiter; without one, clients use the last key.
    if page.next_marker is not None and req.query.get("delimiter"):
        add(doc.root, "NextMarker", encode(page.next_marker))
    add(doc.root, "MaxKeys", max_keys)
    if req.query.get("delimiter"):  # an empty delimiter is no delimiter
        add(doc.root, "Delimiter", encode(req.query["delimiter"]))
    add(doc.root, "IsTruncated", page.is_truncated)
    if "encoding-type" in req.query:
        add(doc.root, "EncodingType", "url")
    _contents(doc.root, page, encode, server.display_name)
    return xml_response(doc)
