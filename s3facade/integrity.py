"""What an upload claims about its bytes, and the check that it holds.

A client may declare Content-MD5, one `x-amz-checksum-<alg>` header or trailer, and
(signed payloads) the body's SHA-256. All are computed while the backend writes the
staged blob and compared before it is committed, so a mismatch stores nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from s3facade.backends import BlobReceipt, Hasher
from s3facade.checksums import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    ChecksumAlgorithm,
    RunningChecksum,
    algorithm_named,
    b64,
    decode_checksum,
    decode_content_md5,
)
from s3facade.errors import S3Error
from s3facade.request import RequestBody, check_payload_hash


@dataclass
class UploadIntegrity:
    body: RequestBody
    content_md5: bytes | None
    algorithm: ChecksumAlgorithm
    expected: bytes | None  # from a header; None when it comes in a trailer or not at all
    trailer: str | None  # the trailer that will carry the checksum
    hasher: RunningChecksum

    @classmethod
    def of(
        cls, body: RequestBody, default: ChecksumAlgorithm = DEFAULT_ALGORITHM
    ) -> UploadIntegrity:
        """`default`: the algorithm computed when the client declares none."""
        headers = body.headers
        md5_header = headers.get("content-md5")
        content_md5 = decode_content_md5(md5_header) if md5_header is not None else None
        declared = [a for a in ALGORITHMS.values() if a.header in headers]
        if len(declared) > 1:
            raise S3Error(
                "InvalidRequest",
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not "
                "allowed.",
            )
        trailer = headers.get("x-amz-trailer", "").strip().lower() or None
        sdk_name = headers.get("x-amz-sdk-checksum-algorithm")
        if declared:
            algorithm = declared[0]
            expected: bytes | None = decode_checksum(algorithm, headers[algorithm.header])
            trailer = None
        elif trailer is not None:
            if not trailer.startswith("x-amz-checksum-"):
                raise S3Error("InvalidRequest", f"Unsupported trailer: {trailer}")
            algorithm = algorithm_named(trailer.removeprefix("x-amz-checksum-"))
            expected = None
        elif sdk_name:
            # The algorithm is named but no value was sent: compute and record it.
            algorithm = algorithm_named(sdk_name)
            expected = None
        else:
            algorithm, expected = default, None
        if sdk_name and algorithm_named(sdk_name) is not algorithm:
            raise S3Error(
                "InvalidRequest",
                "Value for x-amz-sdk-checksum-algorithm header is invalid.",
            )
        return cls(body, content_md5, algorithm, expected, trailer, algorithm.new())

    @property
    def hashers(self) -> list[Hasher]:
        return [self.hasher]

    def check(self, receipt: BlobReceipt, md5: bytes) -> Mapping[str, str]:
        """Raise the S3 error AWS would send if anything declared does not hold; else
        return the checksum to record for the object."""
        declared_length = self.body.declared_length
        if declared_length is not None and receipt.size != declared_length:
            raise S3Error("IncompleteBody")
        if self.content_md5 is not None and not hmac.compare_digest(self.content_md5, md5):
            raise S3Error(
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
                extra={
                    "ExpectedDigest": self.content_md5.hex(),
                    "CalculatedDigest": b64(md5),
                },
            )
        check_payload_hash(self.body.auth, receipt.sha256)
        computed = self.hasher.digest()
        expected = self.expected
        if self.trailer is not None:
            value = self.body.trailers.get(self.trailer)
            if value is None:
                raise S3Error("InvalidRequest", f"Missing trailer checksum: {self.trailer}")
            expected = decode_checksum(self.algorithm, value)
        if expected is not None and not hmac.compare_digest(expected, computed):
            raise S3Error(
                "BadDigest",
                f"The {self.algorithm.name} you specified did not match the calculated checksum.",
            )
        return {self.algorithm.name: b64(computed)}

    def verify_bytes(self, body: bytes) -> None:
        """check() for a payload read whole (small XML documents)."""
        self.hasher.update(body)
        receipt = BlobReceipt(len(body), hashlib.sha256(body).hexdigest())
        self.check(receipt, hashlib.md5(body).digest())


async def require_integrity(req_body: RequestBody, limit: int = 2 * 1024 * 1024) -> bytes:
    """A small payload of an operation that requires integrity (DeleteObjects, versioning,
    Object Lock, retention, legal hold, lifecycle, tagging): Content-MD5 or an
    x-amz-checksum-* header (rule 7), checked."""
    integrity = UploadIntegrity.of(req_body)
    if integrity.content_md5 is None and integrity.expected is None and integrity.trailer is None:
        raise S3Error("InvalidRequest", "Missing required header for this request: Content-MD5")
    body = await req_body.read(limit)
    integrity.verify_bytes(body)
    return body
