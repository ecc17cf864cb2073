"""A bucket's CORS rules and how S3 picks the one that answers a cross-origin request.

S3 uses the first CORSRule whose AllowedOrigin matches the Origin, whose AllowedMethod holds
the method (a preflight's Access-Control-Request-Method), and whose AllowedHeader patterns
cover every name in a preflight's Access-Control-Request-Headers. A pattern holds at most
one '*', which matches any run of characters, the empty one too, and is anchored at both
ends ("https://*.example.com" matches "https://a.b.example.com", not "https://example.com").
Origins and methods compare exactly; header names without regard to case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from s3facade.registry.errors import RegistryError

METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD")  # AllowedMethod's only values
MAX_RULES = 100
MAX_ID_LENGTH = 255
MAX_AGE_LIMIT = 2**31 - 1  # MaxAgeSeconds is an xsd:int


class InvalidCorsConfiguration(RegistryError):
    """A configuration S3 refuses; `message` is S3's text where it is known."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def wildcard_match(pattern: str, value: str) -> bool:
    """`pattern` holds at most one '*' (validated), so a prefix and a suffix test suffice."""
    head, star, tail = pattern.partition("*")
    if not star:
        return pattern == value
    return len(value) >= len(head) + len(tail) and value.startswith(head) and value.endswith(tail)


@dataclass(frozen=True)
class CorsRule:
    allowed_methods: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int | None = None
    id: str | None = None

    def matching_origin(self, origin: str) -> str | None:
        """The first AllowedOrigin that matches `origin`: whether it is exactly "*" decides
        between answering "*" and echoing the origin."""
        return next((p for p in self.allowed_origins if wildcard_match(p, origin)), None)

    def allows_header(self, name: str) -> bool:
        name = name.lower()
        return any(wildcard_match(p.lower(), name) for p in self.allowed_headers)

    def matches(self, origin: str, method: str, request_headers: Sequence[str] = ()) -> bool:
        """A rule without AllowedHeader matches no preflight that names a header."""
        return (
            method in self.allowed_methods
            and self.matching_origin(origin) is not None
            and all(self.allows_header(name) for name in request_headers)
        )

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "allowed_methods": list(self.allowed_methods),
            "allowed_origins": list(self.allowed_origins),
        }
        if self.allowed_headers:
            record["allowed_headers"] = list(self.allowed_headers)
        if self.expose_headers:
            record["expose_headers"] = list(self.expose_headers)
        if self.max_age_seconds is not None:
            record["max_age_seconds"] = self.max_age_seconds
        if self.id is not None:
            record["id"] = self.id
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> CorsRule:
        return cls(
            allowed_methods=_strings(record["allowed_methods"]),
            allowed_origins=_strings(record["allowed_origins"]),
            allowed_headers=_strings(record.get("allowed_headers", ())),
            expose_headers=_strings(record.get("expose_headers", ())),
            max_age_seconds=_optional_int(record.get("max_age_seconds")),
            id=_optional_str(record.get("id")),
        )


@dataclass(frozen=True)
class CorsConfiguration:
    rules: tuple[CorsRule, ...]

    @classmethod
    def of(cls, rules: Iterable[CorsRule]) -> CorsConfiguration:
        """The validated configuration; raises InvalidCorsConfiguration as S3 refuses."""
        config = cls(tuple(rules))
        validate(config)
        return config

    def rule_for(
        self, origin: str, method: str, request_headers: Sequence[str] = ()
    ) -> CorsRule | None:
        """The first matching rule: S3 does not look for a better one further on."""
        return next((r for r in self.rules if r.matches(origin, method, request_headers)), None)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-able form the event log records."""
        return {"rules": [rule.as_dict() for rule in self.rules]}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> CorsConfiguration:
        # Validated again: a log edited by hand must not yield rules S3 would refuse.
        return cls.of(CorsRule.from_dict(rule) for rule in record["rules"])


def validate(config: CorsConfiguration) -> None:
    if not config.rules:
        raise InvalidCorsConfiguration("A CORS configuration must have at least one CORSRule")
    if len(config.rules) > MAX_RULES:
        raise InvalidCorsConfiguration(
            f"A CORS configuration can have at most {MAX_RULES} rules, not {len(config.rules)}"
        )
    for rule in config.rules:
        _validate_rule(rule)


def _validate_rule(rule: CorsRule) -> None:
    if not rule.allowed_methods or not rule.allowed_origins:
        raise InvalidCorsConfiguration(
            "Each CORSRule must identify at least one origin and one method"
        )
    for method in rule.allowed_methods:
        if method not in METHODS:  # case counts: S3 refuses "get"
            raise InvalidCorsConfiguration(
                f"Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )
    for origin in rule.allowed_origins:
        if origin.count("*") > 1:
            raise InvalidCorsConfiguration(
                f'AllowedOrigin "{origin}" can not have more than one wildcard.'
            )
    for header in rule.allowed_headers:
        if header.count("*") > 1:
            raise InvalidCorsConfiguration(
                f'AllowedHeader "{header}" can not have more than one wildcard.'
            )
    for header in rule.expose_headers:
        if "*" in header:
            raise InvalidCorsConfiguration(
                f'ExposeHeader "{header}" contains wildcard. We currently do not support '
                "wildcard for ExposeHeader."
            )
    if rule.max_age_seconds is not None and not 0 <= rule.max_age_seconds <= MAX_AGE_LIMIT:
        raise InvalidCorsConfiguration(
            f"MaxAgeSeconds must be between 0 and {MAX_AGE_LIMIT}, not {rule.max_age_seconds}"
        )
    if rule.id is not None and len(rule.id) > MAX_ID_LENGTH:
        raise InvalidCorsConfiguration(
            f"The ID of a CORSRule cannot be longer than {MAX_ID_LENGTH} characters"
        )


def _strings(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise InvalidCorsConfiguration(f"expected a list of strings, not {values!r}")
    return tuple(values)


def _optional_int(value: Any) -> int | None:
    # bool is an int to isinstance, and never a MaxAgeSeconds
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise InvalidCorsConfiguration(f"max_age_seconds must be an integer, not {value!r}")


def _optional_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidCorsConfiguration(f"id must be a string, not {value!r}")
