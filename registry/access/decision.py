"""The one decision every request passes through: may this user (or an anonymous caller)
do this IAM action on this bucket or object?

AWS's order, for a bucket's own account: an explicit Deny in the bucket policy wins; then
the bucket's owner (an account's root user) may do anything; then an Allow in the policy,
or a grant in the bucket's or object's ACL (unless the bucket enforces ownership); else the
implicit deny. https://docs.aws.amazon.com/AmazonS3/latest/userguide/how-s3-evaluates-access-control.html
Admins act as every bucket's owner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from s3facade.registry.access.acl import PUBLIC_GROUPS, AccessControlList, Grant, Permission
from s3facade.registry.access.policy import Effect, PolicyRequest
from s3facade.registry.access.principals import User
from s3facade.registry.access.settings import BucketAccess
from s3facade.registry.errors import RegistryError

# The root user of the bucket's account keeps these even when the policy denies them, so a
# policy that locks everyone out can still be replaced.
POLICY_ACTIONS = frozenset({"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"})

# What an ACL grant allows, by IAM action (AWS's "Mapping of ACL permissions and access
# policy permissions"). Multipart steps of a write count as the write.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/acl-overview.html#permissions
BUCKET_ACL_ACTIONS: Mapping[str, Permission] = {
    "s3:ListBucket": Permission.READ,
    "s3:ListBucketVersions": Permission.READ,
    "s3:ListBucketMultipartUploads": Permission.READ,
    "s3:PutObject": Permission.WRITE,
    "s3:DeleteObject": Permission.WRITE,
    "s3:AbortMultipartUpload": Permission.WRITE,
    "s3:ListMultipartUploadParts": Permission.WRITE,
    "s3:GetBucketAcl": Permission.READ_ACP,
    "s3:PutBucketAcl": Permission.WRITE_ACP,
}
OBJECT_ACL_ACTIONS: Mapping[str, Permission] = {
    "s3:GetObject": Permission.READ,
    "s3:GetObjectVersion": Permission.READ,
    "s3:GetObjectAttributes": Permission.READ,
    "s3:GetObjectVersionAttributes": Permission.READ,
    "s3:GetObjectAcl": Permission.READ_ACP,
    "s3:GetObjectVersionAcl": Permission.READ_ACP,
    "s3:PutObjectAcl": Permission.WRITE_ACP,
    "s3:PutObjectVersionAcl": Permission.WRITE_ACP,
}


@dataclass(frozen=True)
class AccessCheck:
    user: User | None  # None: anonymous
    action: str  # IAM action, e.g. s3:GetObject
    bucket: str
    key: str | None = None
    # Condition keys (lower-case) -> values; may compute lazily (object tags).
    context: Mapping[str, Sequence[str]] | None = None

    @property
    def resource(self) -> str:
        return f"arn:aws:s3:::{self.bucket}" + (f"/{self.key}" if self.key is not None else "")


@dataclass(frozen=True)
class ObjectAccess:
    """What an object-level decision also weighs: the version's ACL and who wrote it."""

    acl: AccessControlList
    owner: str  # the writer's access key id


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    explicit: bool = False  # refused by a Deny statement (no other grant can lift it)
    # Refused for want of the object, to a caller who may list the bucket: answered with this
    # error (NoSuchKey, NoSuchVersion: 404) instead of AccessDenied, as AWS answers.
    not_found: RegistryError | None = None


def decide(
    check: AccessCheck, bucket: BucketAccess, target: ObjectAccess | None = None
) -> Decision:
    user = check.user
    owner = user is not None and (user.admin or user.access_key == bucket.owner)
    granted_by_policy = False
    if bucket.policy is not None:
        context = check.context if check.context is not None else {}
        request = PolicyRequest(user, check.action, check.resource, context)
        effect = bucket.policy.evaluate(request)
        if effect is Effect.DENY and not (owner and check.action in POLICY_ACTIONS):
            return Decision(False, "explicitly denied by the bucket policy", explicit=True)
        # RestrictPublicBuckets: a public policy grants only within the owner's account.
        restricted = bucket.block.restrict_public_buckets and bucket.policy.is_public()
        granted_by_policy = effect is Effect.ALLOW and not restricted
    if owner:
        return Decision(True, "admin" if user is not None and user.admin else "bucket owner")
    if granted_by_policy:
        return Decision(True, "allowed by the bucket policy")
    if bucket.acls_enabled:
        user_id = user.canonical_id if user is not None else None
        ignore_public = bucket.block.ignore_public_acls
        wanted = BUCKET_ACL_ACTIONS.get(check.action)
        if wanted is not None and _grants(bucket.acl, user_id, wanted, ignore_public):
            return Decision(True, "granted by the bucket ACL")
        wanted = OBJECT_ACL_ACTIONS.get(check.action)
        if wanted is not None and target is not None:
            writer = user is not None and user.access_key == target.owner
            if writer and wanted in (Permission.READ_ACP, Permission.WRITE_ACP):
                return Decision(True, "object owner")  # an owner may always read/write its ACL
            if _grants(target.acl, user_id, wanted, ignore_public):
                return Decision(True, "granted by the object ACL")
    return Decision(False, "no bucket policy or ACL grants it")


def _grants(
    acl: AccessControlList, user_id: str | None, wanted: Permission, ignore_public: bool
) -> bool:
    if ignore_public:  # IgnorePublicAcls: grants to AllUsers / AuthenticatedUsers count for none
        kept: tuple[Grant, ...] = tuple(
            g for g in acl.grants if g.grantee.group not in PUBLIC_GROUPS
        )
        acl = AccessControlList(acl.owner, kept)
    return acl.allows(user_id, wanted)
