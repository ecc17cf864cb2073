"""Existing S3 objects as a source of bytes (`s3facade import`), and server-side copies of
them into an upstream CAS.

`S3Source` lists a bucket's current objects (ListObjectVersions, so each comes with its
version id; a bucket that never had versioning lists "null") and reads one of them pinned
to the listed version and ETag (`If-Match`): the bytes it yields are the bytes listed, or
the read fails with SourceChanged (changed or gone since). `ServerSideCopier` places such
an object under its digest in an UpstreamCAS on the same endpoint with CopyObject
(UploadPartCopy parts above 5 GiB), conditional on the listed ETag
(`x-amz-copy-source-if-match`), so the bytes never leave the store. The final key appears
only through that one atomic copy, as for every other write of the upstream CAS.

HTTP clients normalise `.` and `..` path segments away (httpx too), so an object whose key
has one cannot be addressed safely: `addressable` says so and the caller refuses it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from s3facade.backends.base import BackendError
from s3facade.backends.retry import RetryPolicy
from s3facade.backends.s3client import Endpoint, S3Client, UpstreamError, _local, _parse, _text
from s3facade.backends.signing import Signer
from s3facade.backends.upstream import UpstreamCAS

__all__ = ["S3Source", "ServerSideCopier", "SourceChanged", "SourceObject", "SourceRead"]

_BLOCK = 1 << 20
_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")


class SourceChanged(BackendError):
    """The source object is no longer what was listed: changed, or gone."""


@dataclass(frozen=True)
class SourceObject:
    """A current object of the source bucket, as listed."""

    key: str
    size: int
    etag: str  # unquoted
    last_modified: datetime  # aware, UTC
    version_id: str | None  # None: the bucket's "null" version (never versioned)


@dataclass(frozen=True)
class SourceRead:
    """What a GET of the source object said about it, and its bytes."""

    content_type: str
    headers: dict[str, str]  # the response's headers (lower-case names)
    metadata: dict[str, str]  # x-amz-meta-* without the prefix
    version_id: str | None
    body: AsyncIterator[bytes]


def addressable(key: str) -> bool:
    """False for keys an HTTP path cannot carry unchanged (a `.` or `..` segment)."""
    return not any(segment in (".", "..") for segment in key.split("/"))


def plain_md5(etag: str) -> bool:
    """An ETag that is the MD5 of the whole content (not of parts, not encrypted)."""
    return _PLAIN_MD5.match(etag) is not None


class S3Source(S3Client):
    """A client of one bucket, with the calls an import needs besides the backend's."""

    @classmethod
    def connect(
        cls,
        url: str,
        bucket: str,
        credentials: tuple[str, str],
        *,
        region: str = "us-east-1",
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
    ) -> S3Source:
        signer = Signer(credentials[0], credentials[1], region)
        return cls(
            Endpoint(url, bucket, region), signer, retry=retry or RetryPolicy(), verify=verify
        )

    async def objects(self, prefix: str = "") -> AsyncIterator[SourceObject]:
        """The current (latest, not deleted) objects under `prefix`, in key order."""
        key_marker = version_marker = ""
        while True:
            params = [("versions", ""), ("prefix", prefix), ("encoding-type", "url")]
            if key_marker:
                params += [("key-marker", key_marker), ("version-id-marker", version_marker)]
            response = await self._send(f"ListObjectVersions {prefix}", "GET", None, params=params)
            root = _parse(response.content)
            if root is None:
                raise BackendError(f"ListObjectVersions {prefix}: not an XML answer")
            encoded = _text(root, "EncodingType") == "url"

            def name(text: str | None, encoded: bool = encoded) -> str:
                return unquote(text or "") if encoded else (text or "")

            for item in (el for el in root if _local(el.tag) == "Version"):
                if _text(item, "IsLatest") != "true":
                    continue
                version = _text(item, "VersionId")
                yield SourceObject(
                    key=name(_text(item, "Key")),
                    size=int(_text(item, "Size") or 0),
                    etag=(_text(item, "ETag") or "").strip('"'),
                    last_modified=datetime.fromisoformat(_text(item, "LastModified") or ""),
                    version_id=None if version in (None, "", "null") else version,
                )
            if _text(root, "IsTruncated") != "true":
                return
            key_marker = name(_text(root, "NextKeyMarker"))
            version_marker = _text(root, "NextVersionIdMarker") or ""
            if not key_marker:
                return

    @asynccontextmanager
    async def read(self, obj: SourceObject) -> AsyncIterator[SourceRead]:
        """GET the listed version if it still has the listed ETag (SourceChanged if not)."""
        params = [("versionId", obj.version_id)] if obj.version_id else []
        headers = {"if-match": f'"{obj.etag}"'}
        try:
            response = await self._send(
                f"GetObject {obj.key}", "GET", obj.key, params=params, headers=headers, stream=True
            )
        except UpstreamError as exc:
            raise _changed(exc, obj) from exc
        try:
            got = response.headers
            metadata = {
                name.removeprefix("x-amz-meta-"): value
                for name, value in got.items()
                if name.startswith("x-amz-meta-")
            }

            async def body() -> AsyncIterator[bytes]:
                gathered: list[bytes] = []
                size = 0
                async for chunk in response.aiter_raw():  # raw: a gzip body stays gzip
                    gathered.append(chunk)
                    size += len(chunk)
                    if size >= _BLOCK:
                        yield b"".join(gathered)
                        gathered.clear()
                        size = 0
                if gathered:
                    yield b"".join(gathered)

            version = got.get("x-amz-version-id")
            yield SourceRead(
                content_type=got.get("content-type") or "binary/octet-stream",
                headers=dict(got),
                metadata=metadata,
                version_id=None if version in (None, "", "null") else version,
                body=body(),
            )
        finally:
            await response.aclose()

    async def copy_in(
        self, bucket: str, obj: SourceObject, key: str, *, single: int, part_size: int
    ) -> str:
        """Copy `obj` of `bucket` (same endpoint) to `key` of this client's bucket, if it still
        has its ETag: one CopyObject up to `single` bytes, else UploadPartCopy parts of
        `part_size`. Returns the
        new object's ETag as the store answered it (of parts, for a multipart copy)."""
        source = Endpoint(self.endpoint.url, bucket).copy_source(obj.key)
        if obj.version_id:
            source += f"?versionId={obj.version_id}"
        headers = {"x-amz-copy-source": source, "x-amz-copy-source-if-match": f'"{obj.etag}"'}
        try:
            if obj.size <= single:
                response = await self._send(
                    f"CopyObject {key}", "PUT", key, headers=headers, error_in_body=True
                )
                root = _parse(response.content)
                return ((_text(root, "ETag") if root is not None else None) or "").strip('"')
            return await self._copy_parts(key, headers, obj.size, part_size)
        except UpstreamError as exc:
            raise _changed(exc, obj) from exc

    async def _copy_parts(self, key: str, headers: dict[str, str], size: int, step: int) -> str:
        upload_id = await self.create_multipart_upload(key)
        ranges = [(first, min(first + step, size) - 1) for first in range(0, size, step)]
        limit = asyncio.Semaphore(4)

        async def part(number: int, first: int, last: int) -> str:
            ranged = {**headers, "x-amz-copy-source-range": f"bytes={first}-{last}"}
            params = [("partNumber", str(number)), ("uploadId", upload_id)]
            async with limit:
                response = await self._send(
                    f"UploadPartCopy {key} #{number}", "PUT", key,
                    params=params, headers=ranged, error_in_body=True,
                )  # fmt: skip
            root = _parse(response.content)
            etag = _text(root, "ETag") if root is not None else None
            if etag is None:
                raise BackendError(f"UploadPartCopy {key} #{number}: no ETag in the answer")
            return etag

        try:
            etags = await asyncio.gather(*(part(n, a, b) for n, (a, b) in enumerate(ranges, 1)))
            await self.complete_multipart_upload(key, upload_id, etags)
        except BaseException:
            await self.abort_multipart_upload(key, upload_id)
            raise
        return f"-{len(etags)}"  # a multipart ETag: says nothing of the content's MD5


def _changed(exc: UpstreamError, obj: SourceObject) -> BackendError:
    if exc.status == 412:
        return SourceChanged(
            f"{obj.key}: changed since it was listed (ETag is no longer {obj.etag})"
        )
    if exc.status == 404:
        return SourceChanged(f"{obj.key}: gone since it was listed")
    return exc


class ServerSideCopier:
    """Places source objects under their digest in an UpstreamCAS on the source's endpoint,
    signed with the backend's credentials (which must be allowed to read the source)."""

    def __init__(self, backend: UpstreamCAS) -> None:
        config = backend.config
        self.backend = backend
        self.client = S3Source(
            config.upstream,
            Signer(config.access_key_id, config.secret_access_key, config.region),
            retry=config.retry,
            timeout=config.timeout,
            verify=config.verify_tls,
        )

    def same_endpoint(self, url: str) -> bool:
        return _normal(url) == _normal(self.backend.config.endpoint)

    async def place(self, bucket: str, obj: SourceObject, digest: str, md5: str) -> bool:
        """Make `digest` hold the bytes of `obj` (hashed by the caller: `digest`, `md5`).
        False if it already did (nothing copied); True once copied. A copy that turns out
        to hold other bytes (an MD5 ETag that is not `md5`) is removed: SourceChanged."""
        key = self.backend.blob_key(digest)
        held = await self.client.head_object(key)
        if held is not None:
            if held.size != obj.size:
                raise BackendError(f"{key} holds {held.size} bytes, not {obj.size}")
            return False
        config = self.backend.config
        etag = await self.client.copy_in(
            bucket, obj, key, single=config.max_single_copy, part_size=config.copy_part_size
        )
        if plain_md5(etag) and etag != md5:
            await self.client.delete_object(key)
            raise SourceChanged(f"{obj.key}: changed while it was copied (MD5 {etag})")
        copied = await self.client.head_object(key)
        if copied is None or copied.size != obj.size:
            raise BackendError(f"{key}: the copy is not there with {obj.size} bytes")
        return True

    async def aclose(self) -> None:
        await self.client.aclose()


def _normal(url: str) -> str:
    return url.lower().rstrip("/")
