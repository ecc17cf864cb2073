"""Object Lock: bucket configuration, per-version retention and legal hold, lock headers."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.datastructures import Headers
from starlette.responses import Response

from s3facade.context import ServerContext
from s3facade.errors import S3Error
from s3facade.handlers.versioning import requested_version, version_headers
from s3facade.integrity import require_integrity
from s3facade.registry import ObjectVersion
from s3facade.registry.model import DefaultRetention, Lock, LockMode
from s3facade.request import S3Request
from s3facade.responses import xml_response
from s3facade.xml import Document, add, child_text, children, parse


def parse_time(text: str, name: str) -> datetime:
    """An ISO 8601 date as S3 takes it, as naive UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise S3Error("InvalidArgument", f"Invalid {name}: {text}") from None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def iso(time: datetime) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time.microsecond // 1000:03d}Z"


def _mode(text: str | None, *, in_xml: bool = False) -> LockMode:
    """A lock mode: an unknown one in a header is InvalidArgument, in an XML body (lock
    configuration, retention) MalformedXML, as AWS answers."""
    try:
        return LockMode((text or "").upper())
    except ValueError:
        if in_xml:
            raise S3Error("MalformedXML") from None
        raise S3Error("InvalidArgument", f"Unknown wormMode directive: {text}") from None


def lock_request(headers: Headers) -> Lock | None:
    """x-amz-object-lock-mode / -retain-until-date / -legal-hold on a write."""
    mode = headers.get("x-amz-object-lock-mode")
    until = headers.get("x-amz-object-lock-retain-until-date")
    hold = headers.get("x-amz-object-lock-legal-hold")
    if mode is None and until is None and hold is None:
        return None
    if (mode is None) != (until is None):
        raise S3Error(
            "InvalidArgument",
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
        )
    if hold is not None and hold.upper() not in ("ON", "OFF"):
        raise S3Error("InvalidArgument", "Legal Hold must be either of 'ON' or 'OFF'")
    retain_until = parse_time(until, "retain-until-date") if until is not None else None
    if retain_until is not None and retain_until <= datetime.now(UTC).replace(tzinfo=None):
        raise S3Error("InvalidArgument", "The retain until date must be in the future!")
    return Lock(
        mode=_mode(mode) if mode is not None else None,
        retain_until=retain_until,
        legal_hold=(hold or "").upper() == "ON",
    )


def lock_headers(version: ObjectVersion) -> dict[str, str]:
    headers = {}
    if version.lock_mode is not None and version.retain_until is not None:
        headers["x-amz-object-lock-mode"] = version.lock_mode.value
        headers["x-amz-object-lock-retain-until-date"] = iso(version.retain_until)
    if version.legal_hold:
        headers["x-amz-object-lock-legal-hold"] = "ON"
    return headers


async def get_object_lock_configuration(req: S3Request, server: ServerContext) -> Response:
    bucket = server.registry.bucket(req.bucket)
    if not bucket.object_lock:
        raise S3Error("ObjectLockConfigurationNotFoundError")
    doc = Document("ObjectLockConfiguration")
    add(doc.root, "ObjectLockEnabled", "Enabled")
    if bucket.default_retention is not None:
        default = bucket.default_retention
        retention = add(add(doc.root, "Rule"), "DefaultRetention")
        add(retention, "Mode", default.mode.value)
        if default.days is not None:
            add(retention, "Days", default.days)
        if default.years is not None:
            add(retention, "Years", default.years)
    return xml_response(doc)


async def put_object_lock_configuration(req: S3Request, server: ServerContext) -> Response:
    root = parse(await require_integrity(req.body), "ObjectLockConfiguration")
    if child_text(root, "ObjectLockEnabled") != "Enabled":
        raise S3Error("MalformedXML")
    default = None
    for rule in children(root, "Rule"):
        for retention in children(rule, "DefaultRetention"):
            days, years = child_text(retention, "Days"), child_text(retention, "Years")
            if (days is None) == (years is None):
                raise S3Error("MalformedXML")
            period = _positive(days if days is not None else years)
            default = DefaultRetention(
                _mode(child_text(retention, "Mode"), in_xml=True),
                days=period if days is not None else None,
                years=period if years is not None else None,
            )
    await server.registry.put_object_lock_configuration(req.bucket, default, req.provenance)
    return Response(status_code=200)


def _positive(text: str | None) -> int:
    if text is None or not text.strip().isdigit() or int(text) <= 0:
        raise S3Error("InvalidRetentionPeriod")
    return int(text)


async def get_object_retention(req: S3Request, server: ServerContext) -> Response:
    bucket = server.registry.bucket(req.bucket)
    if not bucket.object_lock:
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    version = server.registry.head_object(req.bucket, req.key, requested_version(req))
    if version.lock_mode is None or version.retain_until is None:
        raise S3Error("NoSuchObjectLockConfiguration")
    doc = Document("Retention")
    add(doc.root, "Mode", version.lock_mode.value)
    add(doc.root, "RetainUntilDate", iso(version.retain_until))
    return xml_response(doc, headers=version_headers(bucket, version))


async def put_object_retention(req: S3Request, server: ServerContext) -> Response:
    root = parse(await require_integrity(req.body), "Retention")
    mode_text, until_text = child_text(root, "Mode"), child_text(root, "RetainUntilDate")
    if (mode_text is None) != (until_text is None):
        raise S3Error("MalformedXML")
    until = parse_time(until_text, "RetainUntilDate") if until_text is not None else None
    if until is not None and until <= server.registry.clock():
        raise S3Error("InvalidArgument", "The retain until date must be in the future!")
    version = await server.registry.put_object_retention(
        req.bucket,
        req.key,
        requested_version(req),
        _mode(mode_text, in_xml=True) if mode_text is not None else None,
        until,
        req.provenance,
        bypass_governance=server.may_bypass(req),
    )
    bucket = server.registry.bucket(req.bucket)
    return Response(status_code=200, headers=version_headers(bucket, version))


async def get_object_legal_hold(req: S3Request, server: ServerContext) -> Response:
    bucket = server.registry.bucket(req.bucket)
    if not bucket.object_lock:
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    version = server.registry.head_object(req.bucket, req.key, requested_version(req))
    doc = Document("LegalHold")
    add(doc.root, "Status", "ON" if version.legal_hold else "OFF")
    return xml_response(doc, headers=version_headers(bucket, version))


async def put_object_legal_hold(req: S3Request, server: ServerContext) -> Response:
    root = parse(await require_integrity(req.body), "LegalHold")
    status = (child_text(root, "Status") or "").upper()
    if status not in ("ON", "OFF"):
        raise S3Error("MalformedXML")
    version = await server.registry.put_object_legal_hold(
        req.bucket, req.key, requested_version(req), status == "ON", req.provenance
    )
    bucket = server.registry.bucket(req.bucket)
    return Response(status_code=200, headers=version_headers(bucket, version))
