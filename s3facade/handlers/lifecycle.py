"""Get/Put/DeleteBucketLifecycleConfiguration: S3's XML <-> the domain's rule dicts.

This module only translates: element names to snake_case keys, text to ints, booleans
and dates. Whether a configuration is valid is the domain's call (registry.lifecycle),
whose refusals become the S3 error AWS sends, with the domain's explanation.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from starlette.responses import Response

from s3facade.context import ServerContext
from s3facade.domain_errors import s3_error_for
from s3facade.errors import S3Error
from s3facade.integrity import require_integrity
from s3facade.registry.lifecycle import InvalidLifecycle, rules_of
from s3facade.request import S3Request
from s3facade.responses import xml_response
from s3facade.xml import Document, add, children, iso8601, local_name, parse

# Storage classes are a tiering concept s3facade does not have (one class, STANDARD).
_UNSUPPORTED = frozenset({"Transition", "NoncurrentVersionTransition"})
TRANSITION_CLASSES = frozenset(
    {"GLACIER", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "DEEP_ARCHIVE", "GLACIER_IR"}
)
_RULE = frozenset(
    {
        "ID", "Prefix", "Filter", "Status", "Expiration", "NoncurrentVersionExpiration",
        "AbortIncompleteMultipartUpload", *_UNSUPPORTED,
    }
)  # fmt: skip
_SIZES = {
    "ObjectSizeGreaterThan": "object_size_greater_than",
    "ObjectSizeLessThan": "object_size_less_than",
}
_INTEGER = re.compile(r"^\s*-?\d{1,18}\s*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?)?$")


async def get_bucket_lifecycle_configuration(req: S3Request, server: ServerContext) -> Response:
    bucket = server.registry.bucket(req.bucket)
    rules = rules_of(bucket)
    if rules is None:
        raise S3Error("NoSuchLifecycleConfiguration", extra={"BucketName": req.bucket})
    doc = Document("LifecycleConfiguration")
    for rule in rules:
        _add_rule(doc.root, rule.as_dict())
    return xml_response(doc)


async def put_bucket_lifecycle_configuration(req: S3Request, server: ServerContext) -> Response:
    server.registry.bucket(req.bucket)  # NoSuchBucket before any complaint about the body
    root = parse(await require_integrity(req.body), "LifecycleConfiguration")
    _fields(root, {"Rule"}, repeated={"Rule"})
    records = [_rule(element) for element in children(root, "Rule")]
    try:
        await server.registry.put_bucket_lifecycle(req.bucket, records, req.provenance)
    except InvalidLifecycle as exc:  # the domain's explanation is the message
        raise S3Error(s3_error_for(exc).code, str(exc)) from None
    return Response(status_code=200)


async def delete_bucket_lifecycle(req: S3Request, server: ServerContext) -> Response:
    if server.registry.bucket(req.bucket).lifecycle is not None:  # else nothing to record
        await server.registry.put_bucket_lifecycle(req.bucket, None, req.provenance)
    return Response(status_code=204)


# -- XML -> dicts --------------------------------------------------------------------------


def _fields(
    element: etree._Element, allowed: Collection[str], repeated: Collection[str] = ()
) -> dict[str, etree._Element]:
    """The children by name; unknown or repeated elements are MalformedXML, as in AWS."""
    found: dict[str, etree._Element] = {}
    for child in element:
        name = local_name(child)
        if not name:
            continue  # comments
        if name not in allowed or (name in found and name not in repeated):
            raise S3Error("MalformedXML")
        found[name] = child
    return found


def _text(element: etree._Element) -> str:
    if len(element):
        raise S3Error("MalformedXML")
    return element.text or ""


def _int(element: etree._Element) -> int:
    text = _text(element)
    if not _INTEGER.match(text):
        raise S3Error("MalformedXML")
    return int(text)


def _rule(element: etree._Element) -> dict[str, Any]:
    fields = _fields(element, _RULE, repeated=_UNSUPPORTED)
    if _UNSUPPORTED & fields.keys():
        # A transition AWS would refuse gets AWS's 400; only a valid one is unsupported.
        for transition in children(element, "Transition"):
            _check_transition(transition, "Days")
        for transition in children(element, "NoncurrentVersionTransition"):
            _check_transition(transition, "NoncurrentDays")
        raise S3Error(
            "NotImplemented",
            "Lifecycle transitions are not implemented: there is one storage class.",
        )
    record: dict[str, Any] = {}
    if "ID" in fields:
        record["id"] = _text(fields["ID"])
    if "Status" in fields:
        record["status"] = _text(fields["Status"])
    if "Prefix" in fields:
        record["prefix"] = _text(fields["Prefix"])
    if "Filter" in fields:
        record["filter"] = _filter(fields["Filter"])
    if "Expiration" in fields:
        record["expiration"] = _expiration(fields["Expiration"])
    if "NoncurrentVersionExpiration" in fields:
        entry = _fields(
            fields["NoncurrentVersionExpiration"], {"NoncurrentDays", "NewerNoncurrentVersions"}
        )
        record["noncurrent_version_expiration"] = {
            name: _int(entry[tag])
            for tag, name in (
                ("NoncurrentDays", "noncurrent_days"),
                ("NewerNoncurrentVersions", "newer_noncurrent_versions"),
            )
            if tag in entry
        }
    if "AbortIncompleteMultipartUpload" in fields:
        entry = _fields(fields["AbortIncompleteMultipartUpload"], {"DaysAfterInitiation"})
        abort = {"days_after_initiation": _int(entry["DaysAfterInitiation"])} if entry else {}
        record["abort_incomplete_multipart_upload"] = abort
    return record


def _filter(element: etree._Element) -> dict[str, Any]:
    fields = _fields(element, {"Prefix", "Tag", "And", *_SIZES})
    record: dict[str, Any] = {_SIZES[tag]: _int(fields[tag]) for tag in _SIZES if tag in fields}
    if "Prefix" in fields:
        record["prefix"] = _text(fields["Prefix"])
    if "Tag" in fields:
        record["tag"] = _tag(fields["Tag"])
    if "And" in fields:
        both = fields["And"]
        entry = _fields(both, {"Prefix", "Tag", *_SIZES}, repeated={"Tag"})
        conjunction: dict[str, Any] = {
            _SIZES[tag]: _int(entry[tag]) for tag in _SIZES if tag in entry
        }
        if "Prefix" in entry:
            conjunction["prefix"] = _text(entry["Prefix"])
        tags = [_tag(tag) for tag in children(both, "Tag")]
        if tags:
            conjunction["tags"] = tags
        record["and"] = conjunction
    return record


def _tag(element: etree._Element) -> dict[str, str]:
    fields = _fields(element, {"Key", "Value"})
    return {name.lower(): _text(child) for name, child in fields.items()}


def _expiration(element: etree._Element) -> dict[str, Any]:
    fields = _fields(element, {"Days", "Date", "ExpiredObjectDeleteMarker"})
    record: dict[str, Any] = {}
    if "Days" in fields:
        record["days"] = _int(fields["Days"])
    if "Date" in fields:
        record["date"] = _date(_text(fields["Date"]).strip())
    if "ExpiredObjectDeleteMarker" in fields:
        flag = _text(fields["ExpiredObjectDeleteMarker"]).strip().lower()
        if flag not in ("true", "false", "1", "0"):
            raise S3Error("MalformedXML")
        record["expired_object_delete_marker"] = flag in ("true", "1")
    return record


def _date(text: str) -> str:
    """An ISO 8601 date or time, as the naive-UTC ISO text the domain records."""
    if not _DATE.match(text):
        raise S3Error("MalformedXML")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise S3Error("MalformedXML") from None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat()


def _check_transition(element: etree._Element, days: str) -> None:
    """A Transition (Days or Date, StorageClass) or NoncurrentVersionTransition
    (NoncurrentDays, StorageClass), checked as AWS checks it."""
    allowed = {days, "StorageClass"} | ({"Date"} if days == "Days" else {"NewerNoncurrentVersions"})
    fields = _fields(element, allowed)
    if (days in fields) == ("Date" in fields) or "StorageClass" not in fields:
        raise S3Error("MalformedXML")
    if _text(fields["StorageClass"]).strip() not in TRANSITION_CLASSES:
        raise S3Error("InvalidStorageClass")
    if days in fields and _int(fields[days]) < 0:
        raise S3Error("InvalidArgument", f"'{days}' in Transition action must be nonnegative")
    if "Date" in fields:
        date = datetime.fromisoformat(_date(_text(fields["Date"]).strip()))
        if date != datetime(date.year, date.month, date.day):
            raise S3Error("InvalidArgument", "'Date' must be at midnight GMT")


# -- dicts -> XML --------------------------------------------------------------------------


def _add_rule(parent: etree._Element, record: Mapping[str, Any]) -> None:
    rule = add(parent, "Rule")
    add(rule, "ID", record["id"])
    if "filter" in record:
        _add_filter(add(rule, "Filter"), record["filter"])
    else:
        add(rule, "Prefix", record["prefix"])
    add(rule, "Status", record["status"])
    expiration = record.get("expiration")
    if expiration is not None:
        entry = add(rule, "Expiration")
        if "days" in expiration:
            add(entry, "Days", expiration["days"])
        if "date" in expiration:
            add(entry, "Date", iso8601(datetime.fromisoformat(expiration["date"])))
        if "expired_object_delete_marker" in expiration:
            add(entry, "ExpiredObjectDeleteMarker", expiration["expired_object_delete_marker"])
    noncurrent = record.get("noncurrent_version_expiration")
    if noncurrent is not None:
        entry = add(rule, "NoncurrentVersionExpiration")
        add(entry, "NoncurrentDays", noncurrent["noncurrent_days"])
        if "newer_noncurrent_versions" in noncurrent:
            add(entry, "NewerNoncurrentVersions", noncurrent["newer_noncurrent_versions"])
    abort = record.get("abort_incomplete_multipart_upload")
    if abort is not None:
        entry = add(rule, "AbortIncompleteMultipartUpload")
        add(entry, "DaysAfterInitiation", abort["days_after_initiation"])


def _add_filter(element: etree._Element, record: Mapping[str, Any]) -> None:
    if "prefix" in record:
        add(element, "Prefix", record["prefix"])
    if "tag" in record:
        _add_tag(element, record["tag"])
    _add_sizes(element, record)
    if "and" in record:
        both = add(element, "And")
        if "prefix" in record["and"]:
            add(both, "Prefix", record["and"]["prefix"])
        for tag in record["and"].get("tags", ()):
            _add_tag(both, tag)
        _add_sizes(both, record["and"])


def _add_sizes(element: etree._Element, record: Mapping[str, Any]) -> None:
    for tag, name in _SIZES.items():
        if name in record:
            add(element, tag, record[name])


def _add_tag(parent: etree._Element, tag: Mapping[str, str]) -> None:
    entry = add(parent, "Tag")
    add(entry, "Key", tag["key"])
    add(entry, "Value", tag["value"])
