"""The StorageBackend contract, run against every backend: the local CAS, the upstream
backend on moto (server mode) and on a real Ceph RGW (skipped with the reason if it
cannot start). Backend-specific behaviour lives in test_local_backend / test_upstream_*."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from s3facade.backends.base import (
    BackendError,
    BlobNotFound,
    ByteRange,
    InvalidDigest,
    StorageBackend,
)
from s3facade.backends.local import LocalCAS
from s3facade.backends.upstream import UpstreamCAS
from tests.upstream_services import Upstream

T = TypeVar("T")
MiB = 1 << 20
PART = 5 * MiB  # the upstream subjects' part size: blobs above it take the multipart path


@dataclass
class Subject:
    backend: StorageBackend
    leftovers: Callable[[], list[str]]  # staging debris, after background clean-ups ended


def run(subject: Subject, aw: Awaitable[T]) -> T:
    async def main() -> T:
        try:
            return await aw
        finally:
            if isinstance(subject.backend, UpstreamCAS):
                await subject.backend.drain()

    return asyncio.run(main())


@pytest.fixture(params=["local", "moto", "rgw"])
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    if request.param == "local":
        cas = LocalCAS(tmp_path / "blobs")
        yield Subject(cas, lambda: sorted(p.name for p in (tmp_path / "blobs/tmp").iterdir()))
        return
    upstream: Upstream = request.getfixturevalue(f"{request.param}_upstream")
    backend = upstream.backend()
    prefix = backend.config.key_prefix
    yield Subject(
        backend,
        lambda: upstream.keys(backend.staging_prefix) + upstream.uploads(prefix),
    )


async def stream(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


def split(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def read(backend: StorageBackend, digest: str, byte_range: ByteRange | None = None) -> bytes:
    return b"".join([block async for block in backend.open(digest, byte_range)])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", [0, 1, PART, PART + 1, 2 * PART + 12345])
def test_round_trip_ranges_and_delete(subject: Subject, size: int) -> None:
    data = os.urandom(size)
    backend = subject.backend

    async def scenario() -> None:
        receipt = await backend.put(stream(split(data)))
        assert (receipt.size, receipt.sha256) == (size, sha(data))
        assert await backend.size(receipt.sha256) == size
        assert await read(backend, receipt.sha256) == data
        if size:
            for first, last in [(0, 0), (size - 1, size - 1), (size // 3, size - 1)]:
                got = await read(backend, receipt.sha256, ByteRange(first, last))
                assert got == data[first : last + 1]
            with pytest.raises(BackendError):
                await read(backend, receipt.sha256, ByteRange(size, size))
        assert await backend.delete(receipt.sha256) is True
        assert await backend.delete(receipt.sha256) is False
        assert await backend.size(receipt.sha256) is None
        with pytest.raises(BlobNotFound):
            await read(backend, receipt.sha256)

    run(subject, scenario())
    assert subject.leftovers() == []


@pytest.mark.parametrize("size", [100, 2 * PART + 1])
def test_identical_content_is_stored_once(subject: Subject, size: int) -> None:
    data = os.urandom(size)
    backend = subject.backend

    async def scenario() -> list[bool]:
        outcomes = []
        for _ in range(2):
            staged = await backend.stage(stream(split(data)))
            outcomes.append(await staged.commit())
            assert await staged.commit() == outcomes[-1]  # twice: the first outcome again
            await staged.discard()  # after commit: a no-op
        assert await read(backend, sha(data)) == data
        return outcomes

    assert run(subject, scenario()) == [True, False]
    assert subject.leftovers() == []


@pytest.mark.parametrize("size", [100, PART + 1])
def test_discard_leaves_nothing(subject: Subject, size: int) -> None:
    data = os.urandom(size)
    backend = subject.backend

    async def scenario() -> None:
        staged = await backend.stage(stream(split(data)))
        assert staged.receipt.sha256 == sha(data)
        await staged.discard()
        await staged.discard()
        with pytest.raises(BackendError):
            await staged.commit()
        assert await backend.size(sha(data)) is None

    run(subject, scenario())
    assert subject.leftovers() == []


class ClientGoneError(Exception):
    pass


@pytest.mark.parametrize("fail_after", [0, 3 * PART])
def test_error_in_the_stream_propagates_and_nothing_stays(
    subject: Subject, fail_after: int
) -> None:
    async def failing() -> AsyncIterator[bytes]:
        sent = 0
        while sent < fail_after:
            yield b"x" * 65536
            sent += 65536
        raise ClientGoneError

    async def scenario() -> None:
        with pytest.raises(ClientGoneError):
            await subject.backend.stage(failing())

    run(subject, scenario())
    assert subject.leftovers() == []


def test_hashers_see_every_byte_in_order(subject: Subject) -> None:
    data = os.urandom(2 * PART + 777)
    md5 = hashlib.md5()

    async def scenario() -> None:
        staged = await subject.backend.stage(stream(split(data, 100_000)), [md5])
        await staged.commit()

    run(subject, scenario())
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()


def test_concurrent_identical_writes_leave_one_readable_blob(subject: Subject) -> None:
    data = os.urandom(PART + 99)

    async def scenario() -> None:
        receipts = await asyncio.gather(
            *(subject.backend.put(stream(split(data))) for _ in range(4))
        )
        assert {r.sha256 for r in receipts} == {sha(data)}
        assert await read(subject.backend, sha(data)) == data

    run(subject, scenario())
    assert subject.leftovers() == []


def test_invalid_digests_are_refused(subject: Subject) -> None:
    backend = subject.backend

    async def scenario() -> None:
        for bad in ["../../etc/passwd", "A" * 64, "ab" * 31, ""]:
            with pytest.raises(InvalidDigest):
                backend.open(bad)
            with pytest.raises(InvalidDigest):
                await backend.size(bad)
            with pytest.raises(InvalidDigest):
                await backend.delete(bad)

    run(subject, scenario())


def test_health(subject: Subject) -> None:
    health = run(subject, subject.backend.health())
    assert health.healthy, health.detail
    assert health.backend_id == subject.backend.backend_id
