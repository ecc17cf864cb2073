"""Bucket CORS on the wire: the CORSConfiguration document of Put/GetBucketCors, and the
Access-Control-* headers of a preflight (OPTIONS) and of an actual cross-origin request."""

from __future__ import annotations

import re
from collections.abc import Iterator

from lxml import etree

from s3facade.errors import S3Error
from s3facade.registry.access.cors import (
    MAX_RULES,
    METHODS,
    CorsConfiguration,
    CorsRule,
    InvalidCorsConfiguration,
)
from s3facade.xml import Document, add, local_name, parse

# Every CORS answer varies with these request headers, so a cache must key on them.
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
NOT_ENABLED = "CORSResponse: CORS is not enabled for this bucket."
NO_ORIGIN = "Insufficient information. Origin request header needed."

_LISTS = ("AllowedMethod", "AllowedOrigin", "AllowedHeader", "ExposeHeader")
_SINGLES = ("ID", "MaxAgeSeconds")
_INTEGER = re.compile(r"[+-]?[0-9]+")  # xsd:int's lexical form (int() would take "1_0")


def parse_cors_configuration(body: bytes) -> CorsConfiguration:
    """PutBucketCors's body. Structure is checked before values, so a document wrong in both
    ways is MalformedXML, and a well-formed one S3 refuses is InvalidRequest."""
    root = parse(body, "CORSConfiguration")
    elements = list(_elements(root))
    if not elements or len(elements) > MAX_RULES:
        raise S3Error("MalformedXML")
    rules = [_rule(element) for element in elements]
    try:
        return CorsConfiguration.of(rules)
    except InvalidCorsConfiguration as refused:
        raise S3Error("InvalidRequest", refused.message) from None


def _rule(element: etree._Element) -> CorsRule:
    if local_name(element) != "CORSRule":
        raise S3Error("MalformedXML")
    values: dict[str, list[str]] = {name: [] for name in (*_LISTS, *_SINGLES)}
    for child in _elements(element):
        name = local_name(child)
        if name not in values or len(child) or (name in _SINGLES and values[name]):
            raise S3Error("MalformedXML")
        values[name].append(child.text or "")
    if not values["AllowedMethod"] or not values["AllowedOrigin"]:
        raise S3Error("MalformedXML")
    max_age = values["MaxAgeSeconds"]
    if max_age and not _INTEGER.fullmatch(max_age[0].strip()):
        raise S3Error("MalformedXML")
    return CorsRule(
        allowed_methods=tuple(values["AllowedMethod"]),
        allowed_origins=tuple(values["AllowedOrigin"]),
        allowed_headers=tuple(values["AllowedHeader"]),
        expose_headers=tuple(values["ExposeHeader"]),
        max_age_seconds=int(max_age[0]) if max_age else None,
        id=values["ID"][0] if values["ID"] else None,
    )


def _elements(parent: etree._Element) -> Iterator[etree._Element]:
    """The child elements; text beside them, other than layout, is not in the schema."""
    if (parent.text or "").strip():
        raise S3Error("MalformedXML")
    for child in parent:
        if (child.tail or "").strip():
            raise S3Error("MalformedXML")
        yield child


def render_cors_configuration(config: CorsConfiguration) -> Document:
    """GetBucketCors's body, members in the order of S3's model."""
    doc = Document("CORSConfiguration")
    for rule in config.rules:
        element = add(doc.root, "CORSRule")
        if rule.id is not None:
            add(element, "ID", rule.id)
        for name, values in (
            ("AllowedHeader", rule.allowed_headers),
            ("AllowedMethod", rule.allowed_methods),
            ("AllowedOrigin", rule.allowed_origins),
            ("ExposeHeader", rule.expose_headers),
        ):
            for value in values:
                add(element, name, value)
        if rule.max_age_seconds is not None:
            add(element, "MaxAgeSeconds", rule.max_age_seconds)
    return doc


def requested_headers(value: str | None) -> tuple[str, ...]:
    """Access-Control-Request-Headers' names, lower-cased, in the order sent (S3 echoes them
    so); empty list elements are skipped, as HTTP lists allow them."""
    if value is None:
        return ()
    return tuple(name for part in value.split(",") if (name := part.strip(" \t").lower()))


def preflight_headers(
    config: CorsConfiguration | None,
    origin: str | None,
    method: str | None,
    request_headers: str | None,
) -> dict[str, str]:
    """The headers of a 200 answer to an OPTIONS request, or the S3Error S3 answers with.

    `method` is Access-Control-Request-Method. S3 asks for the Origin first, then for a
    configuration (an OPTIONS with an Origin alone to a bucket without CORS is the 403 "not
    enabled"), then checks the method. `Method` in the 403's body is the method requested,
    or OPTIONS when none was.
    """
    if not origin:
        raise S3Error("BadRequest", NO_ORIGIN)
    if config is None:
        raise S3Error("AccessForbidden", NOT_ENABLED, extra={"Method": method or "OPTIONS"})
    if method not in METHODS:
        # S3 names a missing header "null"
        shown = "null" if method is None else method
        raise S3Error("BadRequest", f"Invalid Access-Control-Request-Method: {shown}")
    names = requested_headers(request_headers)
    rule = config.rule_for(origin, method, names)
    if rule is None:
        raise S3Error("AccessForbidden", extra={"Method": method})
    headers = _allow(rule, origin)
    if names:
        headers["Access-Control-Allow-Headers"] = ", ".join(names)
    return _finish(rule, headers)


def actual_request_headers(
    config: CorsConfiguration | None, origin: str | None, method: str
) -> dict[str, str]:
    """The CORS headers of a non-OPTIONS request. S3 never refuses one for CORS: without an
    Origin, a configuration or a rule for origin and method it just sends none. The
    request's headers are not checked. S3 matches on Access-Control-Request-Method when an
    actual request carries one, so the caller passes that in preference to the method."""
    if not origin or config is None:
        return {}
    rule = config.rule_for(origin, method)
    return {} if rule is None else _finish(rule, _allow(rule, origin))


def _allow(rule: CorsRule, origin: str) -> dict[str, str]:
    allowed = "*" if rule.matching_origin(origin) == "*" else origin
    return {
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Allow-Methods": ", ".join(rule.allowed_methods),
    }


def _finish(rule: CorsRule, headers: dict[str, str]) -> dict[str, str]:
    if rule.expose_headers:
        headers["Access-Control-Expose-Headers"] = ", ".join(rule.expose_headers)
    if rule.max_age_seconds is not None:
        headers["Access-Control-Max-Age"] = str(rule.max_age_seconds)
    # Browsers refuse credentials with "*"; S3 offers them whenever it echoes the origin.
    if headers["Access-Control-Allow-Origin"] != "*":
        headers["Access-Control-Allow-Credentials"] = "true"
    headers["Vary"] = VARY
    return headers
