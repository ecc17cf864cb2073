"""Rendering: S3 error bodies and XML responses, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime

from lxml import etree
from starlette.responses import Response

from s3facade.errors import S3Error
from s3facade.xml import Document, serialize, set_text

XML_TYPE = "application/xml"


def error_response(error: S3Error, request_id: str, resource: str, *, head: bool) -> Response:
    if head:  # HEAD responses carry no body; clients read the status alone
        return Response(status_code=error.status, headers=error.headers)
    body = error_xml(error, request_id, resource)
    return Response(body, status_code=error.status, headers=error.headers, media_type=XML_TYPE)


def error_xml(error: S3Error, request_id: str, resource: str, *, declaration: bool = True) -> bytes:
    # AWS's error documents are not namespaced.
    root = etree.Element("Error")
    for name, value in (
        ("Code", error.code),
        ("Message", error.message),
        *error.extra.items(),
        ("Resource", error.resource or resource),
        ("RequestId", request_id),
    ):
        set_text(etree.SubElement(root, name), value)
    return serialize(root, declaration=declaration)


def xml_response(
    doc: Document, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(doc.to_bytes(), status_code=status, headers=headers, media_type=XML_TYPE)


def http_date(time: datetime) -> str:
    """RFC 7231 date of a naive-UTC time."""
    return format_datetime(time.replace(tzinfo=UTC, microsecond=0), usegmt=True)
