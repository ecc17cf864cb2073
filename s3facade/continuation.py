"""Continuation tokens: opaque to clients, the position to resume after (a key, a bucket
name), so a page costs the same wherever it starts."""

from __future__ import annotations

import base64
import binascii

from s3facade.errors import S3Error

_TOKEN_PREFIX = b"s3facade:v1:"


def encode_token(position: str) -> str:
    return base64.urlsafe_b64encode(_TOKEN_PREFIX + position.encode()).decode("ascii")


def decode_token(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
        if not raw.startswith(_TOKEN_PREFIX):
            raise ValueError(token)
        return raw[len(_TOKEN_PREFIX) :].decode()
    except (ValueError, binascii.Error, UnicodeError):
        raise S3Error(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            extra={"ArgumentName": "continuation-token"},
        ) from None
