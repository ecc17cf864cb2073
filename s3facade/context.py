"""What every handler may use: the registry and the server's settings."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from registry import Registry


@dataclass(frozen=True)
class ServerContext:
    registry: Registry
    region: str
    bypass_governance: frozenset[str] = frozenset()  # principals allowed to bypass

    def may_bypass(self, principal: str, header: str | None) -> bool:
        """x-amz-bypass-governance-retention: true, from a principal allowed to."""
        return (header or "").strip().lower() == "true" and principal in self.bypass_governance


@functools.lru_cache(maxsize=1024)  # listings name an owner per key
def canonical_user_id(principal: str) -> str:
    """A stable 64-hex owner id per principal, shaped like AWS's canonical user ids."""
    return hashlib.sha256(f"s3facade:{principal}".encode()).hexdigest()
