"""The Condition element of bucket policies, and the value patterns (wildcards, policy
variables) it shares with the Resource element. Pure: no I/O; registry.access.policy uses it.

https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from s3facade.registry.errors import RegistryError

# AWS's MalformedPolicy messages for the condition block and the document's JSON.
INVALID_JSON = "This policy contains invalid Json"
INVALID_CONDITION_KEY = "Policy has an invalid condition key"
INVALID_IP = "Invalid IP address in Conditions"
# AWS documents no text for these; worded like its others.
INVALID_NUMBER = "Invalid numeric value in Conditions"
INVALID_DATE = "Invalid date value in Conditions"
INVALID_BOOLEAN = "Invalid boolean value in Conditions"


class MalformedPolicy(RegistryError):
    """A bucket policy S3 refuses; `message` is the text of AWS's MalformedPolicy error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestContext:
    """A request's condition keys, each fetched from the (possibly lazy) mapping at most once:
    some keys cost a lookup, and a policy may name one key in several statements."""

    def __init__(self, context: Mapping[str, Sequence[str]]) -> None:
        self._context = context
        self._fetched: dict[str, tuple[str, ...] | None] = {}

    def values(self, key: str) -> tuple[str, ...] | None:
        """The key's values; None when the request lacks the key (absent or empty)."""
        if key in self._fetched:
            return self._fetched[key]
        found = self._context.get(key)
        values = (found,) if isinstance(found, str) else tuple(found or ())
        self._fetched[key] = values or None
        return values or None


# --- Values: wildcards and policy variables ------------------------------------------------


@dataclass(frozen=True)
class Variable:
    """`${key}` or `${key, 'default'}`: the key's value in the request, else the default, else
    nothing (the value then matches no request value)."""

    key: str  # lower-case; "" when the variable is malformed and never resolves
    default: str | None

    def resolve(self, context: RequestContext) -> str | None:
        values = context.values(self.key) if self.key else None
        # A multi-valued key cannot stand in for one value.
        return values[0] if values is not None and len(values) == 1 else self.default


# A piece of a value: (text, True) where * and ? are wildcards, (text, False) literal text (a
# variable's value, or ${*} ${?} ${$}), or a Variable still to resolve.
Piece = tuple[str, bool] | Variable
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_BODY = re.compile(r"\s*([^\s,']+)\s*(?:,\s*'((?:[^']|'')*)'\s*)?")


class Template:
    """One value of Resource or of a condition: text whose `${...}` policy variables (only in
    Version 2012-10-17 policies) are replaced by the request's values at evaluation."""

    def __init__(self, text: str, variables: bool) -> None:
        self.text = text
        self.pieces: tuple[Piece, ...] = _pieces(text) if variables else ((text, True),)
        self.has_variables = any(isinstance(piece, Variable) for piece in self.pieces)

    @property
    def fixed(self) -> bool:
        """No wildcard and no variable: names exactly one value (Block Public Access' test)."""
        return not self.has_variables and not any(
            wild and ("*" in text or "?" in text)
            for text, wild in (p for p in self.pieces if not isinstance(p, Variable))
        )

    def resolved(self, context: RequestContext) -> list[tuple[str, bool]] | None:
        out: list[tuple[str, bool]] = []
        for piece in self.pieces:
            if isinstance(piece, Variable):
                value = piece.resolve(context)
                if value is None:
                    return None
                out.append((value, False))  # a substituted value's * is a plain character
            else:
                out.append(piece)
        return out

    def render(self, context: RequestContext) -> str | None:
        """The value as text, wildcards not interpreted (StringEquals, ...)."""
        pieces = self.resolved(context)
        return None if pieces is None else "".join(text for text, _ in pieces)

    def regex(self, context: RequestContext, *, arn: bool = False) -> re.Pattern[str] | None:
        """The value as a wildcard pattern (StringLike, Resource, ...); None if unresolvable."""
        pieces = self.resolved(context)
        return None if pieces is None else compile_glob(tuple(pieces), arn=arn)

    def admits(self, text: str) -> tuple[bool, bool]:
        """(matches `text`, matches some longer string starting with `text`), variables taken
        as `*`: for checking at parse time that a Resource stays within its bucket."""
        pieces = [("*", True) if isinstance(p, Variable) else p for p in self.pieces]
        tokens = [(ch, wild and ch in "*?") for text, wild in pieces for ch in text]
        states = _skip_stars(tokens, {0})  # positions in `tokens` reachable so far
        for ch in text:
            moved = set()
            for i in states:
                if i < len(tokens) and (tokens[i][1] or tokens[i][0] == ch):
                    moved.add(i if tokens[i] == ("*", True) else i + 1)  # `*` may take more
            states = _skip_stars(tokens, moved)
        return len(tokens) in states, any(i < len(tokens) for i in states)


def _skip_stars(tokens: list[tuple[str, bool]], states: set[int]) -> set[int]:
    """The states reachable by letting wildcard `*`s match nothing."""
    todo = list(states)
    while todo:
        i = todo.pop()
        if i < len(tokens) and tokens[i] == ("*", True) and i + 1 not in states:
            states.add(i + 1)
            todo.append(i + 1)
    return states


def _pieces(text: str) -> tuple[Piece, ...]:
    pieces: list[Piece] = []
    position = 0
    for found in _VARIABLE.finditer(text):
        if found.start() > position:
            pieces.append((text[position : found.start()], True))
        body = found.group(1)
        if body in ("*", "?", "$"):  # AWS's escapes for characters that are special
            pieces.append((body, False))
        elif variable := _VARIABLE_BODY.fullmatch(body):
            default = variable.group(2)
            pieces.append(
                Variable(
                    variable.group(1).lower(),
                    None if default is None else default.replace("''", "'"),
                )
            )
        else:
            pieces.append(Variable("", None))
        position = found.end()
    if position < len(text) or not pieces:
        pieces.append((text[position:], True))
    return tuple(pieces)


@functools.lru_cache(maxsize=4096)
def compile_glob(
    pieces: tuple[tuple[str, bool], ...], ignore_case: bool = False, arn: bool = False
) -> re.Pattern[str]:
    """`*` any run of characters, `?` one; with `arn`, neither crosses a `:` within the first
    five of the six components of an ARN (ArnLike compares them one by one)."""
    parts: list[str] = []
    colons = 0
    for text, wild in pieces:
        for ch in text:
            if wild and ch in "*?":
                one = "[^:]" if arn and colons < 5 else "."
                parts.append(one + "*" if ch == "*" else one)
            else:
                parts.append(re.escape(ch))
                colons += ch == ":"
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


# --- Operators --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operator:
    kind: str  # string | string-ignore-case | string-like | numeric | date | bool | ip | arn | null
    negated: bool = False  # StringNotEquals, NotIpAddress, ...: true where the positive is false
    compare: Callable[[Decimal, Decimal], bool] = operator.eq  # numeric, date: request ? policy


def _comparisons(kind: str) -> dict[str, _Operator]:
    prefix = kind.capitalize()
    return {
        f"{prefix}Equals": _Operator(kind),
        f"{prefix}NotEquals": _Operator(kind, negated=True),
        f"{prefix}LessThan": _Operator(kind, compare=operator.lt),
        f"{prefix}LessThanEquals": _Operator(kind, compare=operator.le),
        f"{prefix}GreaterThan": _Operator(kind, compare=operator.gt),
        f"{prefix}GreaterThanEquals": _Operator(kind, compare=operator.ge),
    }


OPERATORS: Mapping[str, _Operator] = {
    "StringEquals": _Operator("string"),
    "StringNotEquals": _Operator("string", negated=True),
    "StringEqualsIgnoreCase": _Operator("string-ignore-case"),
    "StringNotEqualsIgnoreCase": _Operator("string-ignore-case", negated=True),
    "StringLike": _Operator("string-like"),
    "StringNotLike": _Operator("string-like", negated=True),
    **_comparisons("numeric"),
    **_comparisons("date"),
    "Bool": _Operator("bool"),
    "IpAddress": _Operator("ip"),
    "NotIpAddress": _Operator("ip", negated=True),
    "ArnEquals": _Operator("arn"),  # AWS: "ArnEquals and ArnLike" behave identically
    "ArnLike": _Operator("arn"),
    "ArnNotEquals": _Operator("arn", negated=True),
    "ArnNotLike": _Operator("arn", negated=True),
    "Null": _Operator("null"),
}
SET_OPERATORS = ("ForAnyValue", "ForAllValues")
# Keys whose fixed value makes an Allow to everyone non-public ("The meaning of public",
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html);
# aws:SourceIp is the other, with CIDRs.
IDENTIFYING_KEYS = frozenset(
    {
        "aws:sourcearn",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:sourceowner",
        "aws:sourceaccount",
        "aws:principalaccount",
        "aws:principalorgid",
        "aws:userid",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "s3:dataaccesspointarn",
        "s3:dataaccesspointaccount",
    }
)
Matcher = Callable[[str, RequestContext], bool]


@dataclass(frozen=True)
class Condition:
    """One key under one operator: `{"<operator>": {"<key>": value or [values]}}`."""

    operator: str  # as written, e.g. "ForAllValues:StringLikeIfExists"
    key: str  # lower-case
    set_operator: str | None  # ForAnyValue | ForAllValues
    if_exists: bool
    negated: bool
    matches: Matcher  # does one request value match any policy value (positive sense)
    null_tests: tuple[bool, ...] | None  # Null: the policy's true (absent) / false (present)
    restricts_public: bool  # fixes an identifying key: the statement is not public

    def holds(self, context: RequestContext) -> bool:
        values = context.values(self.key)
        if self.null_tests is not None:
            return (values is None) in self.null_tests
        if values is None:
            # Absent key: IfExists passes; ForAllValues is vacuously true, ForAnyValue false;
            # otherwise positive operators fail and negated ones hold.
            if self.if_exists:
                return True
            if self.set_operator is not None:
                return self.set_operator == "ForAllValues"
            return self.negated
        results = (self.matches(value, context) != self.negated for value in values)
        if self.set_operator == "ForAnyValue":
            return any(results)
        if self.set_operator == "ForAllValues" or self.negated:
            return all(results)  # a negated operator: no request value matches any policy value
        return any(results)


def parse_conditions(raw: object, variables: bool) -> tuple[Condition, ...]:
    """The statement's Condition element: every operator and every key must hold (AND), and a
    key holds if any of its values does (OR)."""
    if not isinstance(raw, dict):
        raise MalformedPolicy(INVALID_JSON)
    conditions: list[Condition] = []
    for name, block in raw.items():
        set_operator, if_exists, op = _operator(name)
        if not isinstance(block, dict):
            raise MalformedPolicy(INVALID_JSON)
        for written_key, value in block.items():
            key = condition_key(written_key)
            texts = _values(value)
            matches, restricts = _matcher(op, key, texts, variables)
            restricts_public = restricts and not (
                op.negated or if_exists or set_operator == "ForAllValues"
            )
            null_tests = None
            if op.kind == "null":
                null_tests = tuple(_boolean(text) == "true" for text in texts)
            conditions.append(
                Condition(
                    name,
                    key,
                    set_operator,
                    if_exists,
                    op.negated,
                    matches,
                    null_tests,
                    restricts_public,
                )
            )
    return tuple(conditions)


def _operator(name: str) -> tuple[str | None, bool, _Operator]:
    set_operator, _, base = name.rpartition(":")
    if_exists = base.endswith("IfExists")
    op = OPERATORS.get(base.removesuffix("IfExists"))
    if (
        op is None
        or (set_operator and set_operator not in SET_OPERATORS)
        or (op.kind == "null" and (if_exists or set_operator))  # AWS allows neither on Null
    ):
        raise MalformedPolicy(f"Invalid Condition type : {name}")
    return set_operator or None, if_exists, op


def condition_key(key: str) -> str:
    """The key, lower-case (AWS compares key names case-insensitively); only the global `aws:`
    and the `s3:` keys apply to a bucket."""
    lowered = key.lower()
    prefix, _, name = lowered.partition(":")
    if prefix not in ("aws", "s3") or not name or lowered.endswith("/"):
        raise MalformedPolicy(INVALID_CONDITION_KEY)
    return lowered


def _values(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise MalformedPolicy(INVALID_JSON)
    texts = []
    for item in items:
        if isinstance(item, bool):  # before int: JSON true is a Python int too
            texts.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            texts.append(str(item))
        else:
            raise MalformedPolicy(INVALID_JSON)
    return texts


def _matcher(op: _Operator, key: str, texts: list[str], variables: bool) -> tuple[Matcher, bool]:
    """(the test of one request value against the policy's values, whether those values fix
    `key` to named values for Block Public Access)."""
    kind = op.kind
    if kind in ("string", "string-ignore-case", "string-like", "arn"):
        templates = [Template(text, variables) for text in texts]
        fixed = key in IDENTIFYING_KEYS and all(t.fixed for t in templates)
        return _string_matcher(kind, templates), fixed
    if kind == "numeric":
        numbers = [_required(_number(text), INVALID_NUMBER) for text in texts]
        return _ordered_matcher(numbers, op.compare, _number), False
    if kind == "date":
        dates = [_required(_date(text), INVALID_DATE) for text in texts]
        return _ordered_matcher(dates, op.compare, _date), False
    if kind == "bool":
        booleans = {_boolean(text) for text in texts}
        return (lambda value, _: value.lower() in booleans), False
    if kind == "ip":
        networks = [_network(text) for text in texts]
        fixed = key == "aws:sourceip" and all(net.prefixlen > 0 for net in networks)
        return _ip_matcher(networks), fixed
    return (lambda value, _: False), False  # Null: Condition.holds tests presence itself


def _string_matcher(kind: str, templates: list[Template]) -> Matcher:
    if kind in ("string", "string-ignore-case"):
        fold = kind == "string-ignore-case"

        def equals(value: str, context: RequestContext) -> bool:
            wanted = value.casefold() if fold else value
            for template in templates:
                text = template.render(context)
                if text is not None and (text.casefold() if fold else text) == wanted:
                    return True
            return False

        return equals
    arn = kind == "arn"

    def like(value: str, context: RequestContext) -> bool:
        for template in templates:
            pattern = template.regex(context, arn=arn)
            if pattern is not None and pattern.fullmatch(value):
                return True
        return False

    return like


def _ordered_matcher(
    policy_values: list[Decimal],
    compare: Callable[[Decimal, Decimal], bool],
    parse: Callable[[str], Decimal | None],
) -> Matcher:
    def matches(value: str, _: RequestContext) -> bool:
        parsed = parse(value)  # a request value of the wrong form matches nothing
        return parsed is not None and any(compare(parsed, wanted) for wanted in policy_values)

    return matches


def _ip_matcher(networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> Matcher:
    def matches(value: str, _: RequestContext) -> bool:
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            return False
        # An IPv4 client seen through a dual-stack socket still matches IPv4 ranges.
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(address in net or (mapped is not None and mapped in net) for net in networks)

    return matches


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")  # JSON's 1e+20 too
_EPOCH_SECONDS = re.compile(r"[+-]?\d+(?:\.\d+)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _required(value: Decimal | None, message: str) -> Decimal:
    if value is None:
        raise MalformedPolicy(message)
    return value


def _number(text: str) -> Decimal | None:
    text = text.strip()
    return Decimal(text) if _NUMBER.fullmatch(text) else None


def _date(text: str) -> Decimal | None:
    """Seconds since the epoch, from epoch seconds or an ISO 8601 date (UTC unless zoned)."""
    text = text.strip()
    if _EPOCH_SECONDS.fullmatch(text):
        return Decimal(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    since = moment - _EPOCH
    return Decimal(since.days * 86400 + since.seconds) + Decimal(since.microseconds) / 1_000_000


def _boolean(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise MalformedPolicy(INVALID_BOOLEAN)
    return lowered


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise MalformedPolicy(INVALID_IP) from None
