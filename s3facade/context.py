"""What every handler may use: the registry, the server's settings, its users and the
authoriser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from s3facade.authorization import BYPASS_GOVERNANCE, RequestAuthorizer
from s3facade.registry import Registry
from s3facade.registry.access.principals import UserDirectory
from s3facade.request import S3Request

BYPASS_HEADER = "x-amz-bypass-governance-retention"


@dataclass(frozen=True)
class ServerContext:
    registry: Registry
    region: str
    users: UserDirectory
    access: RequestAuthorizer
    credentials: Mapping[str, str]  # access key id -> secret (POST forms carry signatures)

    def display_name(self, principal: str) -> str:
        return self.users.display_name(principal)

    def known_user(self, canonical_id: str) -> bool:
        """Whether an ACL grant may name this id."""
        return self.users.by_canonical_id(canonical_id) is not None

    def may_bypass(self, req: S3Request, key: str | None = None) -> bool:
        """x-amz-bypass-governance-retention: true, from a user holding
        s3:BypassGovernanceRetention on the object (its bucket's owner, an admin, a policy
        grant), or configured with bypass_governance (it may already write here)."""
        if req.headers.get(BYPASS_HEADER, "").strip().lower() != "true" or req.user is None:
            return False
        if req.user.bypass_governance:
            return True
        target = key if key is not None else req.operation.key
        decision = self.access.decide(
            req.user, BYPASS_GOVERNANCE, req.bucket, target, req.facts, req.query.get("versionId")
        )
        return decision is not None and decision.allowed
