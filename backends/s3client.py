"""A small asyncio S3 client: the dozen calls the upstream backend needs, nothing more.

httpx (async, HTTP/1.1 keep-alive pool) carries the bytes; `signing.Signer` signs them;
every call retries through `retry.RetryPolicy`. Errors leave here as backend errors:
retries spent -> BackendUnavailable, `QuotaExceeded` -> BackendFull, any other refusal
-> UpstreamError (status, code) for the caller to interpret (404 is often an answer).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

import httpx
from lxml import etree

from s3facade.backends.base import BackendError, BackendFull, BackendUnavailable
from s3facade.backends.retry import RetryPolicy, is_retryable
from s3facade.backends.signing import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    Signer,
    canonical_query,
    uri_encode,
)

__all__ = ["Endpoint", "ObjectHead", "S3Client", "UpstreamError"]

logger = logging.getLogger(__name__)
# httpx logs every request at INFO: one line per 8 MiB part would drown the server's own
# log. Failures and retries are logged here instead.
logging.getLogger("httpx").setLevel(logging.WARNING)

AddressingStyle = Literal["path", "virtual"]
_READ_BLOCK = 512 * 1024
_FULL_CODES = frozenset({"QuotaExceeded"})  # RGW's user/bucket quota: "no space left"
# Never fetch DTDs or expand entities from a peer's XML.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


class UpstreamError(BackendError):
    """The upstream refused a call with an answer that retrying will not change."""

    def __init__(self, what: str, status: int, code: str | None, message: str) -> None:
        super().__init__(f"{what}: upstream answered {status} {code or ''} {message}".strip())
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Endpoint:
    url: str  # scheme://host[:port]
    bucket: str
    region: str = "us-east-1"
    addressing_style: AddressingStyle = "path"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"upstream endpoint must be http(s)://host[:port], not {self.url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"upstream endpoint must not have a path or query: {self.url!r}")
        if self.addressing_style not in ("path", "virtual"):
            raise ValueError(f"addressing style must be path or virtual: {self.addressing_style}")
        if not self.bucket:
            raise ValueError("upstream bucket must not be empty")

    def locate(self, key: str | None) -> tuple[str, str, str]:
        """(scheme, host, encoded path) of the bucket (key None) or of one key."""
        parts = urlsplit(self.url)
        encoded_key = uri_encode(key, keep_slash=True) if key is not None else ""
        if self.addressing_style == "virtual":
            return parts.scheme, f"{self.bucket}.{parts.netloc}", "/" + encoded_key
        path = "/" + uri_encode(self.bucket)
        return parts.scheme, parts.netloc, path if key is None else f"{path}/{encoded_key}"

    def copy_source(self, key: str) -> str:
        return f"/{uri_encode(self.bucket)}/{uri_encode(key, keep_slash=True)}"


@dataclass(frozen=True)
class ObjectHead:
    size: int
    etag: str


async def _pieces(body: Sequence[bytes]) -> AsyncIterator[bytes]:
    for piece in body:
        yield piece


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _parse(body: bytes) -> etree._Element | None:
    if not body.strip():
        return None
    try:
        return etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return None


def _texts(root: etree._Element, name: str) -> list[str]:
    return [el.text or "" for el in root.iter() if _local(el.tag) == name]


def _text(root: etree._Element, name: str) -> str | None:
    found = _texts(root, name)
    return found[0] if found else None


def _error_of(body: bytes) -> tuple[str | None, str]:
    root = _parse(body)
    if root is None or _local(root.tag) != "Error":
        return None, ""
    return _text(root, "Code"), _text(root, "Message") or ""


def _when(text: str | None) -> datetime:
    return datetime.fromisoformat(text or "1970-01-01T00:00:00Z")


class S3Client:
    def __init__(
        self,
        endpoint: Endpoint,
        signer: Signer,
        *,
        retry: RetryPolicy,
        timeout: float = 30.0,
        verify: bool | str = True,
        max_connections: int = 64,
    ) -> None:
        self.endpoint = endpoint
        self._signer = signer
        self._retry = retry
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._verify: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        )
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> httpx.AsyncClient:
        # A pool's connections belong to one event loop (tests run several in turn).
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(
                timeout=self._timeout, verify=self._verify, limits=self._limits
            )
            self._loop = loop
        return self._http

    async def aclose(self) -> None:
        if self._http is not None and self._loop is asyncio.get_running_loop():
            await self._http.aclose()
        self._http = None

    # -- the one place requests are signed, sent and retried ---------------------------

    async def _send(
        self,
        what: str,
        method: str,
        key: str | None,
        *,
        params: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
        body: bytes | Sequence[bytes] = b"",
        payload_hash: str | None = None,
        stream: bool = False,
        error_in_body: bool = False,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        ok: Sequence[int] = (200, 204, 206),
    ) -> httpx.Response:
        """Send with retries; returns a success response (body read unless `stream`).

        `error_in_body`: CompleteMultipartUpload and CopyObject may answer 200 and put an
        <Error> in the body; such a body counts as that error.
        """
        scheme, host, path = self.endpoint.locate(key)
        query = canonical_query(params)
        url = f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
        if payload_hash is None:
            payload_hash = EMPTY_SHA256 if not body else UNSIGNED_PAYLOAD
        # A body in pieces (a part's blocks) is sent piece by piece: never joined, so a
        # part is held once, not twice.
        pieces = [body] if isinstance(body, bytes) else [piece for piece in body if piece]
        length = sum(len(piece) for piece in pieces)
        backoff = (retry or self._retry).start()
        while True:
            # Signed afresh per attempt: x-amz-date must stay within S3's 15-minute window.
            signed = self._signer.sign(
                method, path, query, {**(headers or {}), "host": host}, payload_hash
            )
            if len(pieces) > 1:
                signed["content-length"] = str(length)
            try:
                request = self._client().build_request(
                    method,
                    url,
                    headers=signed,
                    content=_pieces(pieces) if len(pieces) > 1 else b"".join(pieces),
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                )
                response = await self._client().send(request, stream=stream)
                succeeded = response.status_code in ok
                if not (stream and succeeded):
                    await response.aread()  # in the try: a body cut short is retried too
            except httpx.TransportError as exc:  # refused, reset, timed out, cut short
                failure = f"{type(exc).__name__}: {exc}"
            else:
                checked = error_in_body or not succeeded
                code, message = _error_of(response.content) if checked else (None, "")
                if succeeded and code is None:
                    return response
                status = 500 if succeeded else response.status_code
                if code in _FULL_CODES:
                    raise BackendFull(f"{what}: upstream answered {code}: {message}")
                if not is_retryable(status, code):
                    raise UpstreamError(what, status, code, message or response.reason_phrase)
                failure = f"{status} {code or ''} {message}".strip()
            delay = backoff.next_delay()
            if delay is None:
                raise BackendUnavailable(
                    f"{what}: {failure} (gave up after {backoff.attempts} attempt(s) "
                    f"in {backoff.elapsed:.1f}s)"
                )
            logger.info("%s: %s; retry %d in %.2fs", what, failure, backoff.attempts, delay)
            await asyncio.sleep(delay)

    # -- the calls ---------------------------------------------------------------------

    async def head_bucket(
        self, retry: RetryPolicy | None = None, timeout: float | None = None
    ) -> None:
        await self._send("HeadBucket", "HEAD", None, retry=retry, timeout=timeout)

    async def head_object(self, key: str) -> ObjectHead | None:
        try:
            response = await self._send(f"HeadObject {key}", "HEAD", key)
        except UpstreamError as exc:
            if exc.status == 404:
                return None
            raise
        headers = response.headers
        return ObjectHead(int(headers["content-length"]), str(headers.get("etag", "")))

    async def put_object(self, key: str, data: Sequence[bytes], sha256: str | None) -> None:
        await self._send(f"PutObject {key}", "PUT", key, body=data, payload_hash=sha256)

    async def delete_object(self, key: str) -> None:
        await self._send(f"DeleteObject {key}", "DELETE", key)

    async def copy_object(self, source: str, key: str) -> None:
        headers = {"x-amz-copy-source": self.endpoint.copy_source(source)}
        await self._send(f"CopyObject {key}", "PUT", key, headers=headers, error_in_body=True)

    async def create_multipart_upload(self, key: str) -> str:
        what = f"CreateMultipartUpload {key}"
        response = await self._send(what, "POST", key, params=[("uploads", "")])
        root = _parse(response.content)
        upload_id = _text(root, "UploadId") if root is not None else None
        if not upload_id:
            raise BackendError(f"{what}: no UploadId in the answer")
        return upload_id

    async def upload_part(
        self, key: str, upload_id: str, number: int, data: Sequence[bytes], sha256: str | None
    ) -> str:
        params = [("partNumber", str(number)), ("uploadId", upload_id)]
        response = await self._send(
            f"UploadPart {key} #{number}", "PUT", key, params=params, body=data, payload_hash=sha256
        )
        return str(response.headers.get("etag", ""))

    async def upload_part_copy(
        self, key: str, upload_id: str, number: int, source: str, first: int, last: int
    ) -> str:
        what = f"UploadPartCopy {key} #{number}"
        headers = {
            "x-amz-copy-source": self.endpoint.copy_source(source),
            "x-amz-copy-source-range": f"bytes={first}-{last}",
        }
        params = [("partNumber", str(number)), ("uploadId", upload_id)]
        response = await self._send(
            what, "PUT", key, params=params, headers=headers, error_in_body=True
        )
        root = _parse(response.content)
        etag = _text(root, "ETag") if root is not None else None
        if etag is None:
            raise BackendError(f"{what}: no ETag in the answer")
        return etag

    async def complete_multipart_upload(
        self, key: str, upload_id: str, etags: Sequence[str]
    ) -> None:
        # The answer's ETag is not used: RGW 16 sends it empty (see the module docs of
        # backends.upstream); the object itself is what we rely on.
        root = etree.Element("CompleteMultipartUpload")
        for number, etag in enumerate(etags, start=1):
            part = etree.SubElement(root, "Part")
            etree.SubElement(part, "PartNumber").text = str(number)
            etree.SubElement(part, "ETag").text = etag
        body = etree.tostring(root)
        await self._send(
            f"CompleteMultipartUpload {key}",
            "POST",
            key,
            params=[("uploadId", upload_id)],
            headers={"content-type": "application/xml"},
            body=body,
            payload_hash=hashlib.sha256(body).hexdigest(),
            error_in_body=True,
        )

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        try:
            await self._send(
                f"AbortMultipartUpload {key}", "DELETE", key, params=[("uploadId", upload_id)]
            )
        except UpstreamError as exc:
            if exc.status != 404:  # already gone: that is what we wanted
                raise

    async def get(self, key: str, first: int = 0, last: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [first, last] (None: to the end). A connection that breaks midway
        is resumed with a ranged GET from the first missing byte, within the retry budget,
        which starts over whenever bytes arrive."""
        what = f"GetObject {key}"
        offset = first
        backoff = self._retry.start()
        while True:
            ranged = offset > 0 or last is not None
            headers = {"range": f"bytes={offset}-{'' if last is None else last}"} if ranged else {}
            response = await self._send(what, "GET", key, headers=headers, stream=True)
            try:
                if response.status_code != (206 if ranged else 200):
                    raise BackendError(f"{what}: unexpected status {response.status_code}")
                gathered: list[bytes] = []  # coalesced: each block costs a trip down ASGI
                size = 0
                async for chunk in response.aiter_raw():
                    gathered.append(chunk)
                    size += len(chunk)
                    if size >= _READ_BLOCK:
                        block = b"".join(gathered)
                        gathered.clear()
                        size = 0
                        offset += len(block)  # only what was handed on counts as read
                        backoff.reset()  # progress: the retry budget starts over
                        yield block
                if gathered:
                    yield b"".join(gathered)
                return
            except httpx.TransportError as exc:
                delay = backoff.next_delay()
                if delay is None:
                    raise BackendUnavailable(f"{what}: {exc} at byte {offset}") from exc
                logger.info("%s: %s at byte %d; resuming in %.2fs", what, exc, offset, delay)
                await asyncio.sleep(delay)
            finally:
                await response.aclose()

    async def list_objects(self, prefix: str) -> AsyncIterator[tuple[str, datetime]]:
        """(key, last modified) of every object under `prefix` (ListObjectsV2 pages)."""
        token: str | None = None
        while True:
            params = [("list-type", "2"), ("prefix", prefix)]
            if token:
                params.append(("continuation-token", token))
            response = await self._send(f"ListObjectsV2 {prefix}", "GET", None, params=params)
            root = _parse(response.content)
            if root is None:
                return
            for item in (el for el in root if _local(el.tag) == "Contents"):
                yield _text(item, "Key") or "", _when(_text(item, "LastModified"))
            token = _text(root, "NextContinuationToken")
            if _text(root, "IsTruncated") != "true" or not token:
                return

    async def list_uploads(self, prefix: str) -> AsyncIterator[tuple[str, str, datetime]]:
        """(key, upload id, initiated) of every multipart upload in progress under `prefix`."""
        key_marker = id_marker = ""
        while True:
            params = [("uploads", ""), ("prefix", prefix)]
            if key_marker:
                params += [("key-marker", key_marker), ("upload-id-marker", id_marker)]
            what = f"ListMultipartUploads {prefix}"
            response = await self._send(what, "GET", None, params=params)
            root = _parse(response.content)
            if root is None:
                return
            for item in (el for el in root if _local(el.tag) == "Upload"):
                key, upload_id = _text(item, "Key") or "", _text(item, "UploadId") or ""
                yield key, upload_id, _when(_text(item, "Initiated"))
            key_marker = _text(root, "NextKeyMarker") or ""
            id_marker = _text(root, "NextUploadIdMarker") or ""
            if _text(root, "IsTruncated") != "true" or not key_marker:
                return
