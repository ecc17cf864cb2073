"""The upstream backend under failure: resets, SlowDown, a store that stops or hangs, in
the middle of uploads and downloads (moto behind a fault-injecting TCP proxy), plus the
paths that only show under stress (multipart copy, sweeps, damaged blobs, memory)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from s3facade.backends.base import BackendUnavailable, ByteRange
from s3facade.backends.retry import RetryPolicy
from s3facade.backends.s3client import S3Client, UpstreamError
from s3facade.backends.upstream import UpstreamCAS
from tests.upstream_services import Fault, FaultProxy, Upstream

T = TypeVar("T")
MiB = 1 << 20
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.1, deadline=1.5)


def run(backend: UpstreamCAS, aw: Awaitable[T]) -> T:
    async def main() -> T:
        try:
            return await aw
        finally:
            await backend.drain()

    return asyncio.run(main())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks(
    data: bytes, size: int = 256 * 1024, at: int = -1, then: Callable[[], None] = lambda: None
) -> AsyncIterator[bytes]:
    """`data` in chunks; calls `then()` once `at` bytes have gone (a fault, mid-upload)."""
    for start in range(0, len(data), size):
        if start == at:
            then()
        await asyncio.sleep(0)
        yield data[start : start + size]


async def read(backend: UpstreamCAS, digest: str, byte_range: ByteRange | None = None) -> bytes:
    return b"".join([block async for block in backend.open(digest, byte_range)])


@pytest.fixture
def proxy(moto_upstream: Upstream) -> Iterator[FaultProxy]:
    port = int(moto_upstream.endpoint.rsplit(":", 1)[1])
    fault_proxy = FaultProxy(port)
    yield fault_proxy
    fault_proxy.close()


@pytest.fixture
def proxied(moto_upstream: Upstream, proxy: FaultProxy) -> Upstream:
    return dataclasses.replace(moto_upstream, endpoint=proxy.endpoint)


def leftovers(upstream: Upstream, backend: UpstreamCAS) -> list[str]:
    return upstream.keys(backend.staging_prefix) + upstream.uploads(backend.config.key_prefix)


def test_a_reset_during_a_part_upload_is_retried(
    proxied: Upstream, proxy: FaultProxy, moto_upstream: Upstream
) -> None:
    backend = proxied.backend()
    data = os.urandom(13 * MiB)
    proxy.inject(Fault("reset", after_bytes=7 * MiB))
    receipt = run(backend, backend.put(chunks(data)))
    assert proxy.strikes == 1
    assert receipt.sha256 == sha(data)
    assert run(backend, read(backend, receipt.sha256)) == data
    assert leftovers(moto_upstream, backend) == []


def test_slowdown_is_retried(proxied: Upstream, proxy: FaultProxy) -> None:
    backend = proxied.backend()
    proxy.inject(Fault("503", times=3))
    receipt = run(backend, backend.put(chunks(b"throttled")))
    assert proxy.strikes == 3
    assert run(backend, read(backend, receipt.sha256)) == b"throttled"


def test_store_stopping_mid_upload_is_unavailable_in_bounded_time_then_recovers(
    proxied: Upstream, proxy: FaultProxy, moto_upstream: Upstream
) -> None:
    backend = proxied.backend(retry=FAST_RETRY, timeout=2.0)
    data = os.urandom(16 * MiB)

    async def attempt() -> None:
        staged = await backend.stage(chunks(data, at=8 * MiB, then=proxy.refuse))
        await staged.commit()

    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="gave up"):
        run(backend, attempt())
    assert time.monotonic() - started < 10
    assert moto_upstream.keys(backend.blob_key(sha(data))) == []  # nothing under its name
    proxy.accept()
    proxy.clear()
    # The abort could not reach the store while it was down: the sweep gets it.
    assert run(backend, backend.sweep(max_age=0)) >= 1
    assert leftovers(moto_upstream, backend) == []
    receipt = run(backend, backend.put(chunks(data)))  # the retried upload succeeds
    assert run(backend, read(backend, receipt.sha256)) == data


def test_a_hung_store_times_out(proxied: Upstream, proxy: FaultProxy) -> None:
    backend = proxied.backend(retry=FAST_RETRY, timeout=0.5)
    proxy.inject(Fault("hang", times=-1))
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        run(backend, backend.put(chunks(os.urandom(MiB))))
    assert time.monotonic() - started < 6
    proxy.clear()


def test_a_download_resumes_where_the_connection_broke(
    proxied: Upstream, proxy: FaultProxy
) -> None:
    backend = proxied.backend()
    data = os.urandom(12 * MiB)
    receipt = run(backend, backend.put(chunks(data)))
    proxy.inject(Fault("reset", direction="down", after_bytes=3 * MiB))
    assert run(backend, read(backend, receipt.sha256)) == data
    assert proxy.strikes == 1
    proxy.inject(Fault("reset", direction="down", after_bytes=MiB))
    part = run(backend, read(backend, receipt.sha256, ByteRange(MiB, 9 * MiB - 1)))
    assert part == data[MiB : 9 * MiB]


def test_a_range_is_a_ranged_upstream_get(proxied: Upstream, proxy: FaultProxy) -> None:
    backend = proxied.backend()
    data = os.urandom(12 * MiB)
    receipt = run(backend, backend.put(chunks(data)))
    proxy.bytes_down = 0
    got = run(backend, read(backend, receipt.sha256, ByteRange(5 * MiB, 5 * MiB + 9)))
    assert got == data[5 * MiB : 5 * MiB + 10]
    assert proxy.bytes_down < 64 * 1024  # headers and ten bytes, not the blob


def test_health_follows_the_store(proxied: Upstream, proxy: FaultProxy) -> None:
    backend = proxied.backend()
    assert run(backend, backend.health()).healthy
    proxy.refuse()
    down = run(backend, backend.health())
    assert not down.healthy
    assert "HeadBucket" in str(down.detail["error"])
    proxy.accept()
    proxy.clear()
    assert run(backend, backend.health()).healthy


def test_a_cancelled_stage_aborts_its_upload(moto_upstream: Upstream) -> None:
    backend = moto_upstream.backend()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0)
            yield os.urandom(256 * 1024)

    async def scenario() -> None:
        task = asyncio.ensure_future(backend.stage(endless()))
        while not moto_upstream.uploads(backend.config.key_prefix):
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(backend, scenario())
    assert leftovers(moto_upstream, backend) == []


def test_large_commits_use_a_parallel_multipart_copy(moto_upstream: Upstream) -> None:
    backend = moto_upstream.backend(max_single_copy=5 * MiB, copy_part_size=5 * MiB)
    data = os.urandom(12 * MiB + 5)
    receipt = run(backend, backend.put(chunks(data)))
    assert run(backend, read(backend, receipt.sha256)) == data
    head = moto_upstream.client().head_object(
        Bucket=moto_upstream.bucket, Key=backend.blob_key(receipt.sha256)
    )
    assert head["ETag"].endswith('-3"')  # three UploadPartCopy parts
    assert leftovers(moto_upstream, backend) == []


def test_sweep_removes_only_old_leftovers(moto_upstream: Upstream) -> None:
    backend = moto_upstream.backend()
    s3 = moto_upstream.client()
    s3.put_object(Bucket=moto_upstream.bucket, Key=backend.new_staging_key(), Body=b"crashed")
    s3.create_multipart_upload(Bucket=moto_upstream.bucket, Key=backend.new_staging_key())
    s3.put_object(Bucket=moto_upstream.bucket, Key="someone-else/staging/x", Body=b"theirs")
    assert run(backend, backend.sweep()) == 0  # younger than a day: maybe a live upload
    assert run(backend, backend.sweep(max_age=0)) == 2
    assert leftovers(moto_upstream, backend) == []
    assert moto_upstream.keys("someone-else/") == ["someone-else/staging/x"]


def test_a_damaged_blob_is_replaced(moto_upstream: Upstream) -> None:
    backend = moto_upstream.backend()
    data = os.urandom(1000)
    key = backend.blob_key(sha(data))
    moto_upstream.client().put_object(Bucket=moto_upstream.bucket, Key=key, Body=data[:10])

    async def scenario() -> bool:
        staged = await backend.stage(chunks(data))
        return await staged.commit()

    assert run(backend, scenario()) is True
    assert run(backend, read(backend, sha(data))) == data


def test_a_completion_whose_answer_was_lost_is_recognised(
    moto_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried CompleteMultipartUpload whose first attempt succeeded may get NoSuchUpload
    (AWS does; moto and RGW answer 200 again): the object is there, so it is done."""
    no_such_upload = b"<Error><Code>NoSuchUpload</Code></Error>"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(404, content=no_such_upload)
        return httpx.Response(200, headers={"content-length": "1"})  # HEAD: one byte

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    monkeypatch.setattr(S3Client, "_client", lambda self: client)
    backend = moto_upstream.backend()
    run(backend, backend.complete("k", "id", ['"e"'], 1))
    with pytest.raises(UpstreamError, match="NoSuchUpload"):
        run(backend, backend.complete("k", "id", ['"e"'], 2))  # not the object we completed


def test_an_error_inside_a_200_is_retried(
    moto_upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CompleteMultipartUpload may answer 200 with an <Error> body (AWS documents it)."""
    answers = [
        httpx.Response(200, content=b"<Error><Code>InternalError</Code></Error>"),
        httpx.Response(200, content=b"<CompleteMultipartUploadResult/>"),
    ]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return answers.pop(0)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    monkeypatch.setattr(S3Client, "_client", lambda self: client)
    backend = moto_upstream.backend()
    run(backend, backend.client.complete_multipart_upload("k", "id", ['"e"']))
    assert seen == ["POST", "POST"]


def _peak_while_staging(backend: UpstreamCAS, size: int) -> int:
    block = os.urandom(MiB)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // MiB):
            yield block

    tracemalloc.start()
    try:
        staged = run(backend, backend.stage(body()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    run(backend, staged.discard())
    return peak


def test_memory_is_bounded_whatever_the_size(moto_upstream: Upstream) -> None:
    backend: Any = moto_upstream.backend()  # 5 MiB parts, 2 in flight
    small = _peak_while_staging(backend, 24 * MiB)
    large = _peak_while_staging(backend, 96 * MiB)
    assert large < 40 * MiB, large
    assert large < small * 1.5 + 4 * MiB, (small, large)
