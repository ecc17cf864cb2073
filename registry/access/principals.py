"""Users: each is its own owner, like a separate AWS account, named in policies and ACLs by
ids derived from its access key id (stable across restarts and config edits)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass


@functools.lru_cache(maxsize=4096)  # listings name an owner per key
def canonical_user_id(access_key: str) -> str:
    """A stable 64-hex id per user, shaped like AWS's canonical user ids."""
    return hashlib.sha256(f"s3facade:{access_key}".encode()).hexdigest()


def account_id(access_key: str) -> str:
    """A stable 12-digit id per user, shaped like an AWS account id (each user is one)."""
    return str(int(canonical_user_id(access_key)[:15], 16) % 10**12).zfill(12)


@dataclass(frozen=True)
class User:
    access_key: str
    display_name: str = ""  # default: the access key id
    admin: bool = False
    bypass_governance: bool = False  # config flag: may bypass GOVERNANCE wherever it may write

    @property
    def name(self) -> str:
        return self.display_name or self.access_key

    @property
    def canonical_id(self) -> str:
        return canonical_user_id(self.access_key)

    @property
    def account_id(self) -> str:
        return account_id(self.access_key)

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{self.name}"

    @functools.cached_property
    def policy_names(self) -> frozenset[str]:
        """Every string a bucket policy's Principal may use to name this user."""
        account = self.account_id
        return frozenset(
            {
                self.access_key,
                self.canonical_id,
                account,
                self.arn,
                f"arn:aws:iam::{account}:root",
                f"arn:aws:iam::{account}:user/{self.access_key}",
                f"arn:aws:iam:::user/{self.access_key}",  # Ceph RGW's form, tenant omitted
                f"arn:aws:iam:::user/{self.name}",
            }
        )


class UserDirectory:
    """The configured users by access key id, and by canonical id (ACL grants name those)."""

    def __init__(self, users: list[User]) -> None:
        self._by_key = {user.access_key: user for user in users}
        self._by_id = {user.canonical_id: user for user in users}

    def __getitem__(self, access_key: str) -> User:
        return self._by_key[access_key]

    def get(self, access_key: str) -> User | None:
        return self._by_key.get(access_key)

    def by_canonical_id(self, canonical_id: str) -> User | None:
        return self._by_id.get(canonical_id)

    def display_name(self, access_key: str) -> str:
        """The name shown beside an owner's id; a user no longer configured keeps its key."""
        user = self._by_key.get(access_key)
        return user.name if user is not None else access_key
