"""S3 XML in and out, with lxml. Parsing never resolves entities or touches the network."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import quote

from lxml import etree

from s3facade.errors import S3Error

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BYTES = 2 * 1024 * 1024

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


def parse(body: bytes, root: str) -> etree._Element:
    """Parse a request body whose root element must be `root` (any or no namespace)."""
    if not body.strip():
        raise S3Error("MalformedXML")
    try:
        element = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        raise S3Error("MalformedXML") from None
    if getattr(element.getroottree().docinfo, "doctype", ""):
        raise S3Error("MalformedXML")  # no DTDs, hence no entities of any kind
    if local_name(element) != root:
        raise S3Error("MalformedXML")
    return element


def local_name(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str):  # comments, entities
        return ""
    return etree.QName(tag).localname


def children(element: etree._Element, name: str) -> Iterator[etree._Element]:
    return (child for child in element if local_name(child) == name)


def child_text(element: etree._Element, name: str) -> str | None:
    for child in children(element, name):
        return child.text or ""
    return None


class Document:
    """Builds a response in S3's namespace: `doc = Document("ListBucketResult")`."""

    def __init__(self, root: str) -> None:
        self.root = etree.Element(f"{{{S3_NS}}}{root}", nsmap={None: S3_NS})  # type: ignore[dict-item]

    def to_bytes(self, *, declaration: bool = True) -> bytes:
        return serialize(self.root, declaration=declaration)


def serialize(root: etree._Element, *, declaration: bool = True) -> bytes:
    text = bytes(etree.tostring(root, xml_declaration=declaration, encoding="UTF-8"))
    return _CHAR_MARK.sub(rb"&#x\1;", text) if _MARK in text else text


# XML 1.0 cannot hold some characters that S3 keys may (U+0001...). lxml refuses them in
# text, so `add` writes a per-process marker that `to_bytes` turns into a character
# reference, which is what AWS sends.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_MARK = secrets.token_hex(16).encode()
_CHAR_MARK = re.compile(re.escape(_MARK) + rb"([0-9a-f]+);")


def add(parent: etree._Element, name: str, text: str | int | bool | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{S3_NS}}}{name}")
    if text is not None:
        set_text(element, _text(text))
    return element


def set_text(element: etree._Element, value: str) -> None:
    if _FORBIDDEN.search(value):
        value = _FORBIDDEN.sub(lambda m: f"{_MARK.decode()}{ord(m[0]):x};", value)
    element.text = value


def _text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return value


def iso8601(time: datetime) -> str:
    """S3's XML timestamps: millisecond precision, Z suffix (formatted by hand: a listing
    page formats a thousand, and strftime is the slower way)."""
    return (
        f"{time.year:04d}-{time.month:02d}-{time.day:02d}T{time.hour:02d}:{time.minute:02d}:"
        f"{time.second:02d}.{time.microsecond // 1000:03d}Z"
    )


def url_encode(value: str) -> str:
    """encoding-type=url: '/' kept, everything else but unreserved characters percent-encoded,
    a space as %20 (which every client's decoder reads; a '+' would be a literal plus to
    those that decode as a path)."""
    return quote(value, safe="/")
