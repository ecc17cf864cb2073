"""One parsed S3 request: its operation, who signed it, and its payload as a stream.

The payload is read from ASGI `receive` lazily, so uvicorn answers
`Expect: 100-continue` only once a handler starts reading, and a request refused
before that (bad signature, missing bucket) never uploads its body.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote

from starlette.datastructures import Headers
from starlette.types import Receive

from s3facade.auth import AuthContext, PayloadMode
from s3facade.aws_chunked import AwsChunkedReader, is_aws_chunked
from s3facade.errors import S3Error
from s3facade.operations import Operation
from s3facade.registry import Provenance
from s3facade.registry.access.principals import User

if TYPE_CHECKING:  # authorization imports this module's parsers
    from s3facade.authorization import RequestFacts

MAX_OBJECT_SIZE = 5 * 1024**3  # a single PUT; larger objects need multipart

_TRAILER_MODES = frozenset(
    {PayloadMode.STREAMING_SIGNED_TRAILER, PayloadMode.STREAMING_UNSIGNED_TRAILER}
)


@dataclass
class RequestBody:
    receive: Receive
    headers: Headers
    _auth: AuthContext | None = None
    trailers: dict[str, str] = field(default_factory=dict)
    finished: bool = False  # the whole body has been received
    received: int = 0  # bytes of the body received so far (framing included)
    _reader: AwsChunkedReader | None = None

    def authenticated(self, auth: AuthContext) -> RequestBody:
        self._auth = auth
        return self

    @property
    def auth(self) -> AuthContext:
        assert self._auth is not None, "the body is read only after authentication"
        return self._auth

    @property
    def expected(self) -> bool:
        """Whether the client sends (or will send) a body."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return True
        return self.headers.get("content-length", "0") not in ("", "0")

    async def settle(self) -> bool:
        """Before answering a request whose body was not read: drain a small remainder so
        the connection can be reused; False if the connection must be closed instead."""
        if self.finished or not self.expected:
            return True
        if "100-continue" in self.headers.get("expect", "").lower():
            return False  # the client may still be waiting to send it
        length = self.headers.get("content-length", "")
        if not length.isdigit() or int(length) > 256 * 1024:
            return False
        try:
            async for _ in self._raw():
                pass
        except S3Error:
            return False
        return True

    @property
    def aws_chunked(self) -> bool:
        return is_aws_chunked(self.headers)

    @property
    def declared_length(self) -> int | None:
        """The payload size the client announced, framing excluded (None: unknown)."""
        name = "x-amz-decoded-content-length" if self.aws_chunked else "content-length"
        value = self.headers.get(name)
        if value is None:
            return None
        if not value.isdigit():
            raise S3Error("InvalidArgument", f"Invalid {name}: {value}")
        return int(value)

    def require_length(self) -> int | None:
        """Uploads need a declared size unless the transfer itself is chunked (rule 16)."""
        length = self.declared_length
        chunked_transfer = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if length is None and not chunked_transfer and "content-length" not in self.headers:
            raise S3Error("MissingContentLength")
        if length is not None and length > MAX_OBJECT_SIZE:
            raise S3Error("EntityTooLarge")
        return length

    async def _raw(self) -> AsyncIterator[bytes]:
        received = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise S3Error("IncompleteBody")
            chunk: bytes = message.get("body", b"")
            # Known before the last piece is handed on: a consumer that stops there (an
            # aws-chunked error) must not make settle() wait for more.
            last = not message.get("more_body", False)
            if last:
                self.finished = True
            if chunk:
                received += len(chunk)
                self.received = received
                # Only the chunked-transfer case can exceed a declared size; stop it early.
                if received > MAX_OBJECT_SIZE + (1 << 20) * 64:
                    raise S3Error("EntityTooLarge")
                yield chunk
            if last:
                return

    def stream(self) -> AsyncIterator[bytes]:
        """The decoded payload; aws-chunked framing is removed and its signatures checked."""
        if not self.aws_chunked:
            return self._raw()
        self._reader = AwsChunkedReader(
            self._raw(),
            signer=self.auth.chunk_signer,
            decoded_length=self.declared_length,
            expect_trailer=self.auth.payload in _TRAILER_MODES,
        )
        return self._collect_trailers(self._reader)

    async def _collect_trailers(self, reader: AwsChunkedReader) -> AsyncIterator[bytes]:
        async for chunk in reader:
            yield chunk
        self.trailers.update(reader.trailers)

    async def read(self, limit: int) -> bytes:
        """A small payload (an XML document) whole, with its payload hash checked."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.stream():
            size += len(chunk)
            if size > limit:
                raise S3Error("MalformedXML", "The XML you provided was too large.")
            parts.append(chunk)
        body = b"".join(parts)
        check_payload_hash(self.auth, hashlib.sha256(body).hexdigest())
        return body


def check_payload_hash(auth: AuthContext, sha256_hex: str) -> None:
    if auth.payload is PayloadMode.SIGNED and auth.expected_sha256 != sha256_hex:
        raise S3Error(
            "XAmzContentSHA256Mismatch",
            extra={
                "ClientComputedContentSHA256": auth.expected_sha256 or "",
                "S3ComputedContentSHA256": sha256_hex,
            },
        )


@dataclass
class S3Request:
    operation: Operation
    request_id: str
    method: str
    headers: Headers
    query: Mapping[str, str]
    auth: AuthContext
    provenance: Provenance
    body: RequestBody
    user: User | None  # None: anonymous
    facts: RequestFacts  # the policy condition keys
    # What the access log shows of the request (principal, operation, bucket, key); a
    # handler that learns more (a POST form's signer) says so here.
    trace: dict[str, str] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        assert self.operation.bucket is not None
        return self.operation.bucket

    @property
    def key(self) -> str:
        assert self.operation.key is not None
        return self.operation.key


def int_param(
    req: S3Request, name: str, default: int, maximum: int, *, minimum: int = 0, header: bool = False
) -> int:
    """An integer query parameter (max-keys, max-parts, max-buckets...), or with `header` a
    header (x-amz-max-parts): below `minimum` or not a number is InvalidArgument, above
    `maximum` is capped, as AWS does."""
    text = (req.headers if header else req.query).get(name, str(default))
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise S3Error(
            "InvalidArgument",
            f"Provided {name} not an integer or within integer range",
            extra={"ArgumentName": name, "ArgumentValue": text},
        )
    return min(value, maximum)


def parse_copy_source(raw: str) -> tuple[str, str, str | None]:
    """`x-amz-copy-source` ("bucket/key" or "/bucket/key", URL-encoded, optionally
    "?versionId=...") as bucket, key and version id."""
    path, _, query = raw.partition("?")
    bucket, slash, key = unquote(path.lstrip("/")).partition("/")
    if not bucket or not slash or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            extra={"ArgumentName": "x-amz-copy-source"},
        )
    version_id = query.removeprefix("versionId=") if query.startswith("versionId=") else None
    if version_id is not None and not version_id:
        raise S3Error(
            "InvalidArgument",
            "Invalid version id specified",
            extra={"ArgumentName": "x-amz-copy-source"},
        )
    return bucket, key, version_id
