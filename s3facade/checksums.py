"""S3's flexible checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) and Content-MD5.

awscrt computes CRC32C and CRC64NVME at memory speed (botocore uses the same
library); zlib and hashlib do the rest. Every checksum is a `Hasher` (update) that
the storage backend feeds off the event loop while it writes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from awscrt import checksums as crt

from s3facade.errors import S3Error


class RunningChecksum(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc:
    """A running CRC with a hashlib-like face; `width` is the byte length of the result."""

    def __init__(self, step: Callable[[bytes, int], int], width: int) -> None:
        self._step = step
        self._width = width
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = self._step(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


def _crc32(data: bytes, previous: int) -> int:
    return zlib.crc32(data, previous)


def _crc32c(data: bytes, previous: int) -> int:
    return int(crt.crc32c(data, previous))


def _crc64nvme(data: bytes, previous: int) -> int:
    return int(crt.crc64nvme(data, previous))


class _Digest:
    """Adapts hashlib objects so every algorithm has update() and digest()."""

    def __init__(self, name: str) -> None:
        self._h = hashlib.new(name)

    def update(self, data: bytes, /) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()


@dataclass(frozen=True)
class ChecksumAlgorithm:
    name: (
        str  # as in x-amz-checksum-<name>, upper-case in S3's XML and x-amz-sdk-checksum-algorithm
    )
    digest_size: int
    new: Callable[[], RunningChecksum]

    @property
    def header(self) -> str:
        return f"x-amz-checksum-{self.name.lower()}"


ALGORITHMS: Mapping[str, ChecksumAlgorithm] = {
    a.name: a
    for a in (
        ChecksumAlgorithm("CRC32", 4, lambda: _Crc(_crc32, 4)),
        ChecksumAlgorithm("CRC32C", 4, lambda: _Crc(_crc32c, 4)),
        ChecksumAlgorithm("CRC64NVME", 8, lambda: _Crc(_crc64nvme, 8)),
        ChecksumAlgorithm("SHA1", 20, lambda: _Digest("sha1")),
        ChecksumAlgorithm("SHA256", 32, lambda: _Digest("sha256")),
    )
}

# AWS computes CRC64NVME for an object when the client sent no checksum.
DEFAULT_ALGORITHM = ALGORITHMS["CRC64NVME"]


def algorithm_named(name: str) -> ChecksumAlgorithm:
    try:
        return ALGORITHMS[name.upper()]
    except KeyError:
        raise S3Error(
            "InvalidRequest", f"Value for x-amz-checksum-algorithm header is invalid: {name}"
        ) from None


def decode_checksum(algorithm: ChecksumAlgorithm, value: str) -> bytes:
    """A client's base64 checksum, validated for shape (InvalidRequest like AWS)."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != algorithm.digest_size:
        raise S3Error("InvalidRequest", f"Value for {algorithm.header} header is invalid.")
    return raw


def decode_content_md5(value: str) -> bytes:
    """Content-MD5 header -> 16 raw bytes; malformed -> InvalidDigest."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise S3Error("InvalidDigest")
    return raw


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
