"""Bucket lifecycle: the rules, their recorded form, and what they would do now.

A bucket's rules are recorded in its `BucketLifecycleSet` event as plain dicts shaped like
S3's XML in snake_case (the protocol layer converts; a script may pass dicts directly):

    {"id": "logs", "status": "Enabled" | "Disabled",
     "filter": {"prefix": p} | {"tag": {"key": k, "value": v}} | {"object_size_greater_than": n}
               | {"object_size_less_than": n} | {} | {"and": {"prefix": p, "tags": [{"key":
               k, "value": v}, ...], "object_size_greater_than": n, "object_size_less_than": n}},
     (or instead of "filter", the legacy rule-level "prefix": p)
     "expiration": {"days": n} | {"date": "2030-01-01T00:00:00"} (naive UTC)
                   | {"expired_object_delete_marker": bool},
     "noncurrent_version_expiration": {"noncurrent_days": n, "newer_noncurrent_versions": m},
     "abort_incomplete_multipart_upload": {"days_after_initiation": n}}

`plan` is a pure function of the views and a time: which versions, delete markers and
uploads the enabled rules (and the configured retention policies' `expire_days`) expire
now. `registry.sweeper` carries plans out.

Ages are exact: N days means age >= N * 86400 s, where AWS rounds the due time up to the
next midnight UTC. A protected version (legal hold, unexpired retention) is never expired;
unlike AWS, no delete marker is placed over a protected current version either.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from s3facade.registry.errors import NoSuchBucket, RegistryError
from s3facade.registry.model import (
    NULL_VERSION,
    Bucket,
    MultipartUpload,
    ObjectVersion,
    Versioning,
)
from s3facade.registry.retention import RetentionPolicy, matching_policy

if TYPE_CHECKING:
    from s3facade.registry.views import ViewReader

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_RULES = 1000
MAX_ID_LENGTH = 255
MAX_NEWER_NONCURRENT = 100


class InvalidLifecycle(RegistryError):
    """A configuration S3 refuses; the message says why (one subclass per S3 error code)."""


class MalformedLifecycle(InvalidLifecycle):
    """The wrong shape: missing, repeated or conflicting elements, wrong types."""


class InvalidLifecycleArgument(InvalidLifecycle):
    """A value out of range: Days <= 0, an ID too long or repeated, too many rules."""


class InvalidLifecycleRequest(InvalidLifecycle):
    """Allowed elements in a combination S3 forbids (tags with delete-marker expiry...)."""


class InvalidLifecycleTag(InvalidLifecycle):
    pass


# -- the rules ---------------------------------------------------------------------------


class FilterForm(StrEnum):
    """How the client wrote the filter, kept so GET answers what PUT sent."""

    LEGACY = "legacy"  # rule-level <Prefix>
    EMPTY = "empty"
    PREFIX = "prefix"
    TAG = "tag"
    GREATER = "object_size_greater_than"
    LESS = "object_size_less_than"
    AND = "and"


@dataclass(frozen=True)
class RuleFilter:
    form: FilterForm
    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    greater_than: int | None = None
    less_than: int | None = None

    def matches(self, key: str, tags: Mapping[str, str], size: int | None) -> bool:
        """`size` None (delete markers, uploads): the size conditions do not apply."""
        if not key.startswith(self.prefix) or any(tags.get(k) != v for k, v in self.tags):
            return False
        if size is None:
            return True
        return (self.greater_than is None or size > self.greater_than) and (
            self.less_than is None or size < self.less_than
        )

    def as_dict(self) -> dict[str, Any]:
        tags = [{"key": k, "value": v} for k, v in self.tags]
        match self.form:
            case FilterForm.LEGACY | FilterForm.EMPTY:
                return {}
            case FilterForm.PREFIX:
                return {"prefix": self.prefix}
            case FilterForm.TAG:
                return {"tag": tags[0]}
            case FilterForm.GREATER:
                return {"object_size_greater_than": self.greater_than}
            case FilterForm.LESS:
                return {"object_size_less_than": self.less_than}
        both: dict[str, Any] = {"prefix": self.prefix} if self.prefix else {}
        if tags:
            both["tags"] = tags
        if self.greater_than is not None:
            both["object_size_greater_than"] = self.greater_than
        if self.less_than is not None:
            both["object_size_less_than"] = self.less_than
        return {"and": both}


@dataclass(frozen=True)
class Rule:
    id: str
    enabled: bool
    filter: RuleFilter
    expiration_days: int | None = None
    expiration_date: datetime | None = None  # naive UTC midnight
    expired_object_delete_marker: bool | None = None  # None: not given (false is kept)
    noncurrent_days: int | None = None
    newer_noncurrent_versions: int | None = None
    abort_days: int | None = None

    @property
    def expires_current(self) -> bool:
        return self.expiration_days is not None or self.expiration_date is not None

    def due(self, since: datetime, now: datetime) -> bool:
        """Expiration: Days after `since`, or on the Date."""
        if self.expiration_date is not None:
            return now >= self.expiration_date
        return self.expiration_days is not None and aged(since, now, self.expiration_days)

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "status": "Enabled" if self.enabled else "Disabled",
        }
        if self.filter.form is FilterForm.LEGACY:
            record["prefix"] = self.filter.prefix
        else:
            record["filter"] = self.filter.as_dict()
        if self.expiration_days is not None:
            record["expiration"] = {"days": self.expiration_days}
        elif self.expiration_date is not None:
            record["expiration"] = {"date": self.expiration_date.isoformat()}
        elif self.expired_object_delete_marker is not None:
            record["expiration"] = {
                "expired_object_delete_marker": self.expired_object_delete_marker
            }
        if self.noncurrent_days is not None:
            noncurrent: dict[str, int] = {"noncurrent_days": self.noncurrent_days}
            if self.newer_noncurrent_versions is not None:
                noncurrent["newer_noncurrent_versions"] = self.newer_noncurrent_versions
            record["noncurrent_version_expiration"] = noncurrent
        if self.abort_days is not None:
            record["abort_incomplete_multipart_upload"] = {"days_after_initiation": self.abort_days}
        return record


def aged(since: datetime, now: datetime, days: int) -> bool:
    """Exact days (AWS rounds the due time up to the next midnight UTC)."""
    return now - since >= timedelta(days=days)


def parse_rules(records: Sequence[Mapping[str, Any]]) -> list[Rule]:
    """Validate a configuration as S3 does; rules without an ID get a generated one (so the
    recorded form, `[r.as_dict() for r in rules]`, always has IDs)."""
    if isinstance(records, str | bytes) or not isinstance(records, Sequence) or not records:
        raise MalformedLifecycle("a lifecycle configuration needs at least one rule")
    if len(records) > MAX_RULES:
        raise InvalidLifecycleArgument(f"a lifecycle configuration holds at most {MAX_RULES} rules")
    rules = [_rule(record) for record in records]
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise InvalidLifecycleArgument(
            "Rule ID must be unique. Found same ID for more than one rule"
        )
    return rules


def rules_of(bucket: Bucket) -> list[Rule] | None:
    """The bucket's rules as recorded (validated when they were set)."""
    return None if bucket.lifecycle is None else [_rule(r) for r in bucket.lifecycle]


def _rule(value: Any) -> Rule:
    record = _typed(value, dict, "Rule")
    _known(record, "rule", {"id", "status", "filter", "prefix", *_ACTIONS})
    rule_id = record.get("id") or secrets.token_urlsafe(36)  # AWS generates one too
    if not isinstance(rule_id, str) or len(rule_id) > MAX_ID_LENGTH:
        raise InvalidLifecycleArgument("ID length should not exceed allowed limit of 255")
    status = record.get("status")
    if status not in ("Enabled", "Disabled"):
        raise MalformedLifecycle(f"Status must be Enabled or Disabled, not {status!r}")
    if ("filter" in record) == ("prefix" in record):
        raise MalformedLifecycle("a rule needs exactly one of Filter and Prefix")
    if "prefix" in record:
        rule_filter = RuleFilter(FilterForm.LEGACY, _typed(record["prefix"], str, "Prefix"))
    else:
        rule_filter = _filter(record["filter"])
    if not any(name in record for name in _ACTIONS):
        raise InvalidLifecycleRequest("At least one action needs to be specified in a rule")
    rule = Rule(rule_id, status == "Enabled", rule_filter)
    if "expiration" in record:
        rule = _expiration(rule, record["expiration"])
    if "noncurrent_version_expiration" in record:
        rule = _noncurrent(rule, record["noncurrent_version_expiration"])
    if "abort_incomplete_multipart_upload" in record:
        entry = _typed(record[_ACTIONS[2]], dict, "AbortIncompleteMultipartUpload")
        _known(entry, "AbortIncompleteMultipartUpload", {"days_after_initiation"})
        days = _positive(entry.get("days_after_initiation"), "AbortIncompleteMultipartUpload")
        if rule_filter.tags:
            raise InvalidLifecycleRequest(
                "AbortIncompleteMultipartUpload cannot be specified with Tags."
            )
        rule = replace(rule, abort_days=days)
    return rule


_ACTIONS = ("expiration", "noncurrent_version_expiration", "abort_incomplete_multipart_upload")
_SIZES = ("object_size_greater_than", "object_size_less_than")


def _filter(value: Any) -> RuleFilter:
    entry = _typed(value, dict, "Filter")
    _known(entry, "Filter", {"prefix", "tag", "and", *_SIZES})
    if len(entry) > 1:
        raise MalformedLifecycle("a Filter holds one of Prefix, Tag, And, ObjectSize*")
    if "prefix" in entry:
        return RuleFilter(FilterForm.PREFIX, _typed(entry["prefix"], str, "Prefix"))
    if "tag" in entry:
        return RuleFilter(FilterForm.TAG, tags=(_tag(entry["tag"]),))
    if "object_size_greater_than" in entry:
        size = _size(entry["object_size_greater_than"])
        return RuleFilter(FilterForm.GREATER, greater_than=size)
    if "object_size_less_than" in entry:
        return RuleFilter(FilterForm.LESS, less_than=_size(entry["object_size_less_than"]))
    if "and" not in entry:
        return RuleFilter(FilterForm.EMPTY)
    both = _typed(entry["and"], dict, "And")
    _known(both, "And", {"prefix", "tags", *_SIZES})
    tags = tuple(_tag(tag) for tag in _typed(both.get("tags", []), list, "Tags"))
    if len({key for key, _ in tags}) != len(tags):
        raise InvalidLifecycleRequest("Duplicate Tag Keys are not allowed.")
    greater = _size(both["object_size_greater_than"]) if _SIZES[0] in both else None
    less = _size(both["object_size_less_than"]) if _SIZES[1] in both else None
    if greater is not None and less is not None and greater >= less:
        raise InvalidLifecycleArgument("ObjectSizeGreaterThan must be less than ObjectSizeLessThan")
    return RuleFilter(
        FilterForm.AND, _typed(both.get("prefix", ""), str, "Prefix"), tags, greater, less
    )


def _expiration(rule: Rule, value: Any) -> Rule:
    entry = _typed(value, dict, "Expiration")
    _known(entry, "Expiration", {"days", "date", "expired_object_delete_marker"})
    if ("days" in entry and "date" in entry) or not entry:
        raise MalformedLifecycle("an Expiration holds one of Days, Date, ExpiredObjectDeleteMarker")
    if "expired_object_delete_marker" in entry:
        if len(entry) > 1:
            raise InvalidLifecycleArgument(
                "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle "
                "Expiration Policy."
            )
        marker = entry["expired_object_delete_marker"]
        if not isinstance(marker, bool):
            raise MalformedLifecycle("ExpiredObjectDeleteMarker must be true or false")
        if rule.filter.tags:
            raise InvalidLifecycleRequest(
                "ExpiredObjectDeleteMarker cannot be specified with object tags."
            )
        return replace(rule, expired_object_delete_marker=marker)
    if "days" in entry:
        return replace(rule, expiration_days=_positive(entry["days"], "Expiration"))
    try:
        date = datetime.fromisoformat(_typed(entry["date"], str, "Date"))
    except ValueError:
        raise MalformedLifecycle(f"not an ISO 8601 date: {entry['date']!r}") from None
    if date.tzinfo is not None or date != datetime(date.year, date.month, date.day):
        raise InvalidLifecycleArgument("'Date' must be at midnight GMT")
    return replace(rule, expiration_date=date)


def _noncurrent(rule: Rule, value: Any) -> Rule:
    entry = _typed(value, dict, "NoncurrentVersionExpiration")
    _known(entry, "NoncurrentVersionExpiration", {"noncurrent_days", "newer_noncurrent_versions"})
    days = _positive(entry.get("noncurrent_days"), "NoncurrentVersionExpiration", "NoncurrentDays")
    newer = entry.get("newer_noncurrent_versions")
    if newer is not None and not 1 <= _typed(newer, int, "NewerNoncurrentVersions") <= 100:
        raise InvalidLifecycleArgument(
            f"'NewerNoncurrentVersions' must be between 1 and {MAX_NEWER_NONCURRENT}"
        )
    return replace(rule, noncurrent_days=days, newer_noncurrent_versions=newer)


def _known(entry: Mapping[str, Any], what: str, allowed: set[str]) -> None:
    unknown = set(entry) - allowed
    if unknown:
        raise MalformedLifecycle(f"unknown in {what}: {', '.join(sorted(unknown))}")


def _typed(value: Any, kind: type[_T], what: str) -> _T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedLifecycle(f"{what}: expected {kind.__name__}, got {value!r}")
    return value


def _positive(value: Any, action: str, name: str = "Days") -> int:
    if value is None:
        raise MalformedLifecycle(f"{action} needs {name}")
    if _typed(value, int, name) <= 0:
        raise InvalidLifecycleArgument(f"'{name}' for {action} action must be a positive integer")
    return int(value)


def _size(value: Any) -> int:
    if _typed(value, int, "ObjectSize") < 0:
        raise InvalidLifecycleArgument("ObjectSize filters must not be negative")
    return int(value)


def _tag(value: Any) -> tuple[str, str]:
    tag = _typed(value, dict, "Tag")
    _known(tag, "Tag", {"key", "value"})
    key, text = _typed(tag.get("key"), str, "Key"), _typed(tag.get("value", ""), str, "Value")
    if not 1 <= len(key) <= 128 or len(text) > 256:
        raise InvalidLifecycleTag("The TagKey or TagValue you have provided is invalid")
    return key, text


# -- what the rules do now ---------------------------------------------------------------


class Action(StrEnum):
    EXPIRE = "expire"  # the object of an unversioned bucket: removed
    PLACE_DELETE_MARKER = "place-delete-marker"  # over the current version of a versioned one
    DELETE_NONCURRENT = "delete-noncurrent-version"
    REMOVE_DELETE_MARKER = "remove-expired-delete-marker"
    ABORT_UPLOAD = "abort-upload"


class Status(StrEnum):
    PLANNED = "planned"
    APPLIED = "applied"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Step:
    action: Action
    bucket: str
    key: str
    rule: str  # a rule id, or "policy:<name>" for a retention policy's expire_days
    version_id: str | None = None  # the version acted on (placing a marker: the one hidden)
    upload_id: str | None = None
    etag: str | None = None  # current expiry: only while the current object is still this one
    status: Status = Status.PLANNED
    reason: str | None = None  # why it was skipped

    def as_dict(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if name != "etag"}


def plan(
    views: ViewReader,
    policies: Sequence[RetentionPolicy],
    now: datetime,
    buckets: Iterable[str] | None = None,
) -> list[Step]:
    """What the enabled rules of `buckets` (default: all) and the policies' `expire_days` do
    at `now`. Pure: reads the views, changes nothing. Protected versions come back skipped.
    It streams every version of a bucket with rules: run it in a worker, on a snapshot."""
    steps: list[Step] = []
    expiring_policies = any(p.expire_days is not None for p in policies)
    for name in [b.name for b in views.buckets()] if buckets is None else buckets:
        bucket = views.bucket(name)
        if bucket is None:
            raise NoSuchBucket(name)
        try:
            rules = [rule for rule in rules_of(bucket) or () if rule.enabled]
        except InvalidLifecycle as exc:  # recorded by a script that skipped parse_rules
            log.warning("lifecycle rules of %s ignored: %s", name, exc)
            continue
        if not rules and not expiring_policies:
            continue
        for _, versions in itertools.groupby(views.all_versions(name), lambda v: v.key):
            steps.extend(_plan_key(bucket, list(versions), rules, policies, now))
        if any(rule.abort_days is not None for rule in rules):
            steps.extend(_plan_uploads(bucket, list(views.all_uploads(name)), rules, now))
    return steps


def _plan_key(
    bucket: Bucket,
    versions: list[ObjectVersion],  # newest first
    rules: list[Rule],
    policies: Sequence[RetentionPolicy],
    now: datetime,
) -> Iterator[Step]:
    latest = versions[0]
    removed = 0
    # A noncurrent version became noncurrent when the next newer version was written.
    for newer_noncurrent, (newer, version) in enumerate(itertools.pairwise(versions)):
        rule = next(
            (
                r
                for r in rules
                if r.noncurrent_days is not None
                and aged(newer.last_modified, now, r.noncurrent_days)
                and newer_noncurrent >= (r.newer_noncurrent_versions or 0)
                and _applies(r, version)
            ),
            None,
        )
        if rule is not None:
            step = Step(
                Action.DELETE_NONCURRENT, bucket.name, version.key, rule.id, version.version_id
            )
            step = _guarded(step, version, now)
            removed += step.status is Status.PLANNED
            yield step
    if not latest.delete_marker:
        cause = _current_cause(bucket, latest, rules, policies, now)
        if cause is not None:
            yield _expire_current(bucket, versions, cause, now)
    elif removed == len(versions) - 1:  # an expired object delete marker: nothing behind it
        rule = next((r for r in rules if _removes_marker(r, latest, now)), None)
        if rule is not None:
            yield Step(
                Action.REMOVE_DELETE_MARKER, bucket.name, latest.key, rule.id, latest.version_id
            )


def _applies(rule: Rule, version: ObjectVersion) -> bool:
    size = None if version.delete_marker else version.size
    return rule.filter.matches(version.key, version.tags, size)


def _current_cause(
    bucket: Bucket,
    current: ObjectVersion,
    rules: list[Rule],
    policies: Sequence[RetentionPolicy],
    now: datetime,
) -> str | None:
    """The rule (or policy) that expires the current version now, if any."""
    for rule in rules:
        if (
            rule.expires_current
            and _applies(rule, current)
            and rule.due(current.last_modified, now)
        ):
            return rule.id
    policy = matching_policy(policies, bucket.name, current.key, current.tags)
    days = policy.expire_days if policy is not None else None
    if policy is not None and days is not None and aged(current.last_modified, now, days):
        return f"policy:{policy.name}"
    return None


def _expire_current(
    bucket: Bucket, versions: list[ObjectVersion], cause: str, now: datetime
) -> Step:
    current = versions[0]
    action = Action.EXPIRE if bucket.versioning is None else Action.PLACE_DELETE_MARKER
    step = Step(action, bucket.name, current.key, cause, current.version_id, etag=current.etag)
    if bucket.versioning is Versioning.SUSPENDED:
        # The marker gets the "null" version id and so replaces that version: guard it too.
        null = next((v for v in versions if v.version_id == NULL_VERSION), None)
        if null is not None and null.protected(now):
            return _guarded(step, null, now)
    return _guarded(step, current, now)


def _removes_marker(rule: Rule, marker: ObjectVersion, now: datetime) -> bool:
    # With Days or Date, S3 also removes expired object delete markers once they are as old.
    if not _applies(rule, marker):
        return False
    return bool(rule.expired_object_delete_marker) or rule.due(marker.last_modified, now)


def _plan_uploads(
    bucket: Bucket, uploads: list[MultipartUpload], rules: list[Rule], now: datetime
) -> Iterator[Step]:
    for upload in uploads:
        for rule in rules:
            if (
                rule.abort_days is not None
                and rule.filter.matches(upload.key, upload.spec.tags, None)
                and aged(upload.initiated, now, rule.abort_days)
            ):
                yield Step(
                    Action.ABORT_UPLOAD,
                    bucket.name,
                    upload.key,
                    rule.id,
                    upload_id=upload.upload_id,
                )
                break


def _guarded(step: Step, version: ObjectVersion, now: datetime) -> Step:
    """Skipped, with the reason, when the version is protected."""
    if not version.protected(now):
        return step
    if version.legal_hold:
        reason = f"version {version.version_id} is under legal hold"
    else:
        until = version.retain_until.isoformat() if version.retain_until else ""
        mode = version.lock_mode.value if version.lock_mode else "retention"
        reason = f"version {version.version_id} is under {mode} retention until {until}Z"
    return replace(step, status=Status.SKIPPED, reason=reason)
