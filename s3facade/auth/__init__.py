"""Request authentication: SigV4 and SigV2 (header and query), payload classification and
the request view they share. `sigv4` and `sigv2` import only `common`, never each other."""

from s3facade.auth.authenticator import Authenticator
from s3facade.auth.common import (
    AuthContext,
    ChunkSigner,
    PayloadMode,
    RequestView,
    signing_key,
)

__all__ = [
    "AuthContext",
    "Authenticator",
    "ChunkSigner",
    "PayloadMode",
    "RequestView",
    "signing_key",
]
