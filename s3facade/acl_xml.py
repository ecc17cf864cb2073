"""ACLs on the wire: the AccessControlPolicy body of PutBucketAcl/PutObjectAcl and
GetBucketAcl/GetObjectAcl, and the x-amz-acl / x-amz-grant-* request headers.
https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketAcl.html
https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObjectAcl.html
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from lxml import etree

from s3facade.errors import S3Error
from s3facade.registry.access.acl import (
    CANNED_ACLS,
    GROUPS,
    MAX_GRANTS,
    AccessControlList,
    Grant,
    Grantee,
    Permission,
    canned_acl,
)
from s3facade.xml import S3_NS, Document, add, child_text, children, local_name, parse

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = f"{{{XSI_NS}}}type"

# x-amz-grant-* header -> the permission it grants
GRANT_HEADERS: Mapping[str, Permission] = {
    "x-amz-grant-read": Permission.READ,
    "x-amz-grant-write": Permission.WRITE,
    "x-amz-grant-read-acp": Permission.READ_ACP,
    "x-amz-grant-write-acp": Permission.WRITE_ACP,
    "x-amz-grant-full-control": Permission.FULL_CONTROL,
}

# One grantee of a grant header: `kind=value` or `kind="value"`, then a comma or the end.
_HEADER_GRANTEE = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([^",]*))\s*(?:,|\Z)')


def parse_access_control_policy(
    body: bytes, known_user: Callable[[str], bool]
) -> AccessControlList:
    """The ACL a PutBucketAcl/PutObjectAcl body states, owner as given (the caller checks it).
    Shape errors are MalformedACLError, checked over the whole document first as AWS's schema
    validation does; then unknown ids, groups and email grantees each get AWS's own error."""
    try:
        root = parse(body, "AccessControlPolicy")
    except S3Error:
        raise S3Error("MalformedACLError") from None
    owner = _first(root, "Owner")
    owner_id = _text(owner, "ID") if owner is not None else None
    grant_list = _first(root, "AccessControlList")
    if not owner_id or grant_list is None:
        raise S3Error("MalformedACLError")
    elements = [child for child in grant_list if isinstance(child.tag, str)]
    if len(elements) > MAX_GRANTS or any(local_name(e) != "Grant" for e in elements):
        raise S3Error("MalformedACLError")
    stated = [_grant_shape(element) for element in elements]
    return AccessControlList(
        owner_id,
        tuple(Grant(_resolve(kind, value, known_user), perm) for kind, value, perm in stated),
    )


def _grant_shape(grant: etree._Element) -> tuple[str, str, Permission]:
    """(xsi:type, its ID/URI/EmailAddress, permission) of one Grant, or MalformedACLError."""
    grantee = _first(grant, "Grantee")
    permission = _text(grant, "Permission")
    if grantee is None or permission is None or permission not in Permission.__members__:
        raise S3Error("MalformedACLError")
    kind = grantee.get(_XSI_TYPE)
    field = {"CanonicalUser": "ID", "Group": "URI", "AmazonCustomerByEmail": "EmailAddress"}
    if kind not in field:
        raise S3Error("MalformedACLError")
    value = _text(grantee, field[kind])
    if not value:
        raise S3Error("MalformedACLError")
    return kind, value, Permission(permission)


def _resolve(kind: str, value: str, known_user: Callable[[str], bool]) -> Grantee:
    if kind == "CanonicalUser":
        if not known_user(value):
            raise _invalid_argument("Invalid id", "CanonicalUser/ID", value)
        return Grantee(user_id=value)
    if kind == "Group":
        if value not in GROUPS:
            raise _invalid_argument("Invalid group uri", "Group/URI", value)
        return Grantee(group=value)
    raise S3Error("UnresolvableGrantByEmailAddress")  # no user here has an email address


def render_access_control_policy(
    acl: AccessControlList, display_name: Callable[[str], str]
) -> Document:
    """The GetBucketAcl/GetObjectAcl body, shaped as AWS sends it (xsi declared on each
    Grantee, which is where AWS declares it)."""
    doc = Document("AccessControlPolicy")
    owner = add(doc.root, "Owner")
    add(owner, "ID", acl.owner)
    add(owner, "DisplayName", display_name(acl.owner))
    grants = add(doc.root, "AccessControlList")
    for grant in acl.grants:
        element = add(grants, "Grant")
        grantee = etree.SubElement(element, f"{{{S3_NS}}}Grantee", nsmap={"xsi": XSI_NS})
        if grant.grantee.user_id is not None:
            grantee.set(_XSI_TYPE, "CanonicalUser")
            add(grantee, "ID", grant.grantee.user_id)
            add(grantee, "DisplayName", display_name(grant.grantee.user_id))
        else:
            grantee.set(_XSI_TYPE, "Group")
            add(grantee, "URI", grant.grantee.group)
        add(element, "Permission", grant.permission.value)
    return doc


def acl_from_headers(
    headers: Mapping[str, str],
    owner: str,
    bucket_owner: str | None,
    known_user: Callable[[str], bool],
) -> AccessControlList | None:
    """The ACL a request's x-amz-acl or x-amz-grant-* headers state, or None when it has
    neither. Grant headers replace the whole ACL, as on AWS: the owner holds only what they
    grant it (its standing READ_ACP/WRITE_ACP rights are not in the ACL)."""
    values = _merged(headers)
    canned = values.get("x-amz-acl")
    granted = [(name, values[name]) for name in GRANT_HEADERS if name in values]
    if canned is not None and granted:
        raise S3Error(
            "InvalidRequest", "Specifying both Canned ACLs and Header Grants is not allowed"
        )
    if canned is not None:
        if canned not in CANNED_ACLS:
            raise _invalid_argument(None, "x-amz-acl", canned)
        return canned_acl(canned, owner, bucket_owner)
    if not granted:
        return None
    grants = tuple(
        Grant(grantee, GRANT_HEADERS[name])
        for name, value in granted
        for grantee in _header_grantees(name, value, known_user)
    )
    if len(grants) > MAX_GRANTS:
        raise S3Error("MalformedACLError")
    return AccessControlList(owner, grants)


def _merged(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers by lower-case name; a header sent twice is one comma-joined list (RFC 9110),
    and Starlette's Headers lists each line in items()."""
    merged: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _header_grantees(header: str, value: str, known_user: Callable[[str], bool]) -> list[Grantee]:
    """`id="...", uri="...", emailAddress="..."` -> grantees, with AWS's errors."""
    stated: list[tuple[str, str]] = []
    text = value.strip()
    position = 0
    while position < len(text):
        match = _HEADER_GRANTEE.match(text, position)
        if match is None:
            raise _invalid_argument("Argument format not recognized", header, value)
        kind, quoted, bare = match.groups()
        stated.append((kind.lower(), quoted if quoted is not None else bare.strip()))
        position = match.end()
    if not stated or any(kind not in ("id", "uri", "emailaddress") for kind, _ in stated):
        raise _invalid_argument("Argument format not recognized", header, value)
    grantees: list[Grantee] = []
    for kind, name in stated:
        if kind == "id":
            if not known_user(name):
                raise _invalid_argument("Invalid id", "id", name)
            grantees.append(Grantee(user_id=name))
        elif kind == "uri":
            if name not in GROUPS:
                raise _invalid_argument("Invalid group uri", "uri", name)
            grantees.append(Grantee(group=name))
        else:
            raise S3Error("UnresolvableGrantByEmailAddress")
    return grantees


def _invalid_argument(message: str | None, name: str, value: str) -> S3Error:
    return S3Error("InvalidArgument", message, extra={"ArgumentName": name, "ArgumentValue": value})


def _first(parent: etree._Element, name: str) -> etree._Element | None:
    return next(children(parent, name), None)


def _text(parent: etree._Element, name: str) -> str | None:
    """A child's text, trimmed (hand-written policies are often indented)."""
    text = child_text(parent, name)
    return text.strip() if text is not None else None
