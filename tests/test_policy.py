"""Bucket policies (registry.access.policy): one table row per rule of AWS's policy language —
which documents PutBucketPolicy refuses and with what message, what a statement decides for
a request, every condition operator, and which policies S3 calls public. Pure: no server."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from s3facade.registry.access.policy import (
    SUPPORTED_KEYS,
    BucketPolicy,
    Effect,
    MalformedPolicy,
    PolicyRequest,
)
from s3facade.registry.access.principals import User

BUCKET = "photos"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
OBJECTS = f"{BUCKET_ARN}/*"
ALICE = User("AKIDALICE", display_name="alice")
BOB = User("AKIDBOB", display_name="bob")
ANONYMOUS = None
OMIT = object()  # a statement field left out

Context = Mapping[str, Sequence[str]]


def statement(**fields: Any) -> dict[str, Any]:
    """An Allow of s3:GetObject on the bucket's objects to everyone, with `fields` changed
    (a field given as OMIT is left out)."""
    base: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": OBJECTS,
    }
    base.update(fields)
    return {name: value for name, value in base.items() if value is not OMIT}


def document(*statements: dict[str, Any], version: str | None = "2012-10-17") -> str:
    policy: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        policy = {"Version": version, **policy}
    return json.dumps(policy)


def parse(*statements: dict[str, Any], version: str | None = "2012-10-17") -> BucketPolicy:
    return BucketPolicy.parse(document(*statements, version=version), BUCKET)


def request(
    user: User | None = ALICE,
    action: str = "s3:GetObject",
    key: str | None = "cat.jpg",
    context: Context | None = None,
) -> PolicyRequest:
    """A request for `key` in the bucket (None: the bucket itself)."""
    resource = BUCKET_ARN if key is None else f"{BUCKET_ARN}/{key}"
    return PolicyRequest(user, action, resource, {} if context is None else context)


# --- Parsing -----------------------------------------------------------------------------------

JSON = "This policy contains invalid Json"
FIRST_BYTE = "Policies must be valid JSON and the first byte must be '{'"
PRINCIPAL = "Invalid principal in policy"
ACTION = "Policy has invalid action"
RESOURCE = "Policy has invalid resource"
ELEMENT = "Statement is missing required element"
CONDITION_KEY = "Policy has an invalid condition key"


def with_condition(condition: Any) -> str:
    return document(statement(Condition=condition))


REJECTED = [
    pytest.param("", FIRST_BYTE, id="empty"),
    pytest.param("not json", FIRST_BYTE, id="not-json"),
    pytest.param(" " + document(statement()), FIRST_BYTE, id="leading-space"),
    pytest.param("[]", FIRST_BYTE, id="array"),
    pytest.param("{bad", JSON, id="invalid-json"),
    pytest.param(b'{"Statement": "\xff"}', JSON, id="invalid-utf8"),
    pytest.param('{"Id": "a", "Id": "b", "Statement": []}', JSON, id="duplicate-key"),
    pytest.param('{"Id": NaN}', JSON, id="nan"),
    pytest.param(
        json.dumps({"Id": "x" * 20_480, "Statement": [statement()]}),
        "Policy exceeds the maximum allowed document size.",
        id="over-20KiB",
    ),
    pytest.param(
        document(statement(), version="2020-01-01"),
        "The policy must contain a valid version string",
        id="version",
    ),
    pytest.param('{"Id": 5, "Statement": {}}', JSON, id="id-not-string"),
    pytest.param(
        json.dumps({"Statement": [statement()], "Foo": 1}), "Unknown field Foo", id="policy-field"
    ),
    pytest.param('{"Version": "2012-10-17"}', "Missing required field Statement", id="statement"),
    pytest.param(
        '{"Statement": []}', "Could not parse the policy: Statement is empty!", id="no-statements"
    ),
    pytest.param('{"Statement": "x"}', JSON, id="statement-string"),
    pytest.param('{"Statement": ["x"]}', JSON, id="statement-not-object"),
    pytest.param(
        document(statement(Sid="a"), statement(Sid="a")),
        "Statement IDs (SID) in a single policy must be unique.",
        id="duplicate-sid",
    ),
    pytest.param(document(statement(Sid=1)), JSON, id="sid-not-string"),
    pytest.param(
        document(statement(Resources=OBJECTS)), "Unknown field Resources", id="statement-field"
    ),
    pytest.param(
        document(statement(Effect=OMIT)), "Missing required field Effect", id="missing-effect"
    ),
    pytest.param(document(statement(Effect="allow")), "Invalid effect: allow", id="effect-case"),
    pytest.param(document(statement(Effect=True)), "Invalid effect: true", id="effect-bool"),
    pytest.param(
        document(statement(Principal=OMIT)),
        "Missing required field Principal",
        id="missing-principal",
    ),
    pytest.param(document(statement(NotPrincipal="*")), PRINCIPAL, id="principal-and-notprincipal"),
    pytest.param(document(statement(Principal=ALICE.arn)), PRINCIPAL, id="principal-bare-arn"),
    pytest.param(document(statement(Principal={})), PRINCIPAL, id="principal-empty"),
    pytest.param(document(statement(Principal={"AWS": []})), PRINCIPAL, id="principal-no-names"),
    pytest.param(document(statement(Principal={"AWS": ""})), PRINCIPAL, id="principal-blank"),
    pytest.param(
        document(statement(Principal={"AWS": "arn:aws:iam::*:root"})),
        PRINCIPAL,
        id="principal-partial-wildcard",
    ),
    pytest.param(
        document(statement(Principal={"AWS": ["*", ALICE.arn]})),
        PRINCIPAL,
        id="principal-wildcard-and-name",
    ),
    pytest.param(
        document(statement(Principal={"CanonicalUser": "abc"})),
        PRINCIPAL,
        id="canonical-not-64-hex",
    ),
    pytest.param(document(statement(Principal={"Group": "x"})), PRINCIPAL, id="principal-kind"),
    pytest.param(document(statement(Principal={"AWS": 5})), PRINCIPAL, id="principal-number"),
    pytest.param(document(statement(Action=OMIT)), ELEMENT, id="missing-action"),
    pytest.param(document(statement(NotAction="s3:*")), ACTION, id="action-and-notaction"),
    pytest.param(document(statement(Action="GetObject")), ACTION, id="action-no-service"),
    pytest.param(document(statement(Action="iam:CreateUser")), ACTION, id="action-other-service"),
    pytest.param(document(statement(Action="s3:")), ACTION, id="action-no-name"),
    pytest.param(document(statement(Action="s3:Get Object")), ACTION, id="action-space"),
    pytest.param(document(statement(Action=[])), ACTION, id="action-empty-list"),
    pytest.param(document(statement(Action=["s3:GetObject", 5])), ACTION, id="action-number"),
    pytest.param(document(statement(Resource=OMIT)), ELEMENT, id="missing-resource"),
    pytest.param(document(statement(NotResource=OBJECTS)), RESOURCE, id="resource-and-not"),
    pytest.param(document(statement(Resource=[])), RESOURCE, id="resource-empty-list"),
    pytest.param(document(statement(Resource="photos/*")), RESOURCE, id="resource-not-arn"),
    pytest.param(
        document(statement(Resource="arn:aws:s3:::other/*")), RESOURCE, id="resource-other-bucket"
    ),
    pytest.param(
        document(statement(Resource=[OBJECTS, "arn:aws:s3:::other"])),
        RESOURCE,
        id="resource-one-of-list-outside",
    ),
    pytest.param(
        document(statement(Resource=f"{BUCKET_ARN}-old/*")), RESOURCE, id="resource-longer-name"
    ),
    pytest.param(
        document(statement(Resource=f"{BUCKET_ARN}?")), RESOURCE, id="resource-names-no-object"
    ),
    pytest.param(
        document(statement(Resource="arn:aws-cn:s3:::photos/*")), RESOURCE, id="resource-partition"
    ),
    pytest.param(
        document(statement(NotResource="arn:aws:s3:::other/*", Resource=OMIT)),
        RESOURCE,
        id="notresource-other-bucket",
    ),
    pytest.param(
        with_condition({"StringEqualz": {"s3:prefix": "a"}}),
        "Invalid Condition type : StringEqualz",
        id="operator-unknown",
    ),
    pytest.param(
        with_condition({"stringequals": {"s3:prefix": "a"}}),
        "Invalid Condition type : stringequals",
        id="operator-case",
    ),
    pytest.param(
        with_condition({"NullIfExists": {"s3:prefix": "true"}}),
        "Invalid Condition type : NullIfExists",
        id="operator-null-ifexists",
    ),
    pytest.param(
        with_condition({"ForSomeValues:StringEquals": {"s3:prefix": "a"}}),
        "Invalid Condition type : ForSomeValues:StringEquals",
        id="operator-set-unknown",
    ),
    pytest.param(
        with_condition({"ForAnyValue:Null": {"s3:prefix": "true"}}),
        "Invalid Condition type : ForAnyValue:Null",
        id="operator-null-set",
    ),
    pytest.param(
        with_condition({"StringEquals": {"ec2:Region": "a"}}), CONDITION_KEY, id="key-service"
    ),
    pytest.param(
        with_condition({"StringEquals": {"prefix": "a"}}), CONDITION_KEY, id="key-no-prefix"
    ),
    pytest.param(with_condition({"StringEquals": {"s3:": "a"}}), CONDITION_KEY, id="key-no-name"),
    pytest.param(
        with_condition({"StringEquals": {"s3:ExistingObjectTag/": "a"}}),
        CONDITION_KEY,
        id="key-tag-without-key",
    ),
    pytest.param(
        with_condition({"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}),
        "Invalid IP address in Conditions",
        id="cidr-prefix",
    ),
    pytest.param(
        with_condition({"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "nowhere"]}}),
        "Invalid IP address in Conditions",
        id="cidr-word",
    ),
    pytest.param(
        with_condition({"NumericLessThan": {"s3:max-keys": "ten"}}),
        "Invalid numeric value in Conditions",
        id="numeric-word",
    ),
    pytest.param(
        with_condition({"DateLessThan": {"aws:CurrentTime": "yesterday"}}),
        "Invalid date value in Conditions",
        id="date-word",
    ),
    pytest.param(
        with_condition({"Bool": {"aws:SecureTransport": "yes"}}),
        "Invalid boolean value in Conditions",
        id="bool-word",
    ),
    pytest.param(
        with_condition({"Null": {"s3:prefix": "maybe"}}),
        "Invalid boolean value in Conditions",
        id="null-word",
    ),
    pytest.param(with_condition("StringEquals"), JSON, id="condition-not-object"),
    pytest.param(with_condition({"StringEquals": ["a"]}), JSON, id="operator-not-object"),
    pytest.param(
        with_condition({"StringEquals": {"s3:prefix": {"a": 1}}}), JSON, id="value-object"
    ),
    pytest.param(with_condition({"StringEquals": {"s3:prefix": []}}), JSON, id="value-empty"),
    pytest.param(with_condition({"StringEquals": {"s3:prefix": None}}), JSON, id="value-null"),
]


@pytest.mark.parametrize(("text", "message"), REJECTED)
def test_malformed_policy(text: str | bytes, message: str) -> None:
    with pytest.raises(MalformedPolicy) as refused:
        BucketPolicy.parse(text, BUCKET)
    assert refused.value.message == message


ACCEPTED = [
    pytest.param(json.dumps({"Statement": statement()}), id="statement-object-no-version"),
    pytest.param(document(statement(), version="2008-10-17"), id="version-2008"),
    pytest.param(
        json.dumps({"Version": "2012-10-17", "Id": "P1", "Statement": [statement(Sid="S1")]}),
        id="id-and-sid",
    ),
    pytest.param(document(statement(Sid="a"), statement(Sid="b")), id="distinct-sids"),
    pytest.param(document(statement(Resource="arn:aws:s3:::*")), id="resource-all-buckets"),
    pytest.param(document(statement(Resource="*")), id="resource-star"),
    pytest.param(document(statement(Resource="arn:aws:s3:::pho*")), id="resource-name-prefix"),
    pytest.param(document(statement(Resource="arn:aws:s3:::?hotos/a")), id="resource-one-char"),
    pytest.param(document(statement(Resource=BUCKET_ARN)), id="resource-bucket"),
    pytest.param(document(statement(Resource=[BUCKET_ARN, OBJECTS])), id="resource-list"),
    pytest.param(
        document(statement(Resource=f"{BUCKET_ARN}/home/${{aws:username}}/*")),
        id="resource-variable",
    ),
    pytest.param(document(statement(NotResource=OBJECTS, Resource=OMIT)), id="notresource"),
    pytest.param(document(statement(Action="*")), id="action-star"),
    pytest.param(document(statement(Action="S3:getobject")), id="action-case"),
    pytest.param(document(statement(Action=["s3:Get*Acl", "s3:?utObject"])), id="action-glob"),
    pytest.param(document(statement(NotAction="s3:Delete*", Action=OMIT)), id="notaction"),
    pytest.param(document(statement(Principal={"AWS": "*"})), id="principal-aws-star"),
    pytest.param(
        document(statement(Principal={"AWS": [ALICE.account_id, ALICE.access_key]})),
        id="principal-account-and-key",
    ),
    pytest.param(
        document(statement(Principal={"CanonicalUser": ALICE.canonical_id.upper()})),
        id="principal-canonical-upper",
    ),
    pytest.param(
        document(statement(Principal={"Service": "logging.s3.amazonaws.com"})),
        id="principal-service",
    ),
    pytest.param(
        document(statement(NotPrincipal={"AWS": ALICE.arn}, Principal=OMIT)), id="notprincipal"
    ),
    pytest.param(with_condition({}), id="condition-empty"),
    pytest.param(
        with_condition(
            {"NumericLessThan": {"S3:Max-Keys": 10}, "Bool": {"aws:SecureTransport": True}}
        ),
        id="condition-json-number-and-bool",
    ),
    pytest.param(
        with_condition(
            {"StringEquals": {"aws:AnyFutureKey": "a", "s3:ExistingObjectTag/Color": "b"}}
        ),
        id="condition-any-aws-and-s3-key",
    ),
    pytest.param(
        with_condition({"ForAllValues:StringLikeIfExists": {"s3:RequestObjectTagKeys": "a*"}}),
        id="condition-set-and-ifexists",
    ),
    pytest.param(
        with_condition({"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32", "::1"]}}),
        id="condition-cidrs",
    ),
    pytest.param(
        with_condition({"DateGreaterThan": {"aws:CurrentTime": ["2024-01-01", "1704067200"]}}),
        id="condition-dates",
    ),
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted_policy(text: str) -> None:
    assert BucketPolicy.parse(text, BUCKET).text == text


def test_text_is_kept_exactly_and_bytes_are_accepted() -> None:
    text = '{ "Statement" : {"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"} }'
    assert BucketPolicy.parse(text.encode(), BUCKET).text == text


def test_document_of_exactly_20KiB_is_accepted() -> None:
    short = json.dumps({"Id": "", "Statement": [statement()]})
    text = json.dumps({"Id": "x" * (20 * 1024 - len(short)), "Statement": [statement()]})
    assert len(text.encode()) == 20 * 1024
    BucketPolicy.parse(text, BUCKET)


# --- Evaluation: principals, actions, resources, Deny over Allow -------------------------------

ALLOW, DENY, NONE = Effect.ALLOW, Effect.DENY, Effect.NONE
DENY_GET = statement(Effect="Deny")
NOT_ALICE = statement(Principal=OMIT, NotPrincipal={"AWS": ALICE.arn})

EVALUATIONS = [
    # Principal
    pytest.param([statement()], request(ALICE), ALLOW, id="star-user"),
    pytest.param([statement()], request(ANONYMOUS), ALLOW, id="star-anonymous"),
    pytest.param([statement(Principal={"AWS": "*"})], request(ANONYMOUS), ALLOW, id="aws-star"),
    pytest.param([statement(Principal={"AWS": ALICE.arn})], request(ALICE), ALLOW, id="user-arn"),
    pytest.param([statement(Principal={"AWS": ALICE.arn})], request(BOB), NONE, id="other-user"),
    pytest.param(
        [statement(Principal={"AWS": ALICE.arn})], request(ANONYMOUS), NONE, id="arn-anonymous"
    ),
    pytest.param(
        [statement(Principal={"AWS": f"arn:aws:iam::{ALICE.account_id}:root"})],
        request(ALICE),
        ALLOW,
        id="account-root-arn",
    ),
    pytest.param(
        [statement(Principal={"AWS": ALICE.account_id})], request(ALICE), ALLOW, id="account-id"
    ),
    pytest.param(
        [statement(Principal={"AWS": [BOB.arn, ALICE.access_key]})],
        request(ALICE),
        ALLOW,
        id="access-key-in-list",
    ),
    pytest.param(
        [statement(Principal={"CanonicalUser": ALICE.canonical_id})],
        request(ALICE),
        ALLOW,
        id="canonical-id",
    ),
    pytest.param(
        [statement(Principal={"CanonicalUser": ALICE.canonical_id.upper()})],
        request(ALICE),
        ALLOW,
        id="canonical-id-upper",
    ),
    pytest.param(
        [statement(Principal={"CanonicalUser": ALICE.canonical_id})],
        request(BOB),
        NONE,
        id="canonical-id-other",
    ),
    pytest.param(
        [statement(Principal={"CanonicalUser": ALICE.canonical_id})],
        request(ANONYMOUS),
        NONE,
        id="canonical-id-anonymous",
    ),
    pytest.param(
        [statement(Principal={"Service": "logging.s3.amazonaws.com"})],
        request(ALICE),
        NONE,
        id="service-names-no-user",
    ),
    pytest.param([NOT_ALICE], request(ALICE), NONE, id="notprincipal-listed"),
    pytest.param([NOT_ALICE], request(BOB), ALLOW, id="notprincipal-other"),
    pytest.param([NOT_ALICE], request(ANONYMOUS), ALLOW, id="notprincipal-anonymous"),
    pytest.param(
        [statement(), {**NOT_ALICE, "Effect": "Deny"}], request(BOB), DENY, id="deny-all-but-bob"
    ),
    pytest.param(
        [statement(), {**NOT_ALICE, "Effect": "Deny"}],
        request(ALICE),
        ALLOW,
        id="deny-all-but-alice",
    ),
    # Action
    pytest.param([statement(Action="s3:Get*")], request(action="s3:GetObjectAcl"), ALLOW, id="a*"),
    pytest.param([statement(Action="s3:Get*")], request(action="s3:PutObject"), NONE, id="a*-no"),
    pytest.param(
        [statement(Action="S3:GETOBJECT")], request(action="s3:GetObject"), ALLOW, id="action-case"
    ),
    pytest.param(
        [statement(Action="s3:?etObject")], request(action="s3:GetObject"), ALLOW, id="action-?"
    ),
    pytest.param(
        [statement(Action="s3:?etObject")], request(action="s3:GetObjectAcl"), NONE, id="whole"
    ),
    pytest.param([statement(Action="*")], request(action="s3:PutObject"), ALLOW, id="action-*"),
    pytest.param(
        [statement(Action=["s3:PutObject", "s3:GetObject"])], request(), ALLOW, id="action-list"
    ),
    pytest.param(
        [statement(Action=OMIT, NotAction="s3:Delete*")],
        request(action="s3:GetObject"),
        ALLOW,
        id="notaction-other",
    ),
    pytest.param(
        [statement(Action=OMIT, NotAction="s3:Delete*")],
        request(action="s3:DeleteObject"),
        NONE,
        id="notaction-listed",
    ),
    # Resource
    pytest.param([statement()], request(key=None), NONE, id="objects-not-bucket"),
    pytest.param([statement(Resource=BUCKET_ARN)], request(key=None), ALLOW, id="bucket"),
    pytest.param([statement(Resource=BUCKET_ARN)], request(), NONE, id="bucket-not-objects"),
    pytest.param([statement()], request(key="a/b/c.jpg"), ALLOW, id="star-spans-slashes"),
    pytest.param(
        [statement(Resource=f"{BUCKET_ARN}/Cats/*")], request(key="cats/a"), NONE, id="case"
    ),
    pytest.param(
        [statement(Resource=f"{BUCKET_ARN}/cat?.jpg")], request(key="cat1.jpg"), ALLOW, id="?"
    ),
    pytest.param(
        [statement(Resource=f"{BUCKET_ARN}/cat?.jpg")], request(key="cat12.jpg"), NONE, id="?-one"
    ),
    pytest.param(
        [statement(Resource=f"{BUCKET_ARN}/a.c")], request(key="abc"), NONE, id="dot-is-literal"
    ),
    pytest.param(
        [statement(Resource=OMIT, NotResource=f"{BUCKET_ARN}/private/*")],
        request(key="public/a"),
        ALLOW,
        id="notresource-other",
    ),
    pytest.param(
        [statement(Resource=OMIT, NotResource=f"{BUCKET_ARN}/private/*")],
        request(key="private/a"),
        NONE,
        id="notresource-listed",
    ),
    # Deny over Allow, and nothing applying
    pytest.param([statement(), DENY_GET], request(), DENY, id="deny-wins"),
    pytest.param([DENY_GET, statement()], request(), DENY, id="deny-wins-listed-first"),
    pytest.param(
        [statement(Action="s3:*"), DENY_GET],
        request(action="s3:PutObject"),
        ALLOW,
        id="deny-other-action",
    ),
    pytest.param([DENY_GET], request(action="s3:PutObject"), NONE, id="nothing-applies"),
    pytest.param(
        [statement(), {**DENY_GET, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}],
        request(context={"aws:securetransport": ["true"]}),
        ALLOW,
        id="deny-condition-false",
    ),
    pytest.param(
        [statement(), {**DENY_GET, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}],
        request(context={"aws:securetransport": ["false"]}),
        DENY,
        id="deny-condition-true",
    ),
    # Policy variables in Resource
    pytest.param(
        [statement(Resource=f"{BUCKET_ARN}/home/${{aws:username}}/*")],
        request(key="home/alice/a", context={"aws:username": ["alice"]}),
        ALLOW,
        id="variable-own-home",
    ),
    pytest.param(
        [statement(Resource=f"{BUCKET_ARN}/home/${{aws:username}}/*")],
        request(key="home/bob/a", context={"aws:username": ["alice"]}),
        NONE,
        id="variable-other-home",
    ),
    pytest.param(
        [statement(Resource=f"{BUCKET_ARN}/home/${{aws:username}}/*")],
        request(ANONYMOUS, key="home/alice/a"),
        NONE,
        id="variable-without-value",
    ),
    pytest.param(
        [statement(Resource=f"{BUCKET_ARN}/home/${{aws:username}}/*")],
        request(key="home/alice/a", context={"aws:username": ["*"]}),
        NONE,
        id="variable-value-star-is-literal",
    ),
    pytest.param(
        [statement(Resource=f"{BUCKET_ARN}/home/${{aws:username, 'guest'}}/*")],
        request(ANONYMOUS, key="home/guest/a"),
        ALLOW,
        id="variable-default",
    ),
    pytest.param(
        [statement(Resource=f"{BUCKET_ARN}/${{*}}")], request(key="*"), ALLOW, id="escaped-star"
    ),
    pytest.param(
        [statement(Resource=f"{BUCKET_ARN}/${{*}}")], request(key="a"), NONE, id="escaped-star-no"
    ),
]


@pytest.mark.parametrize(("statements", "req", "expected"), EVALUATIONS)
def test_evaluate(statements: list[dict[str, Any]], req: PolicyRequest, expected: Effect) -> None:
    assert parse(*statements).evaluate(req) is expected


@pytest.mark.parametrize(
    ("version", "key", "expected"),
    [
        pytest.param("2012-10-17", "home/alice/a", ALLOW, id="2012-substitutes"),
        pytest.param("2008-10-17", "home/alice/a", NONE, id="2008-literal"),
        pytest.param("2008-10-17", "home/${aws:username}/a", ALLOW, id="2008-literal-match"),
        pytest.param(None, "home/${aws:username}/a", ALLOW, id="no-version-literal"),
    ],
)
def test_variables_need_version_2012(version: str | None, key: str, expected: Effect) -> None:
    policy = parse(statement(Resource=f"{BUCKET_ARN}/home/${{aws:username}}/*"), version=version)
    assert policy.evaluate(request(key=key, context={"aws:username": ["alice"]})) is expected


# --- Conditions: one row per operator and rule -------------------------------------------------


def cond(operator: str, key: str, value: Any) -> dict[str, Any]:
    return {operator: {key: value}}


def when(operator: str, key: str, value: Any, context: Context, holds: bool, name: str) -> Any:
    """A row: `{operator: {key: value}}` holds for a request with `context`, or not."""
    return pytest.param(cond(operator, key, value), context, holds, id=name)


PREFIX, MAX, TIME, TLS = "s3:prefix", "s3:max-keys", "aws:CurrentTime", "aws:SecureTransport"
IP, ACL, KEYS = "aws:SourceIp", "s3:x-amz-acl", "s3:RequestObjectTagKeys"
ARN, NAME, TAG = "aws:PrincipalArn", "aws:username", "s3:ExistingObjectTag/Color"
USER_ARN = "arn:aws:iam::123456789012:user/alice"
SPLIT_ARN = "arn:aws:iam::1:2:user/a"  # "1:2" spans two components: `*` cannot match it
JAN_1, JUNE_1 = "1704067200", "2024-06-01"  # epoch seconds of 2024-01-01T00:00:00Z; a day
USERNAME, HOME = "${aws:username}", "home/${aws:username}/*"
DEFAULTED = "${ AWS:UserName , 'it''s' }"  # spaces, a key's case, '' in the default: all allowed
TWO_KEYS = {"StringEquals": {PREFIX: "a", MAX: "1"}}
TWO_OPERATORS = {"StringEquals": {PREFIX: "a"}, "NumericLessThan": {MAX: 10}}

CONDITIONS = [
    # String
    when("StringEquals", PREFIX, "home/", {PREFIX: ["home/"]}, True, "eq"),
    when("StringEquals", PREFIX, "home/", {PREFIX: ["Home/"]}, False, "eq-case"),
    when("StringEquals", PREFIX, "home/", {}, False, "eq-missing"),
    when("StringEquals", PREFIX, ["a", "b"], {PREFIX: ["b"]}, True, "eq-values-or"),
    when("StringEquals", PREFIX, "a*", {PREFIX: ["ab"]}, False, "eq-no-wildcards"),
    when("StringNotEquals", PREFIX, "a", {PREFIX: ["b"]}, True, "ne"),
    when("StringNotEquals", PREFIX, "a", {PREFIX: ["a"]}, False, "ne-equal"),
    when("StringNotEquals", PREFIX, ["a", "b"], {PREFIX: ["b"]}, False, "ne-values"),
    when("StringNotEquals", PREFIX, "a", {}, True, "ne-missing"),
    when("StringEqualsIgnoreCase", PREFIX, "HOME", {PREFIX: ["home"]}, True, "eqi"),
    when("StringEqualsIgnoreCase", PREFIX, "HOME", {PREFIX: ["hom"]}, False, "eqi-no"),
    when("StringEqualsIgnoreCase", PREFIX, "HOME", {}, False, "eqi-missing"),
    when("StringNotEqualsIgnoreCase", PREFIX, "A", {PREFIX: ["a"]}, False, "nei"),
    when("StringNotEqualsIgnoreCase", PREFIX, "A", {PREFIX: ["b"]}, True, "nei-other"),
    when("StringNotEqualsIgnoreCase", PREFIX, "A", {}, True, "nei-missing"),
    when("StringLike", PREFIX, "home/*", {PREFIX: ["home/a/b"]}, True, "like-*"),
    when("StringLike", PREFIX, "h?me", {PREFIX: ["home"]}, True, "like-?"),
    when("StringLike", PREFIX, "h?me", {PREFIX: ["hoome"]}, False, "like-?-one-char"),
    when("StringLike", PREFIX, "home/*", {PREFIX: ["work/a"]}, False, "like-no"),
    when("StringLike", PREFIX, "Home/*", {PREFIX: ["home/a"]}, False, "like-case"),
    when("StringLike", PREFIX, "home/*", {}, False, "like-missing"),
    when("StringNotLike", PREFIX, "home/*", {PREFIX: ["work/"]}, True, "nlike"),
    when("StringNotLike", PREFIX, "home/*", {PREFIX: ["home/a"]}, False, "nlike-matching"),
    when("StringNotLike", PREFIX, "home/*", {}, True, "nlike-missing"),
    # Numeric
    when("NumericEquals", MAX, "10", {MAX: ["10"]}, True, "n="),
    when("NumericEquals", MAX, "10", {MAX: ["10.0"]}, True, "n=-decimal"),
    when("NumericEquals", MAX, "10", {MAX: ["11"]}, False, "n=-no"),
    when("NumericEquals", MAX, "10", {MAX: ["ten"]}, False, "n=-not-a-number"),
    when("NumericEquals", MAX, "10", {}, False, "n=-missing"),
    when("NumericNotEquals", MAX, 10, {MAX: ["11"]}, True, "n!="),
    when("NumericNotEquals", MAX, 10, {MAX: ["10"]}, False, "n!=-no"),
    when("NumericNotEquals", MAX, 10, {}, True, "n!=-missing"),
    when("NumericLessThan", MAX, 100, {MAX: ["99"]}, True, "n<"),
    when("NumericLessThan", MAX, 100, {MAX: ["100"]}, False, "n<-no"),
    when("NumericLessThan", MAX, 100, {}, False, "n<-missing"),
    when("NumericLessThanEquals", MAX, 100, {MAX: ["100"]}, True, "n<="),
    when("NumericLessThanEquals", MAX, 100, {MAX: ["101"]}, False, "n<=-no"),
    when("NumericGreaterThan", MAX, "-1.5", {MAX: ["0"]}, True, "n>"),
    when("NumericGreaterThan", MAX, 100, {MAX: ["100"]}, False, "n>-no"),
    when("NumericGreaterThanEquals", MAX, 100, {MAX: ["100"]}, True, "n>="),
    when("NumericGreaterThanEquals", MAX, 100, {MAX: ["99"]}, False, "n>=-no"),
    # Date: ISO 8601 or epoch seconds, on either side
    when("DateEquals", TIME, "2024-01-01T00:00:00Z", {TIME: [JAN_1]}, True, "d="),
    when("DateEquals", TIME, "2024-01-01", {TIME: ["2024-01-01T00:00:00Z"]}, True, "d=-day"),
    when("DateEquals", TIME, "2024-01-01T01:00+01:00", {TIME: [JAN_1]}, True, "d=-zone"),
    when("DateEquals", TIME, JAN_1, {TIME: ["2024-01-01T00:00:01Z"]}, False, "d=-no"),
    when("DateEquals", TIME, JAN_1, {TIME: ["soon"]}, False, "d=-not-a-date"),
    when("DateNotEquals", TIME, JAN_1, {TIME: ["1704067201"]}, True, "d!="),
    when("DateNotEquals", TIME, JAN_1, {TIME: [JAN_1]}, False, "d!=-no"),
    when("DateNotEquals", TIME, JAN_1, {}, True, "d!=-missing"),
    when("DateLessThan", TIME, "2024-06-01", {TIME: ["2024-05-31T23:59:59Z"]}, True, "d<"),
    when("DateLessThan", TIME, "2024-06-01", {TIME: ["2024-06-01T00:00:00Z"]}, False, "d<-no"),
    when("DateLessThan", TIME, "2024-06-01", {}, False, "d<-missing"),
    when("DateLessThanEquals", TIME, "2024-06-01", {TIME: ["2024-06-01T00:00Z"]}, True, "d<="),
    when("DateLessThanEquals", TIME, JUNE_1, {TIME: ["2024-06-01T00:00:01Z"]}, False, "d<=no"),
    when("DateGreaterThan", TIME, JAN_1, {TIME: ["2024-06-01T12:00:00Z"]}, True, "d>"),
    when("DateGreaterThan", TIME, JAN_1, {TIME: ["2023-12-31T23:59:59Z"]}, False, "d>-no"),
    when("DateGreaterThanEquals", TIME, JAN_1, {TIME: [JAN_1]}, True, "d>="),
    when("DateGreaterThanEquals", TIME, JAN_1, {TIME: ["1704067199"]}, False, "d>=-no"),
    # Bool
    when("Bool", TLS, "false", {TLS: ["false"]}, True, "bool"),
    when("Bool", TLS, "false", {TLS: ["true"]}, False, "bool-no"),
    when("Bool", TLS, False, {TLS: ["false"]}, True, "bool-json-value"),
    when("Bool", TLS, "True", {TLS: ["true"]}, True, "bool-case"),
    when("Bool", TLS, "false", {}, False, "bool-missing"),
    # IP addresses
    when("IpAddress", IP, "192.0.2.0/24", {IP: ["192.0.2.7"]}, True, "ip"),
    when("IpAddress", IP, "192.0.2.0/24", {IP: ["198.51.100.1"]}, False, "ip-no"),
    when("IpAddress", IP, "192.0.2.7", {IP: ["192.0.2.7"]}, True, "ip-bare-address"),
    when("IpAddress", IP, "2001:db8::/32", {IP: ["2001:db8::1"]}, True, "ip6"),
    when("IpAddress", IP, "2001:db8::/32", {IP: ["2001:db9::1"]}, False, "ip6-no"),
    when("IpAddress", IP, "192.0.2.0/24", {IP: ["::ffff:192.0.2.7"]}, True, "ip-v4-mapped"),
    when("IpAddress", IP, "0.0.0.0/0", {IP: ["2001:db8::1"]}, False, "ip-other-family"),
    when("IpAddress", IP, ["10.0.0.0/8", "192.0.2.0/24"], {IP: ["192.0.2.1"]}, True, "ip-or"),
    when("IpAddress", IP, "192.0.2.0/24", {IP: ["nowhere"]}, False, "ip-not-an-address"),
    when("IpAddress", IP, "192.0.2.0/24", {}, False, "ip-missing"),
    when("NotIpAddress", IP, "192.0.2.0/24", {IP: ["198.51.100.1"]}, True, "nip"),
    when("NotIpAddress", IP, "192.0.2.0/24", {IP: ["192.0.2.7"]}, False, "nip-inside"),
    when("NotIpAddress", IP, "192.0.2.0/24", {}, True, "nip-missing"),
    # Null
    when("Null", ACL, "true", {}, True, "null-true-absent"),
    when("Null", ACL, "true", {ACL: ["private"]}, False, "null-true-present"),
    when("Null", ACL, "false", {ACL: ["private"]}, True, "null-false-present"),
    when("Null", ACL, False, {}, False, "null-false-absent"),
    when("Null", ACL, "false", {ACL: []}, False, "null-no-values-is-absent"),
    # ARN: compared component by component, wildcards within one
    when("ArnEquals", ARN, USER_ARN, {ARN: [USER_ARN]}, True, "arn="),
    when("ArnEquals", ARN, USER_ARN, {ARN: [USER_ARN + "x"]}, False, "arn=-no"),
    when("ArnEquals", ARN, USER_ARN, {}, False, "arn=-missing"),
    when("ArnLike", ARN, "arn:aws:iam::*:user/alice", {ARN: [USER_ARN]}, True, "arnlike"),
    when("ArnLike", ARN, "arn:aws:iam::*:user/*", {ARN: [SPLIT_ARN]}, False, "arnlike-in-one"),
    when("ArnLike", ARN, "arn:aws:iam::*", {ARN: [USER_ARN]}, False, "arnlike-five-parts"),
    when("ArnLike", ARN, "arn:aws:iam::123456789012:*", {ARN: [USER_ARN]}, True, "arnlike-last"),
    when("ArnNotEquals", ARN, USER_ARN, {ARN: ["arn:aws:iam::1:root"]}, True, "arn!="),
    when("ArnNotEquals", ARN, USER_ARN, {ARN: [USER_ARN]}, False, "arn!=-no"),
    when("ArnNotLike", ARN, "arn:aws:iam::*:user/*", {ARN: [USER_ARN]}, False, "arnnlike"),
    when("ArnNotLike", ARN, "arn:aws:iam::*:user/*", {}, True, "arnnlike-missing"),
    # ...IfExists: an absent key passes
    when("StringEqualsIfExists", PREFIX, "a", {}, True, "ifexists-missing"),
    when("StringEqualsIfExists", PREFIX, "a", {PREFIX: ["b"]}, False, "ifexists-no"),
    when("StringEqualsIfExists", PREFIX, "a", {PREFIX: ["a"]}, True, "ifexists-yes"),
    when("StringNotEqualsIfExists", PREFIX, "a", {PREFIX: ["a"]}, False, "ifexists-negated"),
    when("NumericLessThanIfExists", MAX, 5, {}, True, "ifexists-numeric"),
    when("IpAddressIfExists", IP, "192.0.2.0/24", {}, True, "ifexists-ip"),
    when("IpAddressIfExists", IP, "192.0.2.0/24", {IP: ["10.0.0.1"]}, False, "ifexists-ip-no"),
    when("DateLessThanIfExists", TIME, "2024-01-01", {}, True, "ifexists-date"),
    when("BoolIfExists", TLS, "true", {}, True, "ifexists-bool"),
    when("ArnLikeIfExists", "aws:SourceArn", "arn:*", {}, True, "ifexists-arn"),
    # Multi-valued keys: without a set operator some value must match; negated: none may
    when("StringEquals", KEYS, "b", {KEYS: ["a", "b"]}, True, "multi-eq"),
    when("StringNotEquals", KEYS, "b", {KEYS: ["a", "b"]}, False, "multi-ne"),
    # ForAnyValue: some request value matches; an absent key fails
    when("ForAnyValue:StringEquals", KEYS, ["b", "c"], {KEYS: ["a", "b"]}, True, "any"),
    when("ForAnyValue:StringEquals", KEYS, ["b", "c"], {KEYS: ["a"]}, False, "any-no"),
    when("ForAnyValue:StringEquals", KEYS, ["b", "c"], {}, False, "any-missing"),
    when("ForAnyValue:StringEqualsIfExists", KEYS, "b", {}, True, "any-ifexists"),
    when("ForAnyValue:StringNotEquals", KEYS, "a", {KEYS: ["a", "b"]}, True, "any-ne"),
    when("ForAnyValue:StringNotEquals", KEYS, "a", {KEYS: ["a"]}, False, "any-ne-no"),
    when("ForAnyValue:StringLike", KEYS, "x-*", {KEYS: ["a", "x-1"]}, True, "any-like"),
    # ForAllValues: every request value matches; an absent key holds
    when("ForAllValues:StringEquals", KEYS, ["a", "b", "c"], {KEYS: ["a", "b"]}, True, "all"),
    when("ForAllValues:StringEquals", KEYS, ["a", "b", "c"], {KEYS: ["a", "d"]}, False, "all-no"),
    when("ForAllValues:StringEquals", KEYS, ["a"], {}, True, "all-missing"),
    when("ForAllValues:StringNotEquals", KEYS, "a", {KEYS: ["x", "y"]}, True, "all-ne"),
    when("ForAllValues:StringNotEquals", KEYS, "a", {KEYS: ["x", "a"]}, False, "all-ne-no"),
    when("ForAllValues:StringLike", KEYS, "home/*", {KEYS: ["home/a", "home/b"]}, True, "all-like"),
    when("ForAllValues:NumericLessThan", KEYS, 10, {KEYS: ["1", "12"]}, False, "all-numeric"),
    # Keys: names case-insensitive, tag keys; AND across keys and across operators
    when("StringEquals", "AWS:UserName", "alice", {NAME: ["alice"]}, True, "key-name-case"),
    when("StringEquals", TAG, "blue", {TAG: ["blue"]}, True, "tag"),
    pytest.param(TWO_KEYS, {PREFIX: ["a"]}, False, id="and-keys"),
    pytest.param(TWO_KEYS, {PREFIX: ["a"], MAX: ["1"]}, True, id="and-keys-all"),
    pytest.param(TWO_OPERATORS, {PREFIX: ["a"], MAX: ["20"]}, False, id="and-operators"),
    pytest.param(TWO_OPERATORS, {PREFIX: ["a"], MAX: ["5"]}, True, id="and-operators-all"),
    # Policy variables in condition values
    when("StringLike", PREFIX, HOME, {PREFIX: ["home/alice/a"], NAME: ["alice"]}, True, "var"),
    when("StringLike", PREFIX, HOME, {PREFIX: ["home/bob/a"], NAME: ["alice"]}, False, "var-other"),
    when("StringLike", PREFIX, HOME, {PREFIX: ["home//a"]}, False, "var-missing"),
    when("StringEquals", PREFIX, USERNAME, {PREFIX: ["a"], NAME: ["a", "b"]}, False, "var-multi"),
    when("StringNotEquals", PREFIX, USERNAME, {PREFIX: ["a"]}, True, "var-missing-negated"),
    when("StringEquals", PREFIX, DEFAULTED, {PREFIX: ["it's"]}, True, "var-default"),
    when("StringLike", PREFIX, "a${*}", {PREFIX: ["a*"]}, True, "var-escape"),
    when("StringLike", PREFIX, "a${*}", {PREFIX: ["ab"]}, False, "var-escape-no"),
    when("StringEquals", PREFIX, "${$}{x}", {PREFIX: ["${x}"]}, True, "var-dollar"),
    when("StringEquals", PREFIX, "${unknown}", {PREFIX: ["${unknown}"]}, False, "var-malformed"),
]


@pytest.mark.parametrize(("condition", "context", "holds"), CONDITIONS)
def test_condition(condition: dict[str, Any], context: Context, holds: bool) -> None:
    policy = parse(statement(Condition=condition))
    lowered = {key.lower(): values for key, values in context.items()}  # as callers supply keys
    assert policy.evaluate(request(context=lowered)) is (ALLOW if holds else NONE)


class CountingContext(Mapping[str, Sequence[str]]):
    """A lazy context that records which keys evaluation asked for."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self.stored = values
        self.asked: list[str] = []

    def __getitem__(self, key: str) -> Sequence[str]:
        self.asked.append(key)
        return self.stored[key]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("evaluation must not enumerate the context")

    def __len__(self) -> int:
        raise AssertionError("evaluation must not size the context")


def test_context_is_asked_only_for_named_keys_once() -> None:
    policy = parse(
        statement(Condition=cond("StringEquals", "s3:prefix", "a")),
        statement(
            Condition={"StringNotEquals": {"S3:Prefix": "b"}, "Null": {"s3:x-amz-acl": "true"}}
        ),
        statement(Principal={"AWS": BOB.arn}, Condition=cond("StringEquals", "aws:userid", "x")),
    )
    context = CountingContext({"s3:prefix": ["c"], "aws:referer": ["x"]})
    assert policy.evaluate(request(ALICE, context=context)) is ALLOW
    # aws:userid's statement names Bob: never reached for Alice; s3:prefix is fetched once.
    assert sorted(context.asked) == ["s3:prefix", "s3:x-amz-acl"]


def test_supported_keys_are_valid_condition_keys() -> None:
    for key in SUPPORTED_KEYS:
        parse(statement(Condition=cond("StringEqualsIfExists", key.replace("<key>", "k"), "v")))


# --- Public: "The meaning of public" in S3 Block Public Access ----------------------------------


def allow_all(condition: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return statement(**fields) if condition is None else statement(Condition=condition, **fields)


PUBLIC = [
    pytest.param([allow_all()], True, id="star"),
    pytest.param([allow_all(Principal={"AWS": "*"})], True, id="aws-star"),
    pytest.param([allow_all(Principal=OMIT, NotPrincipal={"AWS": ALICE.arn})], True, id="not"),
    pytest.param([allow_all(Principal={"AWS": ALICE.arn})], False, id="named-user"),
    pytest.param(
        [allow_all(Principal={"CanonicalUser": ALICE.canonical_id})], False, id="canonical"
    ),
    pytest.param([allow_all(Effect="Deny")], False, id="deny"),
    pytest.param(
        [allow_all(Principal={"AWS": ALICE.arn}), allow_all(Action="s3:ListBucket")],
        True,
        id="one-public-statement",
    ),
    pytest.param([allow_all(cond("IpAddress", IP, "192.0.2.0/24"))], False, id="cidr"),
    pytest.param(
        [allow_all(cond("IpAddress", IP, ["192.0.2.0/24", "2001:db8::/32"]))], False, id="cidrs"
    ),
    pytest.param([allow_all(cond("IpAddress", IP, "0.0.0.0/0"))], True, id="cidr-all-v4"),
    pytest.param([allow_all(cond("IpAddress", IP, ["10.0.0.0/8", "::/0"]))], True, id="all-v6"),
    pytest.param([allow_all(cond("NotIpAddress", IP, "192.0.2.0/24"))], True, id="not-cidr"),
    pytest.param([allow_all(cond("IpAddressIfExists", IP, "192.0.2.0/24"))], True, id="ip-ifex"),
    pytest.param(
        [allow_all(cond("StringEquals", "aws:SourceAccount", "123456789012"))], False, id="acct"
    ),
    pytest.param(
        [allow_all(cond("StringEqualsIgnoreCase", "aws:SourceVpc", "vpc-1"))], False, id="vpc"
    ),
    pytest.param(
        [allow_all(cond("StringLike", "aws:SourceVpce", "vpce-1a2b"))], False, id="like-fixed"
    ),
    pytest.param(
        [allow_all(cond("StringLike", "aws:SourceArn", "arn:aws:sns:*"))], True, id="wildcard"
    ),
    pytest.param(
        [allow_all(cond("ArnEquals", "aws:SourceArn", "arn:aws:sns:us-east-1:1:t"))],
        False,
        id="source-arn",
    ),
    pytest.param(
        [allow_all(cond("StringEquals", "aws:SourceOwner", "123456789012"))], False, id="owner"
    ),
    pytest.param(
        [allow_all(cond("StringEquals", "aws:PrincipalAccount", "123456789012"))],
        False,
        id="principal-account",
    ),
    pytest.param(
        [allow_all(cond("StringEquals", "aws:PrincipalOrgID", "o-a1b2c3"))], False, id="org"
    ),
    pytest.param([allow_all(cond("StringEquals", "aws:userid", "AIDAX"))], False, id="userid"),
    pytest.param(
        [allow_all(cond("StringLike", "aws:userid", "AROLEID:*"))], True, id="userid-role-any"
    ),
    pytest.param(
        [allow_all(cond("StringEquals", "aws:SourceAccount", "${aws:username}"))],
        True,
        id="variable-not-fixed",
    ),
    pytest.param(
        [allow_all(cond("StringNotEquals", "aws:SourceAccount", "123456789012"))],
        True,
        id="negated",
    ),
    pytest.param(
        [allow_all(cond("StringEqualsIfExists", "aws:SourceAccount", "123456789012"))],
        True,
        id="ifexists",
    ),
    pytest.param(
        [allow_all(cond("ForAllValues:StringEquals", "aws:SourceVpc", "vpc-1"))],
        True,
        id="forallvalues",
    ),
    pytest.param(
        [allow_all(cond("ForAnyValue:StringEquals", "aws:SourceVpc", "vpc-1"))],
        False,
        id="foranyvalue",
    ),
    pytest.param([allow_all(cond("StringEquals", "s3:prefix", "a/"))], True, id="other-key"),
    pytest.param(
        [
            allow_all(
                {"Bool": {"aws:SecureTransport": "true"}, **cond("IpAddress", IP, "10.0.0.0/8")}
            )
        ],
        False,
        id="one-confining-condition",
    ),
]


@pytest.mark.parametrize(("statements", "public"), PUBLIC)
def test_is_public(statements: list[dict[str, Any]], public: bool) -> None:
    assert parse(*statements).is_public() is public
