"""Authorisation, once per request before its handler runs: the operation's IAM action
(operations.ROUTES) on the bucket or object it names, decided by registry.access.decision.

A refused authenticated request is recorded in the log as an AccessDenied event; refused
anonymous requests are only counted (metrics), so nobody can flood the log unsigned.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from urllib.parse import parse_qsl

from s3facade.errors import S3Error
from s3facade.operations import Action, Operation
from s3facade.registry import Provenance, Registry
from s3facade.registry.access.decision import (
    OBJECT_ACL_ACTIONS,
    AccessCheck,
    Decision,
    ObjectAccess,
    decide,
)
from s3facade.registry.access.principals import User
from s3facade.registry.access.settings import BucketAccess
from s3facade.registry.errors import NoSuchBucket, RegistryError
from s3facade.request import parse_copy_source

log = logging.getLogger("s3facade")

BYPASS_GOVERNANCE = "s3:BypassGovernanceRetention"
# Operations any signed-in user may ask for: what they act on is their own (ListBuckets
# lists the caller's buckets; CreateBucket of a taken name is BucketAlreadyExists).
_OWN = frozenset({Action.LIST_BUCKETS, Action.CREATE_BUCKET})
_COPIES = frozenset({Action.COPY_OBJECT, Action.UPLOAD_PART_COPY})
# A write that asks for a lock in its headers also needs the right to set that lock, as on
# AWS: a grant to write must not let anyone make data undeletable until 2999.
_LOCKING_WRITES = frozenset({Action.PUT_OBJECT, Action.COPY_OBJECT, Action.CREATE_MULTIPART_UPLOAD})
_LOCK_HEADERS = (
    ("x-amz-object-lock-mode", "s3:PutObjectRetention"),
    ("x-amz-object-lock-retain-until-date", "s3:PutObjectRetention"),
    ("x-amz-object-lock-legal-hold", "s3:PutObjectLegalHold"),
)
_READS = frozenset({"s3:GetObject", "s3:GetObjectVersion"})
# Authorised by the handler, which learns from the body the keys (DeleteObjects: one check
# per key) or the signer and key (a POST form's signature and key fields).
_IN_HANDLER = frozenset({Action.DELETE_OBJECTS, Action.POST_OBJECT})


class RequestFacts(Mapping[str, Sequence[str]]):
    """The policy condition keys of one request (lower-case names), computed on demand: a
    policy names few of them, and some (existing object tags) cost a lookup."""

    def __init__(
        self,
        user: User | None,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        client_ip: str,
        secure: bool,
        signature_version: str | None,
        presigned: bool,
        now: datetime,
        existing_tags: Callable[[], Mapping[str, str] | None],
    ) -> None:
        self._user = user
        self._headers, self._query = headers, query
        self._client_ip, self._secure = client_ip, secure
        self._signature_version, self._presigned = signature_version, presigned
        self._now = now
        self._existing_tags = existing_tags
        self._form = False

    def of_form(
        self, signer: User | None, fields: Mapping[str, str], signature_version: str | None
    ) -> RequestFacts:
        """A browser POST's facts: the request is unsigned, its form is not, so the form's
        signer, its fields (as headers: x-amz-*, tagging) and s3:authtype POST decide, as
        AWS evaluates a POST."""
        facts = copy.copy(self)
        facts._user = signer
        facts._headers = {**self._headers, **{k.lower(): v for k, v in fields.items()}}
        facts._signature_version, facts._form = signature_version, True
        return facts

    @property
    def secure(self) -> bool:
        return self._secure

    def __getitem__(self, name: str) -> Sequence[str]:
        value = self._value(name.lower())
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(())  # computed on demand: there is no list of every key to walk

    def __len__(self) -> int:
        return 0

    def _value(self, name: str) -> Sequence[str] | None:
        user, headers, query = self._user, self._headers, self._query
        simple: dict[str, str | None] = {
            "aws:sourceip": self._client_ip or None,
            "aws:securetransport": "true" if self._secure else "false",
            "aws:currenttime": self._now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aws:epochtime": str(int(self._now.timestamp())),
            "aws:useragent": headers.get("user-agent"),
            "aws:referer": headers.get("referer"),
            "aws:username": user.name if user is not None else None,
            "aws:userid": user.access_key if user is not None else None,
            "aws:principaltype": "Account" if user is not None else "Anonymous",
            "s3:prefix": query.get("prefix"),
            "s3:delimiter": query.get("delimiter"),
            "s3:max-keys": query.get("max-keys"),
            "s3:versionid": query.get("versionId"),
            "s3:signatureversion": {"v4": "AWS4-HMAC-SHA256", "v2": "AWS"}.get(
                self._signature_version or ""
            ),
            "s3:authtype": (
                "POST"
                if self._form
                else None
                if self._signature_version is None
                else "REST-QUERY-STRING"
                if self._presigned
                else "REST-HEADER"
            ),
            "s3:object-lock-mode": headers.get("x-amz-object-lock-mode"),
            "s3:object-lock-retain-until-date": headers.get("x-amz-object-lock-retain-until-date"),
            "s3:object-lock-legal-hold": headers.get("x-amz-object-lock-legal-hold"),
            "s3:object-lock-remaining-retention-days": self._remaining_days(),
        }
        if name in simple:
            found = simple[name]
            return None if found is None else [found]
        if name.startswith("s3:x-amz-"):
            header = headers.get(name.removeprefix("s3:"))
            return None if header is None else [header]
        if name.startswith("s3:existingobjecttag/"):
            tags = self._existing_tags()
            wanted = name.split("/", 1)[1]
            found = next((v for k, v in (tags or {}).items() if k.lower() == wanted), None)
            return None if found is None else [found]
        if name.startswith("s3:requestobjecttag"):
            requested = dict(parse_qsl(headers.get("x-amz-tagging", ""), keep_blank_values=True))
            if name == "s3:requestobjecttagkeys":
                return list(requested) if requested else None
            wanted = name.split("/", 1)[1] if "/" in name else ""
            found = next((v for k, v in requested.items() if k.lower() == wanted), None)
            return None if found is None else [found]
        return None

    def _remaining_days(self) -> str | None:
        until = self._headers.get("x-amz-object-lock-retain-until-date")
        if until is None:
            return None
        try:
            moment = datetime.fromisoformat(until.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        return str(max(0, (moment - self._now).days))


class DenialBudget:
    """How many refusals of one principal are recorded in the log: a burst, then a steady
    rate. A signed user with no right to write must not be able to grow the log (and fill
    the disk) at request speed by asking for what it may not do; past the budget its
    refusals are counted, and the count goes into its next recorded refusal."""

    # Keys beyond which those whose budget has grown back whole are forgotten: keyed by
    # client address (the console's sign-ins), the table must not grow with every address.
    PRUNE_AT = 4096

    def __init__(
        self,
        burst: float = 100,
        per_second: float = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst, self._rate, self._clock = burst, per_second, clock
        self._tokens: dict[str, tuple[float, float]] = {}  # principal -> (tokens, at)

    def __len__(self) -> int:
        return len(self._tokens)

    def take(self, principal: str) -> bool:
        now = self._clock()
        if len(self._tokens) >= self.PRUNE_AT and principal not in self._tokens:
            self._forget_whole(now)
        tokens, at = self._tokens.get(principal, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens < 1:
            self._tokens[principal] = (tokens, now)
            return False
        self._tokens[principal] = (tokens - 1, now)
        return True

    def _forget_whole(self, now: float) -> None:
        """Forget the keys whose budget is whole again: they would start afresh anyway."""
        refill = self._burst / self._rate if self._rate > 0 else float("inf")
        self._tokens = {
            key: (tokens, at)
            for key, (tokens, at) in self._tokens.items()
            if tokens + (now - at) * self._rate < self._burst and now - at < refill
        }


class RequestAuthorizer:
    def __init__(
        self,
        registry: Registry,
        on_anonymous_denial: Callable[[], None],
        on_unrecorded_denial: Callable[[], None] = lambda: None,
        budget: DenialBudget | None = None,
    ) -> None:
        self._registry = registry
        self._on_anonymous_denial = on_anonymous_denial
        self._on_unrecorded_denial = on_unrecorded_denial
        self._budget = budget or DenialBudget()
        self._unrecorded: dict[str, int] = {}  # principal -> refusals since its last event

    def bucket_access(self, bucket: str) -> BucketAccess | None:
        try:
            return self._registry.bucket_access(bucket)
        except NoSuchBucket:
            return None

    async def authorize(
        self,
        operation: Operation,
        user: User | None,
        facts: RequestFacts,
        provenance: Provenance,
        headers: Mapping[str, str],
    ) -> None:
        """Raise AccessDenied unless `user` may do what `operation` asks."""
        if operation.permission is None or operation.action in _IN_HANDLER:
            return
        if operation.action in _OWN or operation.bucket is None:
            if user is None:
                self._on_anonymous_denial()
                raise S3Error("AccessDenied")
            return
        permission, bucket, key = operation.permission, operation.bucket, operation.key
        version = facts_version(facts)
        await self.require(user, permission, bucket, key, facts, provenance, version)
        if operation.action in _LOCKING_WRITES:
            asked = dict.fromkeys(right for name, right in _LOCK_HEADERS if name in headers)
            for right in asked:
                await self.require(user, right, bucket, key, facts, provenance)
        if operation.action in _COPIES:
            source_bucket, source_key, version = parse_copy_source(headers["x-amz-copy-source"])
            reading = "s3:GetObjectVersion" if version is not None else "s3:GetObject"
            await self.require(user, reading, source_bucket, source_key, facts, provenance, version)

    async def require(
        self,
        user: User | None,
        permission: str,
        bucket: str,
        key: str | None,
        facts: Mapping[str, Sequence[str]],
        provenance: Provenance,
        version_id: str | None = None,
    ) -> None:
        decision = self.decide(user, permission, bucket, key, facts, version_id)
        if decision is None or decision.allowed:
            return
        if decision.not_found is not None:
            raise decision.not_found  # answered here: the handler never runs ungranted
        await self._refuse(user, permission, bucket, key, decision.reason, provenance)

    def decide(
        self,
        user: User | None,
        permission: str,
        bucket: str,
        key: str | None,
        facts: Mapping[str, Sequence[str]],
        version_id: str | None = None,
    ) -> Decision | None:
        """None when the bucket does not exist: the handler answers NoSuchBucket. An
        object-level decision weighs the object's ACL: the current version's, or
        `version_id`'s."""
        access = self.bucket_access(bucket)
        if access is None:
            return None
        check = AccessCheck(user, permission, bucket, key, facts)
        decision = decide(check, access)
        if decision.allowed or key is None or permission not in OBJECT_ACL_ACTIONS:
            return decision
        try:
            version = self._registry.head_object(bucket, key, version_id)
        except RegistryError as missing:
            if permission in _READS and not decision.explicit:
                # No such object: with s3:ListBucket the caller learns so (404), as on AWS;
                # without it, 403, so nobody learns which keys exist.
                listing = decide(AccessCheck(user, "s3:ListBucket", bucket, None, facts), access)
                if listing.allowed:
                    return Decision(False, "no such object", not_found=missing)
            return decision
        target = ObjectAccess(self._registry.object_acl(version), version.owner)
        return decide(check, access, target)

    async def _refuse(
        self,
        user: User | None,
        permission: str,
        bucket: str,
        key: str | None,
        reason: str,
        provenance: Provenance,
    ) -> None:
        if user is None:
            self._on_anonymous_denial()
        elif not self._budget.take(user.access_key):
            self._unrecorded[user.access_key] = self._unrecorded.get(user.access_key, 0) + 1
            self._on_unrecorded_denial()
        else:
            suppressed = self._unrecorded.pop(user.access_key, 0)
            try:
                await self._registry.record_denial(
                    bucket, key, permission, reason, provenance, suppressed
                )
            except RegistryError as exc:  # a full disk must not turn a 403 into a 500
                log.warning("request %s: denial not recorded: %s", provenance.request_id, exc)
        raise S3Error("AccessDenied")


def facts_version(facts: Mapping[str, Sequence[str]]) -> str | None:
    found = facts.get("s3:versionid")
    return found[0] if found else None
