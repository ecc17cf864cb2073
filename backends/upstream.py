"""UpstreamCAS: content-addressed blobs in an upstream S3-compatible bucket (Ceph RGW, S3).

Layout in the upstream bucket (``prefix`` is optional, e.g. ``s3facade/``)::

    <prefix>sha256/<hex[0:2]>/<hex[2:4]>/<hex>   committed blobs, named by their SHA-256
    <prefix>staging/<time>-<random>             staging objects and multipart uploads

Identical content has one key, so it is stored once across every bucket placed here.

How a write's digest becomes known, and what it costs. The SHA-256 of a stream is known
only after its last byte, but an S3 key must be chosen before the first. So:

* A blob of at most one part (``part_size``, 8 MiB by default) is held in memory while
  it arrives. Its digest is then known before any byte goes up, and commit() PUTs it
  straight to its final key (after a HEAD: if the key exists, nothing is sent). Cost: one
  HEAD plus one PUT, and the part in memory between stage() and commit().
* A larger blob streams up as a multipart upload to a fresh staging key, ``part_size``
  parts, ``upload_concurrency`` of them in flight, so its bytes land while they arrive.
  commit() then HEADs the final key and, if absent, copies the staging object onto it
  server-side (CopyObject up to 5 GiB, parallel UploadPartCopy above) and deletes the
  staging key. Cost: the upstream writes the bytes twice (RGW copies within one pool
  cheaply by reference-counting the tail objects; AWS bills it as a COPY request) and
  three extra requests; no byte crosses the network twice. A duplicate costs only the
  upload and a DELETE.

Crash safety. A final key only ever appears through one atomic upstream operation (PUT,
CopyObject or CompleteMultipartUpload) whose source bytes we hashed ourselves, and each
returns only once the upstream acknowledged it. So a final key holds its digest's bytes
or does not exist; a crash leaves at most a staging object or an incomplete multipart
upload, which nobody reads and `sweep()` removes once older than ``staging_max_age``
(run once, in the background, after the first stage() of a process). The registry
records an event only after commit() returned, so nothing half-written is ever visible.

Client library: httpx with our own SigV4 signing (`backends.s3client`, `backends.signing`).
Why not boto3 in a thread pool: a streaming GET would hop to a thread per read and hold a
thread per in-flight request, and botocore's retries are counted, not bounded in time.
Why not awscrt's S3 client: its callbacks run on native threads with their own memory
pool and retry policy, which makes bounded memory and "give up after N seconds" hard to
state. httpx is async on our event loop, streams both ways, pools connections, and we
need a dozen S3 calls. Every call retries on connection errors, 5xx, SlowDown and
RequestTimeout, with exponential backoff and full jitter, bounded by a deadline
(`backends.retry`); then BackendUnavailable (a writing client gets 503, and may retry).
The write path (stage() into parts, the staged blobs) is in `backends.upstream_staging`.

Memory per stage() in flight: at most (upload_concurrency + 1) parts plus one 1 MiB
block, whatever the blob's size. Parts double in size every 1000 parts (8 MiB parts cover
the first 8 GiB), so a 5 TiB stream still fits S3's 10000-part limit.

Upstream quirks this tolerates (each handled the same way for every store):
* RGW 16's CompleteMultipartUpload answers with an empty ``<ETag>``: we never use it.
* CompleteMultipartUpload and CopyObject may answer 200 with an ``<Error>`` body: it is
  treated as that error (and retried if it is InternalError).
* A retried CompleteMultipartUpload whose first attempt succeeded gets NoSuchUpload: we
  HEAD the key and accept it if the object is there with the expected size.
* Flexible checksums are ignored by RGW 16, so integrity rests on SigV4 payload signing:
  single PUTs are signed with the digest we computed anyway. Parts cost one more SHA-256
  pass (about 0.5 s of CPU per GiB), so by default (``sign_payload`` unset) they are
  signed over plain HTTP only; over HTTPS, TLS already protects them, as AWS SDKs assume.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from s3facade.backends.base import (
    BackendError,
    BackendHealth,
    BlobNotFound,
    BlobReceipt,
    ByteRange,
    Hasher,
    StagedBlob,
    check_digest,
)
from s3facade.backends.retry import RetryPolicy
from s3facade.backends.s3client import AddressingStyle, Endpoint, S3Client, UpstreamError
from s3facade.backends.signing import Signer
from s3facade.backends.upstream_staging import Upload

if TYPE_CHECKING:
    from s3facade.backends.base import StorageBackend

__all__ = ["UpstreamCAS", "UpstreamConfig"]

logger = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_SINGLE_COPY = 5 * GiB  # S3's limit for CopyObject
_HEALTH_RETRY = RetryPolicy(max_attempts=1, deadline=5.0)


@dataclass(frozen=True)
class UpstreamConfig:
    endpoint: str
    bucket: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = "us-east-1"
    prefix: str = ""
    addressing_style: AddressingStyle = "path"
    verify_tls: bool | str = True  # or the path of a CA bundle
    part_size: int = 8 * MiB
    upload_concurrency: int = 4
    timeout: float = 30.0  # seconds per connect / read / write
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sign_payload: bool | None = None  # sign parts' SHA-256; None: only over plain HTTP
    max_single_copy: int = MAX_SINGLE_COPY
    copy_part_size: int = 512 * MiB
    staging_max_age: float = 24 * 3600.0  # sweep() removes staging leftovers older than this
    health_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.part_size < MIN_PART_SIZE or self.copy_part_size < MIN_PART_SIZE:
            raise ValueError(f"part sizes must be at least {MIN_PART_SIZE} bytes")
        if not 1 <= self.upload_concurrency <= 64:
            raise ValueError("upload_concurrency must be between 1 and 64")
        if self.max_single_copy > MAX_SINGLE_COPY:
            raise ValueError(f"max_single_copy cannot exceed {MAX_SINGLE_COPY}")
        if self.prefix.startswith("/"):
            raise ValueError("prefix must not start with '/'")
        self.upstream  # noqa: B018 - validates endpoint, bucket and addressing style

    @property
    def upstream(self) -> Endpoint:
        return Endpoint(self.endpoint, self.bucket, self.region, self.addressing_style)

    @property
    def signs_parts(self) -> bool:
        if self.sign_payload is None:
            return self.endpoint.startswith("http://")
        return self.sign_payload

    @property
    def key_prefix(self) -> str:
        """The prefix as a 'directory': a trailing slash is added if missing."""
        return self.prefix if not self.prefix or self.prefix.endswith("/") else self.prefix + "/"


class UpstreamCAS:
    """Content-addressed blobs in one upstream bucket (see the module docstring)."""

    def __init__(self, config: UpstreamConfig, backend_id: str = "upstream") -> None:
        if not backend_id:
            raise ValueError("backend_id must not be empty")
        self._backend_id = backend_id
        self.config = config
        signer = Signer(config.access_key_id, config.secret_access_key, config.region)
        self.client = S3Client(
            config.upstream,
            signer,
            retry=config.retry,
            timeout=config.timeout,
            verify=config.verify_tls,
            max_connections=max(16, 4 * config.upload_concurrency),
        )
        self._prefix = config.key_prefix
        self._background: set[asyncio.Task[None]] = set()
        self._swept = False

    # -- public API ------------------------------------------------------------------

    @property
    def backend_id(self) -> str:
        return self._backend_id

    def blob_key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self._prefix}sha256/{digest[:2]}/{digest[2:4]}/{digest}"

    @property
    def staging_prefix(self) -> str:
        return f"{self._prefix}staging/"

    async def stage(
        self, chunks: AsyncIterable[bytes], hashers: Sequence[Hasher] = ()
    ) -> StagedBlob:
        if not self._swept:
            self._swept = True
            self.spawn(self._sweep_quietly())
        upload = Upload(self, hashers)
        try:
            async for chunk in chunks:
                if chunk:
                    await upload.feed(chunk)
            return await upload.finish()
        except BaseException:
            upload.abandon()
            raise

    async def put(self, chunks: AsyncIterable[bytes]) -> BlobReceipt:
        """stage() then commit(). A duplicate is fully read and hashed, then not rewritten."""
        staged = await self.stage(chunks)
        try:
            await staged.commit()
        finally:
            await staged.discard()  # no-op after a commit
        return staged.receipt

    def open(self, digest: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        """Stream the blob as a GET (ranged if asked) on the upstream; resumes after a
        broken connection. InvalidDigest and a malformed range raise here; BlobNotFound on
        the first iteration; a range past the end raises BackendError."""
        key = self.blob_key(digest)
        if byte_range is not None and not (0 <= byte_range.first <= byte_range.last):
            raise ValueError(f"invalid byte range {byte_range}")
        return self._read(digest, key, byte_range)

    async def size(self, digest: str) -> int | None:
        head = await self.client.head_object(self.blob_key(digest))
        return None if head is None else head.size

    async def delete(self, digest: str) -> bool:
        key = self.blob_key(digest)
        if await self.client.head_object(key) is None:
            return False
        await self.client.delete_object(key)
        return True

    async def health(self) -> BackendHealth:
        """A HEAD on the upstream bucket: one attempt, a short timeout."""
        detail: dict[str, object] = {
            "type": "s3",
            "endpoint": self.config.endpoint,
            "bucket": self.config.bucket,
            "prefix": self._prefix,
        }
        started = time.monotonic()
        try:
            await self.client.head_bucket(_HEALTH_RETRY, timeout=self.config.health_timeout)
        except BackendError as exc:
            detail["error"] = str(exc)
            return BackendHealth(self._backend_id, False, detail)
        detail["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        return BackendHealth(self._backend_id, True, detail)

    async def sweep(self, max_age: float | None = None) -> int:
        """Remove staging objects and abort our multipart uploads older than `max_age`
        seconds (default ``staging_max_age``): crash leftovers. Returns how many."""
        age = self.config.staging_max_age if max_age is None else max_age
        cutoff = datetime.now(UTC) - timedelta(seconds=age)
        removed = 0
        async for key, upload_id, initiated in self.client.list_uploads(self._prefix):
            ours = key.startswith((self.staging_prefix, f"{self._prefix}sha256/"))
            if ours and self._older(key, initiated, cutoff):
                await self.client.abort_multipart_upload(key, upload_id)
                removed += 1
        async for key, modified in self.client.list_objects(self.staging_prefix):
            if self._older(key, modified, cutoff):
                await self.client.delete_object(key)
                removed += 1
        if removed:
            logger.info("%s: removed %d staging leftover(s)", self._backend_id, removed)
        return removed

    async def drain(self) -> None:
        """Wait for background clean-ups (aborts, staging deletes, the first sweep)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        await self.client.aclose()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a clean-up without making the request wait for it (failures are logged;
        `sweep()` catches what they leave)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("%s: background clean-up failed: %r", self._backend_id, task.exception())

    def __repr__(self) -> str:
        c = self.config
        return f"UpstreamCAS({c.endpoint!r}, bucket={c.bucket!r}, backend_id={self._backend_id!r})"

    # -- internals -----------------------------------------------------------------------

    def new_staging_key(self) -> str:
        return f"{self.staging_prefix}{time.time_ns():016x}-{secrets.token_hex(8)}"

    def _older(self, key: str, stored: datetime, cutoff: datetime) -> bool:
        """Old by the store's clock and, for staging keys, by the time in their name too:
        some stores report a made-up Initiated time (moto: 2010) for every upload."""
        if stored > cutoff:
            return False
        if not key.startswith(self.staging_prefix):
            return True  # a final key's multipart copy: the store's clock is all we have
        stamp = key.removeprefix(self.staging_prefix).split("-", 1)[0]
        try:
            named = datetime.fromtimestamp(int(stamp, 16) / 1e9, UTC)
        except (ValueError, OverflowError):
            return True  # not a name we made
        return named <= cutoff

    async def _read(
        self, digest: str, key: str, byte_range: ByteRange | None
    ) -> AsyncIterator[bytes]:
        first, last = (0, None) if byte_range is None else (byte_range.first, byte_range.last)
        try:
            async for chunk in self.client.get(key, first, last):
                yield chunk
        except UpstreamError as exc:
            if exc.status == 404:
                raise BlobNotFound(digest) from None
            if exc.status == 416:
                raise BackendError(f"range {first}-{last} is past the end of {digest}") from exc
            raise

    async def complete(self, key: str, upload_id: str, etags: Sequence[str], size: int) -> None:
        try:
            await self.client.complete_multipart_upload(key, upload_id, etags)
        except UpstreamError as exc:
            # Our first attempt may have completed it and lost the answer.
            head = await self.client.head_object(key) if exc.code == "NoSuchUpload" else None
            if head is None or head.size != size:
                raise

    async def copy(self, source: str, key: str, size: int) -> None:
        """Server-side copy of a whole object."""
        if size <= self.config.max_single_copy:
            await self.client.copy_object(source, key)
            return
        step = self.config.copy_part_size
        ranges = [(first, min(first + step, size) - 1) for first in range(0, size, step)]
        upload_id = await self.client.create_multipart_upload(key)
        limit = asyncio.Semaphore(self.config.upload_concurrency)

        async def part(number: int, first: int, last: int) -> str:
            async with limit:
                return await self.client.upload_part_copy(
                    key, upload_id, number, source, first, last
                )

        try:
            tasks = [part(n, a, b) for n, (a, b) in enumerate(ranges, start=1)]
            etags = await asyncio.gather(*tasks)
            await self.complete(key, upload_id, etags, size)
        except BaseException:
            self.spawn(self.abort(key, upload_id, ()))
            raise

    async def abort(
        self,
        key: str,
        upload_id: str | asyncio.Future[str],
        pending: Sequence[asyncio.Future[Any]],
    ) -> None:
        """Abort a multipart upload (given its id, or the creation still on its way)."""
        # A part still on its way could land after the abort: let them end first.
        await asyncio.gather(*pending, return_exceptions=True)
        try:
            if isinstance(upload_id, asyncio.Future):
                upload_id = await upload_id
        except Exception:
            return  # never created
        try:
            await self.client.abort_multipart_upload(key, upload_id)
        except BackendError as exc:
            logger.warning("could not abort upload %s of %s: %s", upload_id, key, exc)

    async def delete_quietly(self, key: str) -> None:
        try:
            await self.client.delete_object(key)
        except BackendError as exc:
            logger.warning("could not delete staging object %s: %s", key, exc)

    async def _sweep_quietly(self) -> None:
        try:
            await self.sweep()
        except BackendError as exc:
            logger.warning("%s: staging sweep failed: %s", self._backend_id, exc)


if TYPE_CHECKING:
    _conforms: type[StorageBackend] = UpstreamCAS
