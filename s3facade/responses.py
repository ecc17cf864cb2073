"""Rendering: S3 error bodies and XML responses, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime

from lxml import etree
from starlette.responses import Response

from s3facade.errors import S3Error
from s3facade.xml import Document

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
        etree.SubElement(root, name).text = _xml_safe(value)
    return bytes(etree.tostring(root, xml_declaration=declaration, encoding="UTF-8"))


def _xml_safe(text: str) -> str:
    """XML 1.0 cannot carry control characters (a hostile key may hold them)."""
    return "".join(c if c in "\t\n\r" or ord(c) >= 0x20 else f"\\x{ord(c):02x}" for c in text)


def xml_response(
    doc: Document, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(doc.to_bytes(), status_code=status, headers=headers, media_type=XML_TYPE)


def http_date(time: datetime) -> str:
    """RFC 7231 date of a naive-UTC time."""
    return format_datetime(time.replace(tzinfo=UTC, microsecond=0), usegmt=True)
