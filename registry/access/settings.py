"""A bucket's access settings as one value read per request: policy, ACL, CORS rules,
public access block and object ownership, parsed from what the log recorded."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from s3facade.registry.access.acl import AccessControlList, private_acl
from s3facade.registry.access.cors import CorsConfiguration
from s3facade.registry.access.policy import BucketPolicy
from s3facade.registry.access.principals import canonical_user_id


@functools.lru_cache(maxsize=1024)  # read on every request to the bucket; parsed once
def _parsed_policy(text: str, bucket: str) -> BucketPolicy:
    return BucketPolicy.parse(text, bucket)


class BucketSetting(StrEnum):
    """The names BucketAccessSet events record a setting under."""

    POLICY = "policy"  # the document's text
    ACL = "acl"  # AccessControlList.as_dict()
    CORS = "cors"  # CorsConfiguration.as_dict()
    PUBLIC_ACCESS_BLOCK = "public_access_block"  # PublicAccessBlock.as_dict()
    OWNERSHIP = "ownership"  # an ObjectOwnership value


class ObjectOwnership(StrEnum):
    """https://docs.aws.amazon.com/AmazonS3/latest/userguide/about-object-ownership.html"""

    OBJECT_WRITER = "ObjectWriter"
    BUCKET_OWNER_PREFERRED = "BucketOwnerPreferred"
    BUCKET_OWNER_ENFORCED = "BucketOwnerEnforced"  # ACLs disabled


@dataclass(frozen=True)
class PublicAccessBlock:
    """https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html"""

    block_public_acls: bool = False
    ignore_public_acls: bool = False
    block_public_policy: bool = False
    restrict_public_buckets: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {
            "block_public_acls": self.block_public_acls,
            "ignore_public_acls": self.ignore_public_acls,
            "block_public_policy": self.block_public_policy,
            "restrict_public_buckets": self.restrict_public_buckets,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PublicAccessBlock:
        return cls(**{name: bool(data.get(name, False)) for name in cls().as_dict()})


@dataclass(frozen=True)
class BucketAccess:
    bucket: str
    owner: str  # the owner's access key id
    policy: BucketPolicy | None = None
    acl_record: AccessControlList | None = None  # None: private to the owner
    cors: CorsConfiguration | None = None
    public_access_block: PublicAccessBlock | None = None
    ownership: ObjectOwnership | None = None  # None: never set (ObjectWriter's behaviour)

    @property
    def owner_id(self) -> str:
        return canonical_user_id(self.owner)

    @property
    def acl(self) -> AccessControlList:
        return self.acl_record if self.acl_record is not None else private_acl(self.owner_id)

    @property
    def acls_enabled(self) -> bool:
        return self.ownership is not ObjectOwnership.BUCKET_OWNER_ENFORCED

    @property
    def block(self) -> PublicAccessBlock:
        return self.public_access_block or PublicAccessBlock()

    @property
    def is_public(self) -> bool:
        """GetBucketPolicyStatus's IsPublic: the policy grants public access and
        RestrictPublicBuckets does not cut it off."""
        return (
            self.policy is not None
            and self.policy.is_public()
            and not self.block.restrict_public_buckets
        )

    @classmethod
    def from_record(cls, bucket: str, owner: str, record: Mapping[str, Any]) -> BucketAccess:
        policy = record.get(BucketSetting.POLICY)
        acl = record.get(BucketSetting.ACL)
        cors = record.get(BucketSetting.CORS)
        block = record.get(BucketSetting.PUBLIC_ACCESS_BLOCK)
        ownership = record.get(BucketSetting.OWNERSHIP)
        return cls(
            bucket=bucket,
            owner=owner,
            policy=_parsed_policy(policy, bucket) if policy is not None else None,
            acl_record=AccessControlList.from_dict(acl) if acl is not None else None,
            cors=CorsConfiguration.from_dict(cors) if cors is not None else None,
            public_access_block=PublicAccessBlock.from_dict(block) if block is not None else None,
            ownership=ObjectOwnership(ownership) if ownership is not None else None,
        )
