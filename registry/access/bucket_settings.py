"""Recording and reading access settings: a bucket's policy, ACL, CORS rules, public access
block and object ownership, object ACLs, and refused requests. Part of the registry facade."""

from __future__ import annotations

from typing import Any

from s3facade.registry.access.acl import AccessControlList, Permission, private_acl
from s3facade.registry.access.policy import BucketPolicy
from s3facade.registry.access.principals import canonical_user_id
from s3facade.registry.access.settings import BucketAccess, BucketSetting, ObjectOwnership
from s3facade.registry.errors import RegistryError
from s3facade.registry.model import ObjectVersion, Provenance
from s3facade.registry.payloads import AccessDenied, BucketAccessSet, ObjectAclSet
from s3facade.registry.settings import VersionSettings


class PublicAccessBlocked(RegistryError):
    """The bucket's public access block refuses a public policy or ACL."""


class AclsDisabled(RegistryError):
    """The bucket enforces ownership (BucketOwnerEnforced): ACLs other than private are
    refused, as AWS refuses them."""


class AclInForce(RegistryError):
    """BucketOwnerEnforced asked for while the bucket's ACL grants others access."""


class AccessSettings(VersionSettings):
    def bucket_access(self, bucket: str) -> BucketAccess:
        state = self.bucket(bucket)
        return BucketAccess.from_record(bucket, state.owner, self.views.bucket_access(bucket))

    async def put_bucket_access(
        self, bucket: str, setting: BucketSetting, value: Any, provenance: Provenance
    ) -> None:
        """Replace one access setting (None: remove it). A policy is validated here
        (MalformedPolicy); a public one, or a public ACL, is refused while the bucket's
        public access block says so; ACLs need ownership that allows them."""
        access = self.bucket_access(bucket)
        block = access.block
        if setting is BucketSetting.POLICY and value is not None:
            policy = BucketPolicy.parse(value, bucket)
            if block.block_public_policy and policy.is_public():
                raise PublicAccessBlocked(bucket)
            value = policy.text
        if setting is BucketSetting.ACL and value is not None:
            self._check_acl(access, AccessControlList.from_dict(value))
        enforced = (
            setting is BucketSetting.OWNERSHIP and value == ObjectOwnership.BUCKET_OWNER_ENFORCED
        )
        if enforced and _non_private(access.acl, access.owner_id):
            raise AclInForce(bucket)
        record = BucketAccessSet(**provenance.as_dict(), setting=setting.value, value=value)
        await self._bucket_setting(bucket, record)

    def check_acl(self, bucket: str, acl: AccessControlList) -> None:
        """Whether `acl` may be set on the bucket or one of its objects (raises if not)."""
        self._check_acl(self.bucket_access(bucket), acl)

    @staticmethod
    def _check_acl(access: BucketAccess, acl: AccessControlList) -> None:
        if access.block.block_public_acls and acl.is_public():
            raise PublicAccessBlocked(access.bucket)
        if not access.acls_enabled and _non_private(acl, acl.owner, access.owner_id):
            raise AclsDisabled(access.bucket)

    def object_acl(self, version: ObjectVersion) -> AccessControlList:
        """The version's ACL: as set, or its writer's FULL_CONTROL."""
        recorded = self.views.object_acl(version.bucket, version.key, version.version_id)
        if recorded is not None:
            return AccessControlList.from_dict(recorded)
        return private_acl(canonical_user_id(version.owner))

    async def put_object_acl(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        acl: AccessControlList,
        provenance: Provenance,
    ) -> ObjectVersion:
        self.check_acl(bucket, acl)
        return await self._version_setting(
            bucket,
            key,
            version_id,
            lambda version: ObjectAclSet(
                **provenance.as_dict(), version_id=version, acl=acl.as_dict()
            ),
        )

    async def record_denial(
        self,
        bucket: str,
        key: str | None,
        action: str,
        reason: str,
        provenance: Provenance,
        suppressed: int = 0,
    ) -> None:
        """An authenticated request refused for lack of permission, as evidence; and how
        many of the principal's refusals before it went unrecorded."""
        resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")
        denied = AccessDenied(
            **provenance.as_dict(),
            action=action,
            resource=resource,
            reason=reason,
            suppressed=suppressed or None,
        )
        await self._log.append([denied.event(bucket, key)])


def _non_private(acl: AccessControlList, *owners: str) -> bool:
    """Whether `acl` grants anything but FULL_CONTROL to the given owners (the resource's,
    and the bucket's: bucket-owner-full-control is allowed where ACLs are off, as on AWS)."""
    return any(
        grant.permission is not Permission.FULL_CONTROL or grant.grantee.user_id not in owners
        for grant in acl.grants
    )
