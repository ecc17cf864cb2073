"""The POST policy of a browser-based upload and the form's signature over it.

https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-authentication-HTTPPOST.html
https://docs.aws.amazon.com/AmazonS3/latest/userguide/HTTPPOSTForms.html (SigV2)

The order follows S3's: the signature fields are checked, then the signature over the policy
text exactly as sent, then the decoded policy, its expiration and its conditions; the file's
length last, once it is known. Error codes and messages are those S3 answers with (recorded
by others against S3), which often differ from its error table: a failed condition is 403
AccessDenied, not InvalidPolicyDocument.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from s3facade.auth.common import (
    SERVICE,
    TERMINATOR,
    hmac_hex,
    lookup_secret,
    parse_amz_date,
    signing_key,
)
from s3facade.auth.sigv2 import sign, signature_mismatch
from s3facade.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
EQ, STARTS_WITH, LENGTH_RANGE = "eq", "starts-with", "content-length-range"
# Fields no condition has to name: the signature's own, and x-ignore-* (policy docs).
EXEMPT_FIELDS = frozenset({"policy", "x-amz-signature", "signature", "awsaccesskeyid", "file"})
IGNORE_PREFIX = "x-ignore-"
# (lower-cased form field, the name S3 reports missing), in the order S3 checks them.
V4_FIELDS = (
    ("x-amz-algorithm", "X-Amz-Algorithm"),
    ("x-amz-credential", "X-Amz-Credential"),
    ("x-amz-date", "X-Amz-Date"),
    ("x-amz-signature", "X-Amz-Signature"),
)
V2_FIELDS = (("awsaccesskeyid", "AWSAccessKeyId"), ("signature", "Signature"))

_EXPIRATION = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")
_INTEGER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class PolicyCondition:
    operation: str  # EQ, STARTS_WITH or LENGTH_RANGE; {"name": "v"} is an EQ
    name: str = ""  # EQ/STARTS_WITH: as written, "$key"; without the "$" it never matches
    value: str = ""  # EQ/STARTS_WITH: the value or prefix
    bounds: tuple[int, int] | None = None  # LENGTH_RANGE; None if not integers (never met)
    text: str = ""  # as S3 quotes it: ["eq", "$key", "user/"]

    @property
    def field(self) -> str | None:
        """The lower-cased form field named, or None (content-length-range, or no "$")."""
        return self.name[1:].lower() if self.name.startswith("$") else None


@dataclass(frozen=True)
class PostPolicy:
    expiration: datetime
    conditions: tuple[PolicyCondition, ...]


def _invalid(detail: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {detail}")


def _quote(items: list[Any]) -> str:
    return json.dumps(items, ensure_ascii=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: not JSON


# --- the policy document -----------------------------------------------------------------


def parse_post_policy(policy_b64: str) -> PostPolicy:
    """Decode the form's `policy` field; raises InvalidPolicyDocument with S3's messages."""
    try:
        # Some encoders wrap base64 lines; the signature covers the text as sent anyway.
        raw = base64.b64decode("".join(policy_b64.split()), validate=True)
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, binascii.Error, RecursionError):
        raise _invalid("Invalid JSON.") from None
    if not isinstance(doc, dict):
        raise _invalid("Invalid JSON.")
    for member in doc:  # names are case-sensitive: "EXPIRATION" is refused
        if member not in ("expiration", "conditions"):
            raise _invalid(f"Unexpected: '{member.lower()}'")
    if "expiration" not in doc:
        raise _invalid("Policy missing expiration.")
    if "conditions" not in doc:
        raise _invalid("Policy missing conditions.")
    expiration = _expiration(doc["expiration"])
    if not isinstance(doc["conditions"], list):
        raise _invalid("Invalid 'conditions' value: must be a List.")
    return PostPolicy(expiration, tuple(_condition(c) for c in doc["conditions"]))


def _expiration(value: object) -> datetime:
    """ISO 8601 in UTC, with or without fractional seconds; S3 refuses offsets."""
    if isinstance(value, str) and _EXPIRATION.fullmatch(value):
        seconds, _, fraction = value[:-1].partition(".")
        try:
            when = datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            pass
        else:
            return when.replace(microsecond=int((fraction + "000000")[:6]))
    raise _invalid(f"Invalid 'expiration' value: '{value}'")


def _condition(item: object) -> PolicyCondition:
    if isinstance(item, dict):
        if len(item) != 1:
            raise _invalid(
                "Invalid Simple-Condition: Simple-Conditions must have exactly one property "
                "specified."
            )
        ((name, value),) = item.items()
        if value is None:
            raise _invalid("Invalid JSON.")  # what S3 says of a null, unlike a number
        if not isinstance(value, str):
            raise _invalid("Invalid Simple-Condition: value must be a string.")
        # S3 quotes a simple condition as the eq it stands for.
        return PolicyCondition(EQ, f"${name}", value, text=_quote([EQ, f"${name}", value]))
    if not isinstance(item, list):
        raise _invalid("Invalid condition test: must be a List or Object.")
    if not item or not isinstance(item[0], str):
        raise _invalid("Invalid Condition: missing operation identifier.")
    operation = item[0].lower()
    if operation not in (EQ, STARTS_WITH, LENGTH_RANGE):
        raise _invalid(f"Invalid Condition: unknown operation '{item[0]}'.")
    if len(item) != 3:
        raise _invalid(f"Invalid {item[0]}: wrong number of arguments.")
    text = _quote(item)
    if operation == LENGTH_RANGE:
        low, high = (_bound(b) for b in item[1:])
        bounds = None if low is None or high is None else (low, high)
        return PolicyCondition(LENGTH_RANGE, bounds=bounds, text=text)
    name, value = item[1:]
    if not isinstance(name, str) or not isinstance(value, str):
        raise _invalid("Invalid JSON.")
    return PolicyCondition(operation, name, value, text=text)


def _bound(value: object) -> int | None:
    """A JSON integer, or a string of one (S3 accepts "10"); a float is "Invalid JSON"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return int(value) if _INTEGER.fullmatch(value) else None  # fails as a condition
    raise _invalid("Invalid JSON.")


# --- the conditions ----------------------------------------------------------------------


def check_post_policy(
    policy: PostPolicy,
    fields: Mapping[str, str],
    bucket: str,
    now: datetime,
    *,
    field_names: Mapping[str, str] | None = None,
) -> None:
    """Check the expiration and every condition but the file's length (see check_length).

    `fields` are the form's text fields (names in any case), with ${filename} already
    expanded: S3 matches conditions against the expanded values. `field_names` maps
    lower-cased names to names as sent, for the "Extra input fields" message.
    """
    if now > policy.expiration:
        raise S3Error("AccessDenied", "Invalid according to Policy: Policy expired.")
    form = {name.lower(): value for name, value in fields.items()}
    for condition in policy.conditions:
        if not _holds(condition, form, bucket):
            raise S3Error(
                "AccessDenied",
                f"Invalid according to Policy: Policy Condition failed: {condition.text}",
            )
    covered = {c.field for c in policy.conditions}
    extra = [
        name
        for name in form
        if name not in covered and name not in EXEMPT_FIELDS and not name.startswith(IGNORE_PREFIX)
    ]
    if extra:
        names = field_names or {}
        listed = ", ".join(names.get(name, name) for name in extra)
        raise S3Error("AccessDenied", f"Invalid according to Policy: Extra input fields: {listed}")


def _holds(condition: PolicyCondition, form: Mapping[str, str], bucket: str) -> bool:
    if condition.operation == LENGTH_RANGE:
        return condition.bounds is not None  # the length itself: check_length
    name = condition.field
    if name is None:
        return False
    # The bucket is the request's; S3 fails a condition on an absent field, even with "".
    actual = bucket if name == "bucket" else form.get(name)
    if actual is None:
        return False
    if condition.operation == EQ:
        return actual == condition.value
    if name == "content-type":  # a comma-separated list: each type must match
        return all(part.strip().startswith(condition.value) for part in actual.split(","))
    return actual.startswith(condition.value)


def content_length_range(policy: PostPolicy) -> tuple[int, int] | None:
    """The (min, max) file length every content-length-range allows, or None."""
    ranges = [c.bounds for c in policy.conditions if c.bounds is not None]
    if not ranges:
        return None
    return max(low for low, _ in ranges), min(high for _, high in ranges)


def check_length(policy: PostPolicy, size: int) -> None:
    for condition in policy.conditions:
        if condition.bounds is None:
            continue
        low, high = condition.bounds
        # S3's messages here say "allowed size", not its error table's "object size".
        if size < low:
            raise S3Error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                extra={"ProposedSize": str(size), "MinSizeAllowed": str(low)},
            )
        if size > high:
            raise S3Error(
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
                extra={"ProposedSize": str(size), "MaxSizeAllowed": str(high)},
            )


# --- the signature -----------------------------------------------------------------------


def post_signer(
    fields: Mapping[str, str],
    secret_for: Callable[[str], str | None],
    region: str,
) -> str | None:
    """Verify the form's signature over its policy; the access key id, or None when the form
    has neither policy nor signature fields (anonymous: the bucket's ACL decides).

    No clock is consulted: S3 bounds a POST by its policy's expiration (check_post_policy),
    and no recording shows it comparing x-amz-date with the clock.
    """
    form = {name.lower(): value for name, value in fields.items()}
    if any(name in form for name, _ in V4_FIELDS):
        return _verify_v4(form, secret_for, region)
    if any(name in form for name, _ in V2_FIELDS):
        return _verify_v2(form, secret_for)
    if "policy" in form:
        raise S3Error("AccessDenied")  # a policy nobody signed
    return None


def _require(form: Mapping[str, str], names: tuple[tuple[str, str], ...]) -> str:
    """The policy, once every signature field is present (S3 names the first missing)."""
    for name, reported in (*names, ("policy", "Policy")):
        if name not in form:
            raise S3Error(
                "InvalidArgument",
                f"Bucket POST must contain a field named '{reported}'.  "
                "If it is specified, please check the order of the fields.",
                extra={"ArgumentName": reported, "ArgumentValue": ""},
            )
    return form["policy"]


def _argument(name: str, value: str, message: str) -> S3Error:
    return S3Error("InvalidArgument", message, extra={"ArgumentName": name, "ArgumentValue": value})


def _verify_v4(
    form: Mapping[str, str], secret_for: Callable[[str], str | None], region: str
) -> str:
    policy = _require(form, V4_FIELDS)
    algorithm = form["x-amz-algorithm"]
    if algorithm != ALGORITHM:
        raise _argument(
            "X-Amz-Algorithm", algorithm, f'X-Amz-Algorithm only supports "{ALGORITHM}"'
        )
    credential = form["x-amz-credential"]
    access_key, date = _credential(credential, region)
    amz_date = form["x-amz-date"]
    if parse_amz_date(amz_date) is None:
        # sic: S3's spelling
        raise _argument(
            "X-Amz-Date", amz_date, "X-Amz-Date must be formated via ISO8601 Long format"
        )
    secret = lookup_secret(secret_for, access_key)
    # The string to sign is the base64 policy text itself, as sent.
    expected = hmac_hex(signing_key(secret, date, region), policy)
    provided = form["x-amz-signature"]
    if not hmac.compare_digest(expected.encode(), provided.strip().lower().encode()):
        raise signature_mismatch(access_key, policy, provided)
    return access_key


def _credential(credential: str, region: str) -> tuple[str, str]:
    """(access key, date) of <AK>/<yyyymmdd>/<region>/s3/aws4_request, or S3's complaint."""

    def bad(message: str) -> S3Error:
        return _argument("X-Amz-Credential", credential, message)

    parts = credential.rsplit("/", 4)
    if len(parts) != 5:
        raise bad(
            'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/'
            'aws4_request".'
        )
    access_key, date, cred_region, service, terminator = parts
    if not access_key:
        raise bad("a non-empty Access Key (AKID) must be provided in the credential.")
    if not re.fullmatch(r"\d{8}", date):
        raise bad(
            f'incorrect date format "{date}". This date in the credential must be in the '
            'format "yyyyMMdd".'
        )
    if cred_region != region:
        error = bad(f"the region '{cred_region}' is wrong; expecting '{region}'")
        error.extra["Region"] = region
        raise error
    if service != SERVICE:
        raise bad(f'incorrect service "{service}". This endpoint belongs to "{SERVICE}".')
    if terminator != TERMINATOR:
        raise bad(f'incorrect terminal "{terminator}". This endpoint uses "{TERMINATOR}".')
    return access_key, date


def _verify_v2(form: Mapping[str, str], secret_for: Callable[[str], str | None]) -> str:
    policy = _require(form, V2_FIELDS)
    access_key = form["awsaccesskeyid"]
    secret = lookup_secret(secret_for, access_key)
    provided = form["signature"]
    if not hmac.compare_digest(sign(secret, policy).encode(), provided.strip().encode()):
        raise signature_mismatch(access_key, policy, provided)
    return access_key
