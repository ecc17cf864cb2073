"""Streaming decoder for `aws-chunked` request bodies (COMPATIBILITY rules 1-3).

Wire format (signed modes carry `;chunk-signature=<64 hex>`, unsigned ones do not):

    <hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n   ... repeated
    0[;chunk-signature=<sig>]\\r\\n
    [name:value\\r\\n ...]                  trailers (checksum, x-amz-trailer-signature)
    \\r\\n

Data is yielded as it arrives and never buffered whole; a chunk's signature is checked
when the chunk ends. The caller must commit only after iteration finished without error.

Errors: a body that stops early, or whose decoded size differs from
x-amz-decoded-content-length -> IncompleteBody ("The request body terminated
unexpectedly", AWS's wording). Framing that is present but not aws-chunked (bad hex,
missing CRLF, over-long line, bad trailer line) -> InvalidRequest, since the bytes did
arrive and are simply wrong. Wrong or missing chunk/trailer signature ->
SignatureDoesNotMatch.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Mapping

from s3facade.auth import ChunkSigner
from s3facade.errors import S3Error

MAX_LINE = 4096  # a chunk header or trailer line; real ones are < 100 bytes
MAX_TRAILERS = 64
TRAILER_SIGNATURE = "x-amz-trailer-signature"

_HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
_HEX64 = re.compile(rb"[0-9a-f]{64}")


def is_aws_chunked(headers: Mapping[str, str]) -> bool:
    """Rule 1: any one of the three signals some SDKs send on their own."""
    if headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
        return True
    encodings = headers.get("content-encoding", "")
    if any(token.strip().lower() == "aws-chunked" for token in encodings.split(",")):
        return True
    return "x-amz-decoded-content-length" in headers


def _incomplete(detail: str = "The request body terminated unexpectedly") -> S3Error:
    return S3Error("IncompleteBody", detail)


def _invalid(detail: str) -> S3Error:
    return S3Error("InvalidRequest", f"Invalid aws-chunked body: {detail}")


def _mismatch(detail: str) -> S3Error:
    return S3Error("SignatureDoesNotMatch", detail)


class _Buffer:
    """Pulls pieces from the source; holds at most one piece plus a partial line."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._data = b""
        self._pos = 0
        self._eof = False

    async def _fill(self) -> bool:
        while not self._eof:
            try:
                piece = await self._source.__anext__()
            except StopAsyncIteration:
                self._eof = True
                break
            if piece:
                rest = self._data[self._pos :]
                self._data = rest + bytes(piece) if rest else bytes(piece)
                self._pos = 0
                return True
        return False

    async def read_line(self) -> bytes | None:
        """The next line without its line end; None at a clean end of stream."""
        while True:
            end = self._data.find(b"\n", self._pos, self._pos + MAX_LINE + 2)
            if end >= 0:
                line = self._data[self._pos : end]
                self._pos = end + 1
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._data) - self._pos > MAX_LINE:
                raise _invalid("chunk header or trailer line too long")
            if not await self._fill():
                if self._pos >= len(self._data):
                    return None
                raise _incomplete()

    async def read_some(self, limit: int) -> bytes:
        """Up to `limit` bytes (at least one); IncompleteBody at end of stream."""
        if self._pos >= len(self._data) and not await self._fill():
            raise _incomplete()
        if self._pos == 0 and len(self._data) <= limit:
            piece, self._data = self._data, b""  # hand the piece over without copying
            return piece
        end = min(len(self._data), self._pos + limit)
        piece = self._data[self._pos : end]
        self._pos = end
        return piece

    async def at_eof(self) -> bool:
        return self._pos >= len(self._data) and not await self._fill()


class AwsChunkedReader:
    """Decodes an aws-chunked body; iterate once, then read `trailers`."""

    def __init__(
        self,
        source: AsyncIterator[bytes],
        *,
        signer: ChunkSigner | None,
        decoded_length: int | None,
        expect_trailer: bool,
    ) -> None:
        self._source = source
        self._signer = signer
        self._decoded_length = decoded_length
        self._expect_trailer = expect_trailer
        self._started = False
        self.trailers: dict[str, str] = {}

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError("an AwsChunkedReader can be iterated only once")
        self._started = True
        return self._decode()

    async def _decode(self) -> AsyncIterator[bytes]:
        buf = _Buffer(self._source)
        signer = self._signer
        previous = signer.seed_signature if signer else ""
        total = 0
        while True:
            line = await buf.read_line()
            if line is None:
                raise _incomplete()
            size, signature = self._parse_header(line)
            if self._decoded_length is not None and total + size > self._decoded_length:
                raise _incomplete("The decoded body is longer than x-amz-decoded-content-length")
            digest = hashlib.sha256() if signer else None
            remaining = size
            while remaining:
                piece = await buf.read_some(remaining)
                remaining -= len(piece)
                if digest is not None:
                    digest.update(piece)
                yield piece
            total += size
            if signer is not None and digest is not None:
                expected = signer.chunk_signature(previous, digest.hexdigest())
                if not hmac.compare_digest(expected.encode(), signature):
                    raise _mismatch("The chunk signature does not match.")
                previous = expected
            if size == 0:
                break
            crlf = await buf.read_some(2)
            if len(crlf) < 2:
                crlf += await buf.read_some(1)
            if crlf != b"\r\n":
                raise _invalid("chunk data is not followed by CRLF")
        if self._decoded_length is not None and total != self._decoded_length:
            raise _incomplete()
        trailers = await self._read_trailers(buf, previous)
        while not await buf.at_eof():  # drain; only stray line ends may follow
            if (await buf.read_some(MAX_LINE)).strip(b"\r\n"):
                raise _invalid("data after the end of the aws-chunked body")
        self.trailers = trailers

    def _parse_header(self, line: bytes) -> tuple[int, bytes]:
        size_text, _, extensions = line.partition(b";")
        size_text = size_text.strip()
        if not _HEX_SIZE.fullmatch(size_text):
            raise _invalid(f"bad chunk size {size_text[:32]!r}")
        signature = b""
        for extension in extensions.split(b";") if extensions else ():
            name, _, value = extension.partition(b"=")
            if name.strip() == b"chunk-signature":
                signature = value.strip()
        if self._signer is not None and not _HEX64.fullmatch(signature):
            raise _mismatch("A chunk is missing a valid chunk-signature.")
        return int(size_text, 16), signature

    async def _read_trailers(self, buf: _Buffer, previous: str) -> dict[str, str]:
        signed = self._signer is not None and self._expect_trailer
        lines: list[tuple[str, str]] = []
        signature: str | None = None
        while True:
            line = await buf.read_line()
            if line is None:
                # Tolerated only right after a final chunk that announces no trailers.
                if lines or signature is not None or self._expect_trailer:
                    raise _incomplete()
                break
            if not line:
                # Some encoders put a blank line between the 0-chunk and the trailers.
                wanted = not lines and signature is None and self._expect_trailer
                if wanted and not await buf.at_eof():
                    continue
                break
            if len(lines) >= MAX_TRAILERS:
                raise _invalid("too many trailers")
            name, sep, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if not sep or not name:
                raise _invalid("malformed trailer line")
            if name == TRAILER_SIGNATURE:
                signature = value.strip()
            else:
                lines.append((name, value.strip()))
        if self._signer is not None and not self._expect_trailer and (lines or signature):
            raise _invalid("trailers are not allowed with STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        if self._expect_trailer and not lines:
            raise _invalid("the trailer announced by x-amz-trailer is missing")
        if signed:
            self._check_trailer_signature(lines, signature, previous)
        return dict(lines)

    def _check_trailer_signature(
        self, lines: list[tuple[str, str]], signature: str | None, previous: str
    ) -> None:
        assert self._signer is not None
        if signature is None:
            raise _mismatch("The trailer is missing x-amz-trailer-signature.")
        wanted = signature.lower().encode("utf-8", "replace")
        # Canonical trailer text is "name:value\n" per trailer; accept wire order or sorted.
        for order in (lines, sorted(lines)):
            text = "".join(f"{n}:{v}\n" for n, v in order).encode("latin-1")
            expected = self._signer.trailer_signature(previous, text)
            if hmac.compare_digest(expected.encode(), wanted):
                return
        raise _mismatch("The trailer signature does not match.")
