"""Bucket policies: parsing and validating the JSON document S3 accepts in PutBucketPolicy,
deciding whether it allows or denies one request, and whether it is "public".

https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-policies.html
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from s3facade.registry.access.conditions import (
    INVALID_JSON,
    Condition,
    MalformedPolicy,
    RequestContext,
    Template,
    compile_glob,
    parse_conditions,
)
from s3facade.registry.access.principals import User

__all__ = ["SUPPORTED_KEYS", "BucketPolicy", "Effect", "MalformedPolicy", "PolicyRequest"]

# The condition keys the gateway fills in a request's context (a policy may name any `aws:`
# or `s3:` key; one the gateway never fills is simply absent). `<key>` is an object tag key.
SUPPORTED_KEYS = (
    "aws:SourceIp",
    "aws:SecureTransport",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:UserAgent",
    "aws:Referer",
    "aws:username",
    "aws:userid",
    "aws:PrincipalType",
    "s3:prefix",
    "s3:delimiter",
    "s3:max-keys",
    "s3:x-amz-acl",
    "s3:x-amz-content-sha256",
    "s3:x-amz-copy-source",
    "s3:x-amz-metadata-directive",
    "s3:x-amz-server-side-encryption",
    "s3:x-amz-storage-class",
    "s3:VersionId",
    "s3:ExistingObjectTag/<key>",
    "s3:RequestObjectTag/<key>",
    "s3:RequestObjectTagKeys",
    "s3:object-lock-mode",
    "s3:object-lock-retain-until-date",
    "s3:object-lock-remaining-retention-days",
    "s3:object-lock-legal-hold",
    "s3:signatureversion",
    "s3:authType",
)

# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-policies.html: "up to 20 KB"
MAX_DOCUMENT_BYTES = 20 * 1024
VERSIONS = ("2012-10-17", "2008-10-17")
VARIABLES_VERSION = "2012-10-17"  # earlier documents take `${...}` literally

# AWS's MalformedPolicy messages.
TOO_LARGE = "Policy exceeds the maximum allowed document size."
FIRST_BYTE = "Policies must be valid JSON and the first byte must be '{'"
INVALID_VERSION = "The policy must contain a valid version string"
MISSING_STATEMENT = "Missing required field Statement"
EMPTY_STATEMENT = "Could not parse the policy: Statement is empty!"
DUPLICATE_SID = "Statement IDs (SID) in a single policy must be unique."
MISSING_EFFECT = "Missing required field Effect"
MISSING_PRINCIPAL = "Missing required field Principal"
MISSING_ELEMENT = "Statement is missing required element"
INVALID_PRINCIPAL = "Invalid principal in policy"
INVALID_ACTION = "Policy has invalid action"
INVALID_RESOURCE = "Policy has invalid resource"

_POLICY_FIELDS = ("Version", "Id", "Statement")
_STATEMENT_FIELDS = (
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)
_ACTION = re.compile(r"\*|s3:[A-Za-z0-9*?]+", re.IGNORECASE)
_CANONICAL_ID = re.compile(r"[0-9a-fA-F]{64}")
S3_ARN_PREFIX = "arn:aws:s3:::"


class Effect(Enum):
    ALLOW = "Allow"
    DENY = "Deny"
    NONE = "None"  # no statement applies: an implicit deny, other grants (ACLs) may still allow


@dataclass(frozen=True)
class PolicyRequest:
    """One request as a policy sees it.

    `context` maps a lower-case condition key (tag keys included, e.g.
    "s3:existingobjecttag/color") to its values; a key the request lacks is absent. It may be
    lazy: evaluation asks only for keys named by a statement it reaches (in its Condition, or as
    a `${...}` variable in its Resource), each at most once, and never iterates the mapping.
    """

    user: User | None  # None: an anonymous request
    action: str  # the IAM action, e.g. "s3:GetObject"
    resource: str  # "arn:aws:s3:::bucket" or "arn:aws:s3:::bucket/key"
    context: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Principals:
    """A Principal (or NotPrincipal) element.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html
    """

    everyone: bool = False  # "*" or {"AWS": "*"}: anonymous requests too
    aws: frozenset[str] = frozenset()  # ARNs, account ids, access keys: User.policy_names
    canonical_ids: frozenset[str] = frozenset()  # lower-case

    def include(self, user: User | None) -> bool:
        if self.everyone:
            return True
        if user is None:
            return False
        return user.canonical_id in self.canonical_ids or not self.aws.isdisjoint(user.policy_names)


@dataclass(frozen=True)
class _Statement:
    sid: str | None
    effect: Effect
    principals: _Principals
    not_principal: bool
    actions: tuple[re.Pattern[str], ...]
    not_action: bool
    resources: tuple[Template, ...]
    not_resource: bool
    conditions: tuple[Condition, ...]

    def applies(self, request: PolicyRequest, context: RequestContext) -> bool:
        # Cheapest first: conditions may cost the caller lookups.
        if self.principals.include(request.user) == self.not_principal:
            return False
        if any(a.fullmatch(request.action) for a in self.actions) == self.not_action:
            return False
        if self._names_resource(request.resource, context) == self.not_resource:
            return False
        return all(condition.holds(context) for condition in self.conditions)

    def _names_resource(self, resource: str, context: RequestContext) -> bool:
        for template in self.resources:
            pattern = template.regex(context)  # None: a variable without value names nothing
            if pattern is not None and pattern.fullmatch(resource):
                return True
        return False

    @property
    def is_public(self) -> bool:
        """An Allow to everyone that no condition confines to fixed identifying values."""
        return (
            self.effect is Effect.ALLOW
            and (self.not_principal or self.principals.everyone)
            and not any(condition.restricts_public for condition in self.conditions)
        )


class BucketPolicy:
    """A parsed, validated bucket policy. Build one with `BucketPolicy.parse`."""

    def __init__(self, text: str, version: str | None, statements: Sequence[_Statement]) -> None:
        self.text = text  # as given: GetBucketPolicy returns it unchanged
        self.version = version
        # Denies first: a matching Deny decides alone, and a matching Allow then ends the search.
        self._statements = sorted(statements, key=lambda s: s.effect is not Effect.DENY)

    @classmethod
    def parse(cls, text: bytes | str, bucket: str) -> BucketPolicy:
        """The policy `text` for `bucket`, or MalformedPolicy with AWS's message."""
        raw = text.encode() if isinstance(text, str) else text
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise MalformedPolicy(TOO_LARGE)
        if not raw.startswith(b"{"):
            raise MalformedPolicy(FIRST_BYTE)
        try:
            decoded = raw.decode() if isinstance(text, bytes) else text
            document = json.loads(
                decoded, object_pairs_hook=_unique_keys, parse_constant=_no_constant
            )
        except ValueError:  # JSONDecodeError, UnicodeDecodeError, a duplicate key
            raise MalformedPolicy(INVALID_JSON) from None
        document = _check_fields(document, _POLICY_FIELDS)
        version = document.get("Version")
        if version is not None and version not in VERSIONS:
            raise MalformedPolicy(INVALID_VERSION)
        if not isinstance(document.get("Id", ""), str):
            raise MalformedPolicy(INVALID_JSON)
        if "Statement" not in document:
            raise MalformedPolicy(MISSING_STATEMENT)
        raw_statements = document["Statement"]
        if isinstance(raw_statements, dict):
            raw_statements = [raw_statements]
        if not isinstance(raw_statements, list):
            raise MalformedPolicy(INVALID_JSON)
        if not raw_statements:
            raise MalformedPolicy(EMPTY_STATEMENT)
        variables = version == VARIABLES_VERSION
        statements = [_parse_statement(s, bucket, variables) for s in raw_statements]
        sids = [s.sid for s in statements if s.sid is not None]
        if len(sids) != len(set(sids)):
            raise MalformedPolicy(DUPLICATE_SID)
        return cls(decoded, version, statements)

    def evaluate(self, request: PolicyRequest) -> Effect:
        """DENY if a Deny statement applies, else ALLOW if an Allow does, else NONE."""
        context = RequestContext(request.context)
        for statement in self._statements:
            if statement.applies(request, context):
                return statement.effect
        return Effect.NONE

    def is_public(self) -> bool:
        """Whether S3 calls this policy public (GetBucketPolicyStatus, BlockPublicPolicy,
        RestrictPublicBuckets): some Allow to everyone is not confined by a fixed value of
        aws:SourceIp (a CIDR narrower than /0), aws:SourceArn, aws:SourceVpc, aws:SourceVpce,
        aws:SourceOwner, aws:SourceAccount, aws:PrincipalAccount, aws:PrincipalOrgID,
        aws:userid (or the other keys in conditions.IDENTIFYING_KEYS) under a positive
        operator without IfExists or ForAllValues. Deny statements never make a policy public.
        https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html
        """
        return any(statement.is_public for statement in self._statements)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # A repeated key would leave the policy ambiguous (JSON parsers differ on which one wins).
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("duplicate key")
    return found


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _check_fields(element: object, known: tuple[str, ...]) -> dict[str, object]:
    """`element` as a JSON object holding only the `known` fields, or MalformedPolicy."""
    if not isinstance(element, dict):
        raise MalformedPolicy(INVALID_JSON)
    for name in element:
        if name not in known:
            raise MalformedPolicy(f"Unknown field {name}")
    return element


def _parse_statement(raw: object, bucket: str, variables: bool) -> _Statement:
    """One Statement. https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements.html"""
    raw = _check_fields(raw, _STATEMENT_FIELDS)
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise MalformedPolicy(INVALID_JSON)
    if "Effect" not in raw:
        raise MalformedPolicy(MISSING_EFFECT)
    effect = raw["Effect"]
    if effect not in ("Allow", "Deny"):
        shown = effect if isinstance(effect, str) else json.dumps(effect)
        raise MalformedPolicy(f"Invalid effect: {shown}")

    principal_name = _one_of(raw, "Principal", "NotPrincipal", MISSING_PRINCIPAL, INVALID_PRINCIPAL)
    action_name = _one_of(raw, "Action", "NotAction", MISSING_ELEMENT, INVALID_ACTION)
    resource_name = _one_of(raw, "Resource", "NotResource", MISSING_ELEMENT, INVALID_RESOURCE)
    principals = _parse_principals(raw[principal_name])
    actions = _strings(raw[action_name], INVALID_ACTION)
    for action in actions:
        if not _ACTION.fullmatch(action):
            raise MalformedPolicy(INVALID_ACTION)
    resources = [
        _parse_resource(text, bucket, variables)
        for text in _strings(raw[resource_name], INVALID_RESOURCE)
    ]
    conditions = parse_conditions(raw["Condition"], variables) if "Condition" in raw else ()
    return _Statement(
        sid=sid,
        effect=Effect(effect),
        principals=principals,
        not_principal=principal_name == "NotPrincipal",
        actions=tuple(compile_glob(((action, True),), ignore_case=True) for action in actions),
        not_action=action_name == "NotAction",
        resources=tuple(resources),
        not_resource=resource_name == "NotResource",
        conditions=conditions,
    )


def _one_of(raw: dict[str, object], name: str, negation: str, missing: str, both: str) -> str:
    """Which of an element and its Not-form the statement has: exactly one is required."""
    if name in raw and negation in raw:
        raise MalformedPolicy(both)
    if name in raw:
        return name
    if negation in raw:
        return negation
    raise MalformedPolicy(missing)


def _strings(value: object, error: str) -> list[str]:
    """An element's value: one string or a non-empty list of them."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise MalformedPolicy(error)
    return [str(item) for item in items]


def _parse_principals(value: object) -> _Principals:
    """`"*"`, or {"AWS": ..., "CanonicalUser": ...}; wildcards only as the whole `"*"`."""
    if value == "*":
        return _Principals(everyone=True)
    if not isinstance(value, dict) or not value:
        raise MalformedPolicy(INVALID_PRINCIPAL)
    everyone = False
    aws: set[str] = set()
    canonical_ids: set[str] = set()
    for kind, names in value.items():
        listed = _strings(names, INVALID_PRINCIPAL)
        if kind == "AWS":
            if "*" in listed:
                if len(listed) > 1:  # "*" beside named principals: AWS refuses the mixture
                    raise MalformedPolicy(INVALID_PRINCIPAL)
                everyone = True
            elif any("*" in name for name in listed):
                raise MalformedPolicy(INVALID_PRINCIPAL)
            aws.update(listed)
        elif kind == "CanonicalUser":
            if not all(_CANONICAL_ID.fullmatch(name) for name in listed):
                raise MalformedPolicy(INVALID_PRINCIPAL)
            canonical_ids.update(name.lower() for name in listed)
        elif kind not in ("Service", "Federated"):
            # AWS services and federated identities never sign requests to the gateway: such a
            # principal is valid but names no one here.
            raise MalformedPolicy(INVALID_PRINCIPAL)
    return _Principals(everyone, frozenset(aws - {"*"}), frozenset(canonical_ids))


def _parse_resource(text: str, bucket: str, variables: bool) -> Template:
    """A Resource must name the bucket or objects in it: a pattern is accepted if it matches
    the bucket's ARN or the ARN of some object in the bucket."""
    template = Template(text, variables)
    bucket_arn = S3_ARN_PREFIX + bucket
    names_bucket, _ = template.admits(bucket_arn)
    _, names_objects = template.admits(bucket_arn + "/")
    if not (names_bucket or names_objects):
        raise MalformedPolicy(INVALID_RESOURCE)
    return template
