"""The names S3 allows, enforced by the domain so every caller (HTTP or library) gets them:
AWS's general-purpose bucket naming rules and the object key limit.

The rules also keep the server's own paths apart: no bucket name starts with `-`, so the
operational endpoints under `/-/` can never be a bucket.
https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html
"""

from __future__ import annotations

import ipaddress
import re

from s3facade.registry.errors import InvalidBucketName, KeyTooLong

MAX_KEY_BYTES = 1024
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Prefixes and suffixes AWS reserves for its own features (access points, aliases).
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket_name(name: str) -> None:
    valid = (
        _BUCKET_NAME.match(name) is not None
        and ".." not in name
        and ".-" not in name
        and "-." not in name
        and not name.startswith(_RESERVED_PREFIXES)
        and not name.endswith(_RESERVED_SUFFIXES)
        and not _is_ip_address(name)
    )
    if not valid:
        raise InvalidBucketName(name)


def check_key(key: str) -> None:
    size = len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise KeyTooLong(size, MAX_KEY_BYTES)


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True
