"""ACLs without a server: the model (registry.access.acl) and its wire forms
(s3facade.acl_xml), table by table against AWS's documented behaviour."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from botocore.session import get_session
from lxml import etree
from starlette.datastructures import Headers

from s3facade.acl_xml import (
    XSI_NS,
    acl_from_headers,
    parse_access_control_policy,
    render_access_control_policy,
)
from s3facade.errors import S3Error
from s3facade.registry.access.acl import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    CANNED_ACLS,
    LOG_DELIVERY,
    AccessControlList,
    Grant,
    Grantee,
    InvalidCannedAcl,
    Permission,
    canned_acl,
    private_acl,
)
from s3facade.registry.access.principals import canonical_user_id
from s3facade.registry.errors import RegistryError
from s3facade.xml import S3_NS

OWNER = canonical_user_id("AKIDOWNER")
OTHER = canonical_user_id("AKIDOTHER")
STRANGER = canonical_user_id("AKIDSTRANGER")  # a well-shaped id of no configured user
KNOWN = {OWNER, OTHER}
NAMES = {OWNER: "owner", OTHER: "other"}

P = Permission
FULL, READ, WRITE, READ_ACP, WRITE_ACP = (
    P.FULL_CONTROL,
    P.READ,
    P.WRITE,
    P.READ_ACP,
    P.WRITE_ACP,
)


def known(user_id: str) -> bool:
    return user_id in KNOWN


def user(user_id: str, permission: Permission) -> Grant:
    return Grant(Grantee(user_id=user_id), permission)


def group(uri: str, permission: Permission) -> Grant:
    return Grant(Grantee(group=uri), permission)


def acl(*grants: Grant) -> AccessControlList:
    return AccessControlList(OWNER, grants)


# --- canned ACLs ---------------------------------------------------------------------------

CANNED_ROWS: list[tuple[str, str | None, tuple[Grant, ...]]] = [
    ("private", None, (user(OWNER, FULL),)),
    ("public-read", None, (user(OWNER, FULL), group(ALL_USERS, READ))),
    (
        "public-read-write",
        None,
        (user(OWNER, FULL), group(ALL_USERS, READ), group(ALL_USERS, WRITE)),
    ),
    ("authenticated-read", None, (user(OWNER, FULL), group(AUTHENTICATED_USERS, READ))),
    ("aws-exec-read", None, (user(OWNER, FULL),)),
    ("bucket-owner-read", OTHER, (user(OWNER, FULL), user(OTHER, READ))),
    ("bucket-owner-read", OWNER, (user(OWNER, FULL),)),
    ("bucket-owner-read", None, (user(OWNER, FULL),)),
    ("bucket-owner-full-control", OTHER, (user(OWNER, FULL), user(OTHER, FULL))),
    ("bucket-owner-full-control", OWNER, (user(OWNER, FULL),)),
    ("bucket-owner-full-control", None, (user(OWNER, FULL),)),
    (
        "log-delivery-write",
        None,
        (user(OWNER, FULL), group(LOG_DELIVERY, WRITE), group(LOG_DELIVERY, READ_ACP)),
    ),
]


@pytest.mark.parametrize(("name", "bucket_owner", "grants"), CANNED_ROWS)
def test_canned_acl_grants(name: str, bucket_owner: str | None, grants: tuple[Grant, ...]) -> None:
    made = canned_acl(name, OWNER, bucket_owner)
    assert made.owner == OWNER
    assert made.grants == grants


def test_every_canned_acl_has_a_row() -> None:
    assert {row[0] for row in CANNED_ROWS} == set(CANNED_ACLS)
    assert len(CANNED_ACLS) == 8


def test_private_acl_is_the_private_canned_acl() -> None:
    assert private_acl(OWNER) == canned_acl("private", OWNER)


@pytest.mark.parametrize("name", ["", "Private", "public_read", "bucket-owner"])
def test_unknown_canned_acl(name: str) -> None:
    with pytest.raises(InvalidCannedAcl) as caught:
        canned_acl(name, OWNER)
    assert isinstance(caught.value, RegistryError)
    assert caught.value.name == name


# --- allows / is_public --------------------------------------------------------------------

ALLOWS_ROWS: list[tuple[str, AccessControlList, str | None, Permission, bool]] = [
    ("owner through FULL_CONTROL", private_acl(OWNER), OWNER, READ, True),
    ("owner WRITE_ACP through FULL_CONTROL", private_acl(OWNER), OWNER, WRITE_ACP, True),
    ("other on private", private_acl(OWNER), OTHER, READ, False),
    ("anonymous on private", private_acl(OWNER), None, READ, False),
    ("owner gets nothing implicitly", acl(), OWNER, READ_ACP, False),
    ("owner granted READ only", acl(user(OWNER, READ)), OWNER, WRITE, False),
    ("public-read: anonymous READ", canned_acl("public-read", OWNER), None, READ, True),
    ("public-read: anonymous WRITE", canned_acl("public-read", OWNER), None, WRITE, False),
    ("public-read: other READ", canned_acl("public-read", OWNER), OTHER, READ, True),
    ("public-read: other READ_ACP", canned_acl("public-read", OWNER), OTHER, READ_ACP, False),
    ("public-read-write: anon WRITE", canned_acl("public-read-write", OWNER), None, WRITE, True),
    ("authenticated-read: anon", canned_acl("authenticated-read", OWNER), None, READ, False),
    ("authenticated-read: other", canned_acl("authenticated-read", OWNER), OTHER, READ, True),
    ("LogDelivery is nobody here", canned_acl("log-delivery-write", OWNER), OTHER, WRITE, False),
    ("LogDelivery not anonymous", canned_acl("log-delivery-write", OWNER), None, WRITE, False),
    ("READ grant: READ", acl(user(OTHER, READ)), OTHER, READ, True),
    ("READ grant: not FULL_CONTROL", acl(user(OTHER, READ)), OTHER, FULL, False),
    ("READ grant: not READ_ACP", acl(user(OTHER, READ)), OTHER, READ_ACP, False),
    ("READ grant: not a third user", acl(user(OTHER, READ)), STRANGER, READ, False),
    ("FULL_CONTROL: READ", acl(user(OTHER, FULL)), OTHER, READ, True),
    ("FULL_CONTROL: WRITE", acl(user(OTHER, FULL)), OTHER, WRITE, True),
    ("FULL_CONTROL: READ_ACP", acl(user(OTHER, FULL)), OTHER, READ_ACP, True),
    ("FULL_CONTROL: WRITE_ACP", acl(user(OTHER, FULL)), OTHER, WRITE_ACP, True),
    ("FULL_CONTROL: FULL_CONTROL", acl(user(OTHER, FULL)), OTHER, FULL, True),
    ("AllUsers FULL_CONTROL: anon", acl(group(ALL_USERS, FULL)), None, WRITE_ACP, True),
    ("AuthenticatedUsers: anyone", acl(group(AUTHENTICATED_USERS, WRITE)), STRANGER, WRITE, True),
    ("WRITE_ACP grant: not WRITE", acl(user(OTHER, WRITE_ACP)), OTHER, WRITE, False),
]


@pytest.mark.parametrize(
    ("the_acl", "who", "permission", "expected"),
    [row[1:] for row in ALLOWS_ROWS],
    ids=[row[0] for row in ALLOWS_ROWS],
)
def test_allows(
    the_acl: AccessControlList, who: str | None, permission: Permission, expected: bool
) -> None:
    assert the_acl.allows(who, permission) is expected


@pytest.mark.parametrize(
    ("the_acl", "public"),
    [
        (private_acl(OWNER), False),
        (canned_acl("public-read", OWNER), True),
        (canned_acl("public-read-write", OWNER), True),
        (canned_acl("authenticated-read", OWNER), True),
        (canned_acl("log-delivery-write", OWNER), False),
        (canned_acl("bucket-owner-full-control", OWNER, OTHER), False),
        (acl(group(ALL_USERS, READ_ACP)), True),
        (acl(), False),
    ],
)
def test_is_public(the_acl: AccessControlList, public: bool) -> None:
    assert the_acl.is_public() is public


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"user_id": OWNER, "group": ALL_USERS}, {"group": "http://example.com/group"}],
)
def test_grantee_is_one_user_or_one_known_group(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        Grantee(**kwargs)


# --- as_dict -------------------------------------------------------------------------------

ROUND_TRIP_ACLS = [
    *(canned_acl(name, OWNER, OTHER) for name in CANNED_ACLS),
    acl(),
    acl(user(OTHER, WRITE_ACP), group(ALL_USERS, READ), user(OTHER, WRITE_ACP)),
]


@pytest.mark.parametrize("the_acl", ROUND_TRIP_ACLS)
def test_as_dict_round_trips_through_json(the_acl: AccessControlList) -> None:
    plain = json.loads(json.dumps(the_acl.as_dict()))
    assert AccessControlList.from_dict(plain) == the_acl


def test_as_dict_shape() -> None:
    assert canned_acl("public-read", OWNER).as_dict() == {
        "owner": OWNER,
        "grants": [
            {"user_id": OWNER, "permission": "FULL_CONTROL"},
            {"group": ALL_USERS, "permission": "READ"},
        ],
    }


# --- AccessControlPolicy XML in ------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def s3_model() -> Any:
    return get_session().get_service_model("s3")


def boto3_body(policy: dict[str, Any]) -> bytes:
    """The body boto3's put_bucket_acl(AccessControlPolicy=policy) sends."""
    operation = s3_model().operation_model("PutBucketAcl")
    request = create_serializer("rest-xml").serialize_to_request(
        {"Bucket": "bucket", "AccessControlPolicy": policy}, operation
    )
    body: bytes = request["body"]
    return body


def policy_xml(grants: str, owner: str = f"<Owner><ID>{OWNER}</ID></Owner>") -> bytes:
    return (
        f'<AccessControlPolicy xmlns="{S3_NS}">{owner}'
        f"<AccessControlList>{grants}</AccessControlList></AccessControlPolicy>"
    ).encode()


def grant_xml(kind: str, inner: str, permission: str = "READ") -> str:
    return (
        f'<Grant><Grantee xmlns:xsi="{XSI_NS}" xsi:type="{kind}">{inner}</Grantee>'
        f"<Permission>{permission}</Permission></Grant>"
    )


HAND_WRITTEN = f"""<?xml version="1.0" encoding="UTF-8"?>
<AccessControlPolicy xmlns="{S3_NS}">
  <Owner>
    <ID>{OWNER}</ID>
    <DisplayName>owner</DisplayName>
  </Owner>
  <AccessControlList>
    <Grant>
      <Grantee xmlns:xsi="{XSI_NS}" xsi:type="CanonicalUser">
        <ID>{OTHER}</ID>
        <DisplayName>whatever the client says</DisplayName>
      </Grantee>
      <Permission>WRITE_ACP</Permission>
    </Grant>
    <Grant>
      <Grantee xmlns:xsi="{XSI_NS}" xsi:type="Group">
        <URI>{LOG_DELIVERY}</URI>
      </Grantee>
      <Permission>WRITE</Permission>
    </Grant>
  </AccessControlList>
</AccessControlPolicy>
""".encode()

GOOD_POLICIES: list[tuple[str, bytes, AccessControlList]] = [
    (
        "boto3 user and group",
        boto3_body(
            {
                "Owner": {"ID": OWNER, "DisplayName": "owner"},
                "Grants": [
                    {
                        "Grantee": {"Type": "CanonicalUser", "ID": OWNER},
                        "Permission": "FULL_CONTROL",
                    },
                    {"Grantee": {"Type": "CanonicalUser", "ID": OTHER}, "Permission": "READ"},
                    {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"},
                    {
                        "Grantee": {"Type": "Group", "URI": AUTHENTICATED_USERS},
                        "Permission": "READ_ACP",
                    },
                ],
            }
        ),
        acl(
            user(OWNER, FULL),
            user(OTHER, READ),
            group(ALL_USERS, READ),
            group(AUTHENTICATED_USERS, READ_ACP),
        ),
    ),
    (
        "boto3 no grants",
        boto3_body({"Owner": {"ID": OWNER}, "Grants": []}),
        acl(),
    ),
    (
        "hand-written, indented",
        HAND_WRITTEN,
        acl(user(OTHER, WRITE_ACP), group(LOG_DELIVERY, WRITE)),
    ),
    (
        "every permission, duplicates kept",
        policy_xml(
            "".join(grant_xml("CanonicalUser", f"<ID>{OTHER}</ID>", p.value) for p in Permission)
            + grant_xml("CanonicalUser", f"<ID>{OTHER}</ID>", "READ")
        ),
        acl(*(user(OTHER, p) for p in Permission), user(OTHER, READ)),
    ),
    (
        "no namespace, owner not checked here",
        f"<AccessControlPolicy><Owner><ID>{STRANGER}</ID></Owner><AccessControlList>"
        f"{grant_xml('Group', f'<URI>{ALL_USERS}</URI>')}</AccessControlList>"
        "</AccessControlPolicy>".encode(),
        AccessControlList(STRANGER, (group(ALL_USERS, READ),)),
    ),
    (
        "100 grants",
        policy_xml(grant_xml("Group", f"<URI>{ALL_USERS}</URI>") * 100),
        acl(*[group(ALL_USERS, READ)] * 100),
    ),
]


@pytest.mark.parametrize(
    ("body", "expected"), [row[1:] for row in GOOD_POLICIES], ids=[row[0] for row in GOOD_POLICIES]
)
def test_parse_policy(body: bytes, expected: AccessControlList) -> None:
    assert parse_access_control_policy(body, known) == expected


ONE_GRANT = grant_xml("CanonicalUser", f"<ID>{OTHER}</ID>")
BAD_POLICIES: list[tuple[str, bytes, str, dict[str, str]]] = [
    ("empty body", b"", "MalformedACLError", {}),
    ("not XML", b"<AccessControlPolicy><Owner>", "MalformedACLError", {}),
    ("wrong root", b"<AccessControlList/>", "MalformedACLError", {}),
    (
        "a DTD",
        b'<!DOCTYPE a [<!ENTITY x "y">]><AccessControlPolicy/>',
        "MalformedACLError",
        {},
    ),
    ("no Owner", policy_xml(ONE_GRANT, owner=""), "MalformedACLError", {}),
    ("Owner without ID", policy_xml(ONE_GRANT, owner="<Owner/>"), "MalformedACLError", {}),
    (
        "empty Owner ID",
        policy_xml(ONE_GRANT, owner="<Owner><ID/></Owner>"),
        "MalformedACLError",
        {},
    ),
    (
        "no AccessControlList",
        f"<AccessControlPolicy><Owner><ID>{OWNER}</ID></Owner></AccessControlPolicy>".encode(),
        "MalformedACLError",
        {},
    ),
    (
        "Grant without Permission",
        policy_xml(
            f'<Grant><Grantee xmlns:xsi="{XSI_NS}" xsi:type="CanonicalUser"><ID>{OTHER}</ID>'
            "</Grantee></Grant>"
        ),
        "MalformedACLError",
        {},
    ),
    (
        "unknown permission",
        policy_xml(grant_xml("CanonicalUser", f"<ID>{OTHER}</ID>", "read")),
        "MalformedACLError",
        {},
    ),
    (
        "Grant without Grantee",
        policy_xml("<Grant><Permission>READ</Permission></Grant>"),
        "MalformedACLError",
        {},
    ),
    (
        "Grantee without xsi:type",
        policy_xml(
            f"<Grant><Grantee><ID>{OTHER}</ID></Grantee><Permission>READ</Permission></Grant>"
        ),
        "MalformedACLError",
        {},
    ),
    (
        "undeclared xsi prefix",
        policy_xml(
            f'<Grant><Grantee xsi:type="CanonicalUser"><ID>{OTHER}</ID></Grantee>'
            "<Permission>READ</Permission></Grant>"
        ),
        "MalformedACLError",
        {},
    ),
    (
        "unknown xsi:type",
        policy_xml(grant_xml("AmazonUser", f"<ID>{OTHER}</ID>")),
        "MalformedACLError",
        {},
    ),
    (
        "CanonicalUser without ID",
        policy_xml(grant_xml("CanonicalUser", f"<URI>{ALL_USERS}</URI>")),
        "MalformedACLError",
        {},
    ),
    (
        "Group without URI",
        policy_xml(grant_xml("Group", f"<ID>{OTHER}</ID>")),
        "MalformedACLError",
        {},
    ),
    (
        "not a Grant in the list",
        policy_xml(ONE_GRANT + "<Permission>READ</Permission>"),
        "MalformedACLError",
        {},
    ),
    (
        "101 grants",
        policy_xml(grant_xml("Group", f"<URI>{ALL_USERS}</URI>") * 101),
        "MalformedACLError",
        {},
    ),
    (
        "shape errors win over unknown ids",
        policy_xml(
            grant_xml("CanonicalUser", f"<ID>{STRANGER}</ID>")
            + grant_xml("CanonicalUser", f"<ID>{OTHER}</ID>", "EVERYTHING")
        ),
        "MalformedACLError",
        {},
    ),
    (
        "unknown canonical id",
        policy_xml(grant_xml("CanonicalUser", f"<ID>{STRANGER}</ID>")),
        "InvalidArgument",
        {"ArgumentName": "CanonicalUser/ID", "ArgumentValue": STRANGER},
    ),
    (
        "unknown group",
        policy_xml(
            grant_xml("Group", "<URI>http://acs.amazonaws.com/groups/global/Everyone</URI>")
        ),
        "InvalidArgument",
        {
            "ArgumentName": "Group/URI",
            "ArgumentValue": "http://acs.amazonaws.com/groups/global/Everyone",
        },
    ),
    (
        "email grantee",
        policy_xml(grant_xml("AmazonCustomerByEmail", "<EmailAddress>a@b.example</EmailAddress>")),
        "UnresolvableGrantByEmailAddress",
        {},
    ),
]


@pytest.mark.parametrize(
    ("body", "code", "extra"),
    [row[1:] for row in BAD_POLICIES],
    ids=[row[0] for row in BAD_POLICIES],
)
def test_parse_policy_refuses(body: bytes, code: str, extra: dict[str, str]) -> None:
    with pytest.raises(S3Error) as caught:
        parse_access_control_policy(body, known)
    assert caught.value.code == code
    assert caught.value.extra == extra
    if code == "InvalidArgument":
        assert caught.value.message in ("Invalid id", "Invalid group uri")


# --- AccessControlPolicy XML out -----------------------------------------------------------

RENDERED = acl(user(OWNER, FULL), user(OTHER, READ_ACP), group(ALL_USERS, READ))


def rendered_bytes(the_acl: AccessControlList) -> bytes:
    return render_access_control_policy(the_acl, NAMES.__getitem__).to_bytes()


def test_render_reads_back_with_lxml() -> None:
    root = etree.fromstring(rendered_bytes(RENDERED))
    ns = {"s3": S3_NS}
    assert root.tag == f"{{{S3_NS}}}AccessControlPolicy"
    assert root.findtext("s3:Owner/s3:ID", namespaces=ns) == OWNER
    assert root.findtext("s3:Owner/s3:DisplayName", namespaces=ns) == "owner"
    grants = root.findall("s3:AccessControlList/s3:Grant", namespaces=ns)
    assert len(grants) == 3
    seen = []
    for grant in grants:
        grantee = grant.find("s3:Grantee", namespaces=ns)
        assert grantee is not None
        kind = grantee.get(f"{{{XSI_NS}}}type")
        fields = {etree.QName(child).localname: child.text for child in grantee}
        seen.append((kind, fields, grant.findtext("s3:Permission", namespaces=ns)))
    assert seen == [
        ("CanonicalUser", {"ID": OWNER, "DisplayName": "owner"}, "FULL_CONTROL"),
        ("CanonicalUser", {"ID": OTHER, "DisplayName": "other"}, "READ_ACP"),
        ("Group", {"URI": ALL_USERS}, "READ"),
    ]


def test_render_declares_xsi_on_each_grantee() -> None:
    text = rendered_bytes(RENDERED)
    assert text.startswith(b"<?xml")
    assert text.count(f'<Grantee xmlns:xsi="{XSI_NS}" xsi:type="'.encode()) == 3


def test_render_as_boto3_reads_it() -> None:
    operation = s3_model().operation_model("GetBucketAcl")
    parsed = create_parser("rest-xml").parse(
        {"body": rendered_bytes(RENDERED), "headers": {}, "status_code": 200},
        operation.output_shape,
    )
    assert parsed["Owner"] == {"ID": OWNER, "DisplayName": "owner"}
    assert parsed["Grants"] == [
        {
            "Grantee": {"Type": "CanonicalUser", "ID": OWNER, "DisplayName": "owner"},
            "Permission": "FULL_CONTROL",
        },
        {
            "Grantee": {"Type": "CanonicalUser", "ID": OTHER, "DisplayName": "other"},
            "Permission": "READ_ACP",
        },
        {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"},
    ]


@pytest.mark.parametrize("the_acl", ROUND_TRIP_ACLS)
def test_render_then_parse_round_trips(the_acl: AccessControlList) -> None:
    assert parse_access_control_policy(rendered_bytes(the_acl), known) == the_acl


# --- x-amz-acl and x-amz-grant-* headers ---------------------------------------------------

GOOD_HEADERS: list[tuple[str, dict[str, str], str | None, AccessControlList | None]] = [
    ("none", {}, None, None),
    ("unrelated headers", {"x-amz-meta-acl": "public-read", "content-type": "x/y"}, None, None),
    ("canned", {"x-amz-acl": "public-read"}, None, canned_acl("public-read", OWNER)),
    (
        "canned naming the bucket owner",
        {"x-amz-acl": "bucket-owner-full-control"},
        OTHER,
        acl(user(OWNER, FULL), user(OTHER, FULL)),
    ),
    ("one quoted id", {"x-amz-grant-read": f'id="{OTHER}"'}, None, acl(user(OTHER, READ))),
    ("unquoted id", {"x-amz-grant-write": f"id={OTHER}"}, None, acl(user(OTHER, WRITE))),
    (
        "several grantees in one header",
        {"x-amz-grant-read": f'id="{OTHER}", uri="{ALL_USERS}",id={OWNER}'},
        None,
        acl(user(OTHER, READ), group(ALL_USERS, READ), user(OWNER, READ)),
    ),
    (
        "trailing comma",
        {"x-amz-grant-read-acp": f'id="{OTHER}",'},
        None,
        acl(user(OTHER, READ_ACP)),
    ),
    (
        "every grant header, owner gets only what is granted",
        {
            "x-amz-grant-full-control": f'id="{OTHER}"',
            "x-amz-grant-read": f'uri="{ALL_USERS}"',
            "x-amz-grant-write": f'uri="{LOG_DELIVERY}"',
            "x-amz-grant-read-acp": f'id="{OWNER}"',
            "x-amz-grant-write-acp": f'uri="{AUTHENTICATED_USERS}"',
        },
        None,
        acl(
            group(ALL_USERS, READ),
            group(LOG_DELIVERY, WRITE),
            user(OWNER, READ_ACP),
            group(AUTHENTICATED_USERS, WRITE_ACP),
            user(OTHER, FULL),
        ),
    ),
    (
        "header names in any case, key names too",
        {"X-Amz-Grant-Read": f'ID="{OTHER}"', "X-AMZ-ACL-ish": "x"},
        None,
        acl(user(OTHER, READ)),
    ),
]


@pytest.mark.parametrize(
    ("headers", "bucket_owner", "expected"),
    [row[1:] for row in GOOD_HEADERS],
    ids=[row[0] for row in GOOD_HEADERS],
)
def test_acl_from_headers(
    headers: dict[str, str], bucket_owner: str | None, expected: AccessControlList | None
) -> None:
    assert acl_from_headers(headers, OWNER, bucket_owner, known) == expected


def test_repeated_grant_header_lines_all_count() -> None:
    headers = Headers(
        raw=[
            (b"x-amz-grant-read", f'id="{OTHER}"'.encode()),
            (b"x-amz-grant-read", f'uri="{ALL_USERS}"'.encode()),
        ]
    )
    assert acl_from_headers(headers, OWNER, None, known) == acl(
        user(OTHER, READ), group(ALL_USERS, READ)
    )


BAD_HEADERS: list[tuple[str, dict[str, str], str, str | None, dict[str, str]]] = [
    (
        "canned and grant",
        {"x-amz-acl": "private", "x-amz-grant-read": f'id="{OTHER}"'},
        "InvalidRequest",
        "Specifying both Canned ACLs and Header Grants is not allowed",
        {},
    ),
    (
        "unknown canned",
        {"x-amz-acl": "public"},
        "InvalidArgument",
        None,
        {"ArgumentName": "x-amz-acl", "ArgumentValue": "public"},
    ),
    (
        "no key=value",
        {"x-amz-grant-full-control": "fdjklasaj"},
        "InvalidArgument",
        "Argument format not recognized",
        {"ArgumentName": "x-amz-grant-full-control", "ArgumentValue": "fdjklasaj"},
    ),
    (
        "unknown grantee kind",
        {"x-amz-grant-read": 'user="x"'},
        "InvalidArgument",
        "Argument format not recognized",
        {"ArgumentName": "x-amz-grant-read", "ArgumentValue": 'user="x"'},
    ),
    (
        "missing comma",
        {"x-amz-grant-write": f'id="{OTHER}" id="{OWNER}"'},
        "InvalidArgument",
        "Argument format not recognized",
        {"ArgumentName": "x-amz-grant-write", "ArgumentValue": f'id="{OTHER}" id="{OWNER}"'},
    ),
    (
        "unclosed quote",
        {"x-amz-grant-read-acp": f'id="{OTHER}'},
        "InvalidArgument",
        "Argument format not recognized",
        {"ArgumentName": "x-amz-grant-read-acp", "ArgumentValue": f'id="{OTHER}'},
    ),
    (
        "empty",
        {"x-amz-grant-write-acp": ""},
        "InvalidArgument",
        "Argument format not recognized",
        {"ArgumentName": "x-amz-grant-write-acp", "ArgumentValue": ""},
    ),
    (
        "unknown id",
        {"x-amz-grant-read": f'id="{OTHER}", id="{STRANGER}"'},
        "InvalidArgument",
        "Invalid id",
        {"ArgumentName": "id", "ArgumentValue": STRANGER},
    ),
    (
        "unknown group",
        {"x-amz-grant-read": 'uri="http://acs.amazonaws.com/groups/global/Everyone"'},
        "InvalidArgument",
        "Invalid group uri",
        {"ArgumentName": "uri", "ArgumentValue": "http://acs.amazonaws.com/groups/global/Everyone"},
    ),
    (
        "email grantee",
        {"x-amz-grant-read": 'emailAddress="a@b.example"'},
        "UnresolvableGrantByEmailAddress",
        None,
        {},
    ),
    (
        "more than 100 grants",
        {"x-amz-grant-read": ", ".join([f'uri="{ALL_USERS}"'] * 101)},
        "MalformedACLError",
        None,
        {},
    ),
]


@pytest.mark.parametrize(
    ("headers", "code", "message", "extra"),
    [row[1:] for row in BAD_HEADERS],
    ids=[row[0] for row in BAD_HEADERS],
)
def test_acl_from_headers_refuses(
    headers: dict[str, str], code: str, message: str | None, extra: dict[str, str]
) -> None:
    with pytest.raises(S3Error) as caught:
        acl_from_headers(headers, OWNER, None, known)
    assert caught.value.code == code
    assert caught.value.extra == extra
    if message is not None:
        assert caught.value.message == message
