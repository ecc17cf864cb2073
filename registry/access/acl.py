"""S3 access control lists: who holds which permission on a bucket or object.

The model only; the XML and headers that carry ACLs are in s3facade.acl_xml. Grantees are
canonical user ids (registry.access.principals) or one of AWS's three predefined groups.
https://docs.aws.amazon.com/AmazonS3/latest/userguide/acl-overview.html
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from s3facade.registry.errors import RegistryError


class Permission(StrEnum):
    FULL_CONTROL = "FULL_CONTROL"
    READ = "READ"
    WRITE = "WRITE"
    READ_ACP = "READ_ACP"
    WRITE_ACP = "WRITE_ACP"


ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
GROUPS = frozenset({ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY})
PUBLIC_GROUPS = frozenset({ALL_USERS, AUTHENTICATED_USERS})  # Block Public Access's "public"

MAX_GRANTS = 100  # AWS: "an ACL can have up to 100 grants"

CANNED_ACLS: tuple[str, ...] = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
)


class InvalidCannedAcl(RegistryError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown canned ACL: {name!r}")
        self.name = name


@dataclass(frozen=True)
class Grantee:
    """Exactly one of a canonical user id or a group URI."""

    user_id: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        if (self.user_id is None) == (self.group is None):
            raise ValueError("a grantee is either a user or a group")
        if self.group is not None and self.group not in GROUPS:
            raise ValueError(f"unknown group: {self.group!r}")

    def matches(self, user_id: str | None) -> bool:
        """Whether a request by `user_id` (None: anonymous) is covered by this grantee."""
        if self.group == ALL_USERS:
            return True
        if self.group == AUTHENTICATED_USERS:
            return user_id is not None
        # LogDelivery is AWS's log writer; nothing here acts as it.
        return user_id is not None and self.user_id == user_id


@dataclass(frozen=True)
class Grant:
    grantee: Grantee
    permission: Permission


@dataclass(frozen=True)
class AccessControlList:
    owner: str  # the owner's canonical id
    grants: tuple[Grant, ...]

    def allows(self, user_id: str | None, permission: Permission) -> bool:
        """Whether some grant gives `user_id` (None: anonymous) `permission`. The owner gets
        nothing implicitly here: its standing rights (READ_ACP, WRITE_ACP) are the caller's."""
        return any(
            grant.permission in (permission, Permission.FULL_CONTROL)
            and grant.grantee.matches(user_id)
            for grant in self.grants
        )

    def is_public(self) -> bool:
        """Any grant to AllUsers or AuthenticatedUsers, as Block Public Access counts it."""
        return any(grant.grantee.group in PUBLIC_GROUPS for grant in self.grants)

    def as_dict(self) -> dict[str, Any]:
        """A plain JSON-able form for the event log."""
        return {"owner": self.owner, "grants": [_grant_dict(grant) for grant in self.grants]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AccessControlList:
        return cls(
            owner=str(d["owner"]),
            grants=tuple(
                Grant(
                    Grantee(user_id=g.get("user_id"), group=g.get("group")),
                    Permission(g["permission"]),
                )
                for g in d["grants"]
            ),
        )


def _grant_dict(grant: Grant) -> dict[str, str]:
    grantee = grant.grantee
    if grantee.user_id is not None:
        return {"user_id": grantee.user_id, "permission": grant.permission.value}
    assert grantee.group is not None  # Grantee holds exactly one
    return {"group": grantee.group, "permission": grant.permission.value}


def private_acl(owner: str) -> AccessControlList:
    return AccessControlList(owner, (Grant(Grantee(user_id=owner), Permission.FULL_CONTROL),))


def canned_acl(name: str, owner: str, bucket_owner: str | None = None) -> AccessControlList:
    """AWS's canned ACL `name` for a resource of `owner`; `bucket_owner` is the bucket's owner
    when the resource is an object (the bucket-owner-* ACLs name it).
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/acl-overview.html#canned-acl"""
    if name not in CANNED_ACLS:
        raise InvalidCannedAcl(name)
    extra = [Grant(Grantee(group=group), p) for group, p in _CANNED_GROUP_GRANTS.get(name, ())]
    # The bucket-owner-* ACLs add nothing on a bucket or an object in one's own bucket.
    if name in _BUCKET_OWNER_GRANT and bucket_owner is not None and bucket_owner != owner:
        extra.append(Grant(Grantee(user_id=bucket_owner), _BUCKET_OWNER_GRANT[name]))
    return AccessControlList(owner, (*private_acl(owner).grants, *extra))


# What each canned ACL adds to the owner's FULL_CONTROL. aws-exec-read's extra grant is to
# EC2, which does not read from here: it is private.
_CANNED_GROUP_GRANTS: Mapping[str, tuple[tuple[str, Permission], ...]] = {
    "public-read": ((ALL_USERS, Permission.READ),),
    "public-read-write": ((ALL_USERS, Permission.READ), (ALL_USERS, Permission.WRITE)),
    "authenticated-read": ((AUTHENTICATED_USERS, Permission.READ),),
    "log-delivery-write": ((LOG_DELIVERY, Permission.WRITE), (LOG_DELIVERY, Permission.READ_ACP)),
}
_BUCKET_OWNER_GRANT: Mapping[str, Permission] = {
    "bucket-owner-read": Permission.READ,
    "bucket-owner-full-control": Permission.FULL_CONTROL,
}
