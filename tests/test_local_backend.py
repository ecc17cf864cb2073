"""Unit tests for backends.local.LocalCAS (plain functions driving asyncio.run)."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import itertools
import os
import shutil
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Iterable
from pathlib import Path
from typing import TypeVar

import pytest

from s3facade.backends import local, sync_group
from s3facade.backends.base import (
    BackendError,
    BackendFull,
    BackendUnavailable,
    BlobDamaged,
    BlobNotFound,
    ByteRange,
    InvalidDigest,
    StagedBlob,
    StorageBackend,
)
from s3facade.backends.local import BLOCK_SIZE, LocalCAS

T = TypeVar("T")
MiB = 1 << 20


def run(aw: Awaitable[T]) -> T:
    async def main() -> T:
        return await aw

    return asyncio.run(main())


async def stream(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)  # let concurrent stages interleave
        yield chunk


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


async def collect(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([block async for block in it])


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


# -- basics --------------------------------------------------------------------------


def test_constructor_creates_layout_and_conforms(root: Path) -> None:
    cas = LocalCAS(root, backend_id="disk-1")
    assert (root / "sha256").is_dir()
    assert (root / "tmp").is_dir()
    assert cas.backend_id == "disk-1"
    assert cas.root == root.resolve()
    assert isinstance(cas, StorageBackend)


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (0, 1),
        (1, 1),
        (1000, 7),
        (BLOCK_SIZE - 1, 65536),
        (BLOCK_SIZE, 65536),
        (BLOCK_SIZE + 1, 65536),
        (3 * BLOCK_SIZE + 123, 100_000),
        (2 * BLOCK_SIZE + 5, 5 * BLOCK_SIZE),  # one chunk bigger than a block
    ],
)
def test_round_trip(root: Path, size: int, chunk: int) -> None:
    data = os.urandom(size)
    cas = LocalCAS(root)

    async def go() -> None:
        receipt = await cas.put(stream(split(data, chunk)))
        assert receipt.size == size
        assert receipt.sha256 == sha(data)
        assert await cas.size(receipt.sha256) == size
        assert await collect(cas.open(receipt.sha256)) == data

    run(go())
    assert files_under(root / "tmp") == []


def test_open_blocks_are_bounded(root: Path) -> None:
    data = os.urandom(3 * BLOCK_SIZE + 10)
    cas = LocalCAS(root)

    async def go() -> list[int]:
        digest = (await cas.put(stream([data]))).sha256
        return [len(b) async for b in cas.open(digest)]

    assert run(go()) == [BLOCK_SIZE, BLOCK_SIZE, BLOCK_SIZE, 10]


def test_hashers_see_every_byte(root: Path) -> None:
    data = os.urandom(2 * BLOCK_SIZE + 777)

    class Recorder:
        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def update(self, data: bytes, /) -> None:
            self.parts.append(bytes(data))

    md5 = hashlib.md5()
    rec = Recorder()
    cas = LocalCAS(root)

    async def go() -> None:
        staged = await cas.stage(stream(split(data, 4099)), [md5, rec])
        assert staged.receipt.sha256 == sha(data)
        assert await staged.commit() is True

    run(go())
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert b"".join(rec.parts) == data
    assert all(len(p) <= BLOCK_SIZE + 4099 for p in rec.parts)  # blocks, not the whole


def test_empty_blob(root: Path) -> None:
    cas = LocalCAS(root)

    async def go() -> None:
        staged = await cas.stage(stream([]))
        assert staged.receipt.size == 0
        assert staged.receipt.sha256 == sha(b"")
        assert await staged.commit() is True
        assert await cas.size(sha(b"")) == 0
        assert await collect(cas.open(sha(b""))) == b""

    run(go())


def test_ranges(root: Path) -> None:
    data = os.urandom(2 * BLOCK_SIZE + 500)
    n = len(data)
    cas = LocalCAS(root)

    async def go() -> None:
        digest = (await cas.put(stream(split(data, 65536)))).sha256
        cases = [
            (0, 0),  # first byte
            (n - 1, n - 1),  # last byte
            (100, 199),  # middle
            (BLOCK_SIZE - 10, 2 * BLOCK_SIZE + 10),  # across block boundaries
            (0, n - 1),  # whole
        ]
        for first, last in cases:
            got = await collect(cas.open(digest, ByteRange(first, last)))
            assert got == data[first : last + 1], (first, last)

        with pytest.raises(BackendError):
            await collect(cas.open(digest, ByteRange(n - 1, n)))  # past the end
        with pytest.raises(ValueError):
            cas.open(digest, ByteRange(5, 4))
        with pytest.raises(ValueError):
            cas.open(digest, ByteRange(-1, 4))

    run(go())


def test_layout_path_exact(root: Path) -> None:
    data = b"hello layout"
    h = sha(data)
    cas = LocalCAS(root)
    run(cas.put(stream([data])))
    expected = root.resolve() / "sha256" / h[:2] / h[2:4] / h
    assert cas.blob_path(h) == expected
    assert expected.read_bytes() == data
    assert files_under(root) == [f"sha256/{h[:2]}/{h[2:4]}/{h}"]


def test_not_found(root: Path) -> None:
    cas = LocalCAS(root)
    h = sha(b"absent")

    async def go() -> None:
        assert await cas.size(h) is None
        assert await cas.delete(h) is False
        it = cas.open(h)  # lazy: raises on first advance
        with pytest.raises(BlobNotFound):
            await anext(it)
        # Shards present, blob absent.
        other = (await cas.put(stream([b"x"]))).sha256
        probe = other[:4] + "0" * 60
        if probe != other:
            with pytest.raises(BlobNotFound):
                await collect(cas.open(probe))

    run(go())


# -- staging lifecycle -----------------------------------------------------------------


def test_dedupe_does_not_rewrite_and_drains(root: Path) -> None:
    data = os.urandom(BLOCK_SIZE + 3)
    cas = LocalCAS(root)
    consumed = 0

    async def counting() -> AsyncIterator[bytes]:
        nonlocal consumed
        for chunk in split(data, 65536):
            consumed += 1
            yield chunk

    async def go() -> None:
        nonlocal consumed
        receipt = await cas.put(counting())
        path = cas.blob_path(receipt.sha256)
        before = path.stat()

        consumed = 0
        staged = await cas.stage(counting())
        assert consumed == len(split(data, 65536))
        assert await staged.commit() is False

        consumed = 0
        again = await cas.put(counting())
        assert consumed == len(split(data, 65536))
        assert again == receipt

        after = path.stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_nlink) == (
            before.st_ino,
            before.st_mtime_ns,
            before.st_nlink,
        )
        assert path.read_bytes() == data

    run(go())
    assert files_under(root / "tmp") == []


def test_discard_leaves_nothing(root: Path) -> None:
    cas = LocalCAS(root)

    async def go() -> None:
        staged = await cas.stage(stream([b"a" * 10, b"b" * 10]))
        assert len(files_under(root / "tmp")) == 1
        await staged.discard()
        await staged.discard()  # no-op
        with pytest.raises(BackendError):
            await staged.commit()

    run(go())
    assert files_under(root) == []


def test_commit_twice_and_discard_after_commit(root: Path) -> None:
    cas = LocalCAS(root)

    async def go() -> None:
        staged = await cas.stage(stream([b"twice"]))
        assert await staged.commit() is True
        assert await staged.commit() is True  # same outcome, no I/O
        await staged.discard()  # no-op after commit
        assert await cas.size(sha(b"twice")) == 5

    run(go())
    assert files_under(root / "tmp") == []


def test_stream_error_leaves_nothing(root: Path) -> None:
    cas = LocalCAS(root)

    async def broken() -> AsyncIterator[bytes]:
        for _ in range(40):  # 2.5 MiB: a block write is in flight when we fail
            yield os.urandom(65536)
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        run(cas.stage(broken()))
    with pytest.raises(RuntimeError, match="client went away"):
        run(cas.put(broken()))
    assert files_under(root) == []


def test_bad_chunk_type_leaves_nothing(root: Path) -> None:
    cas = LocalCAS(root)

    async def bad() -> AsyncIterator[bytes]:
        yield b"ok"
        yield "not bytes"  # type: ignore[misc]

    with pytest.raises(TypeError):
        run(cas.stage(bad()))
    assert files_under(root) == []


def test_cancellation_leaves_nothing(root: Path) -> None:
    cas = LocalCAS(root)

    async def go() -> None:
        reached = asyncio.Event()

        async def stalls() -> AsyncIterator[bytes]:
            for _ in range(3 * 16):
                yield os.urandom(65536)
            reached.set()
            await asyncio.Event().wait()  # never
            yield b""

        task = asyncio.create_task(cas.stage(stalls()))
        await reached.wait()
        assert len(files_under(root / "tmp")) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(go())
    assert files_under(root) == []


def test_enospc_is_backend_full(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cas = LocalCAS(root)

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(BackendFull):
        run(cas.put(stream([os.urandom(3 * MiB)])))
    with pytest.raises(BackendFull):
        run(cas.stage(stream([b"small"])))  # the tail write fails the same way
    monkeypatch.undo()
    assert files_under(root) == []


def test_eio_is_backend_unavailable(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed fsync (a large blob's own) or syncfs (the shared one) is the store failing."""
    cas = LocalCAS(root)

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", eio)
    with pytest.raises(BackendUnavailable):
        run(cas.put(stream([os.urandom(BLOCK_SIZE + 1)])))
    monkeypatch.undo()
    monkeypatch.setattr(sync_group, "syncfs", eio)
    with pytest.raises(BackendUnavailable):
        run(cas.put(stream([b"data"])))
    monkeypatch.undo()
    assert files_under(root) == []


def test_small_blobs_share_syncs_and_are_durable_before_their_name(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """32 concurrent small PUTs share a few syncfs calls; each blob's bytes are synced
    before its link and its link before commit() returns; a large blob fsyncs its own file
    and directories (a syncfs would write out whatever else is pending)."""
    calls: list[str] = []
    real_syncfs, real_link, real_fsync = sync_group.syncfs, os.link, os.fsync

    def syncfs(fd: int) -> None:
        calls.append("sync")
        real_syncfs(fd)

    def link(source: str, name: str, **kwargs: object) -> None:
        calls.append(f"link {name}")
        real_link(source, name, **kwargs)  # type: ignore[arg-type]

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    monkeypatch.setattr(sync_group, "syncfs", syncfs)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "fsync", fsync)
    cas = LocalCAS(root)
    blobs = [os.urandom(4096) for _ in range(32)]

    async def all_of_them() -> list[list[str]]:
        staged = await asyncio.gather(*(cas.stage(stream([data])) for data in blobs))
        before = len(calls)

        async def one(blob: StagedBlob) -> list[str]:
            assert await blob.commit() is True
            own = calls[before:]  # what had happened by the time this commit returned
            linked = own.index(f"link {blob.receipt.sha256}")
            return [own[:linked], own[linked:]]

        return await asyncio.gather(*(one(blob) for blob in staged))

    seen = run(all_of_them())
    assert sum(c.startswith("link") for c in calls) == 32 and "fsync" not in calls
    assert calls.count("sync") < 32, calls  # shared
    for before_link, after_link in seen:  # its bytes synced before its link, its link after
        assert "sync" in before_link and "sync" in after_link
    assert all(run(collect(cas.open(sha(data)))) == data for data in blobs)
    calls.clear()
    run(cas.put(stream([os.urandom(BLOCK_SIZE + 1)])))
    assert [c.split()[0] for c in calls] == ["fsync", "link", "fsync", "fsync", "fsync"]


def test_while_a_large_blob_is_staged_small_ones_sync_on_their_own(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A syncfs would wait for a large upload's pending bytes (seconds): while one is being
    staged, a small blob fsyncs its own file before its link and its directories after."""
    calls: list[str] = []
    real_syncfs, real_link, real_fsync = sync_group.syncfs, os.link, os.fsync
    monkeypatch.setattr(sync_group, "syncfs", lambda fd: (calls.append("sync"), real_syncfs(fd)))
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(
        os,
        "link",
        lambda *a, **k: (calls.append("link"), real_link(*a, **k)),  # type: ignore[arg-type]
    )
    cas = LocalCAS(root)
    gate = asyncio.Event()

    async def large() -> AsyncIterator[bytes]:
        yield os.urandom(BLOCK_SIZE)
        yield os.urandom(BLOCK_SIZE)  # one block written, the next one gathered
        await gate.wait()
        yield b"end"

    async def go() -> None:
        upload = asyncio.create_task(cas.put(large()))
        for _ in range(500):  # until its first block is on its way to the disk
            if cas._large_stagings:
                break
            await asyncio.sleep(0.01)
        assert cas._large_stagings == 1
        staged = await cas.stage(stream([b"small"]))
        assert await staged.commit() is True
        assert calls == ["fsync", "link", "fsync", "fsync", "fsync"], calls
        gate.set()
        await upload
        calls.clear()
        assert cas._large_stagings == 0
        staged = await cas.stage(stream([b"small again"]))
        assert await staged.commit() is True
        assert calls == ["sync", "link", "sync"], calls

    run(go())


def test_a_failed_sync_fails_every_blob_written_before_it(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """syncfs reports an error once, whichever file it concerns: a blob staged before a
    failed sync is refused at commit even though its own sync succeeds."""
    cas = LocalCAS(root)

    async def go() -> None:
        first = await cas.stage(stream([b"written before the failure"]))
        second = await cas.stage(stream([b"whose commit sees the failure"]))

        def eio(fd: int) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        monkeypatch.setattr(sync_group, "syncfs", eio)
        with pytest.raises(BackendUnavailable):
            await second.commit()
        monkeypatch.undo()
        with pytest.raises(BackendUnavailable, match="not known to be on disk"):
            await first.commit()
        await first.discard()
        await second.discard()
        later = await cas.stage(stream([b"written after it"]))
        assert await later.commit() is True

    run(go())
    assert [Path(p).name for p in files_under(root / "sha256")] != []


def test_corrupt_existing_blob_is_replaced(root: Path) -> None:
    data = os.urandom(5000)
    cas = LocalCAS(root)
    digest = run(cas.put(stream([data]))).sha256
    path = cas.blob_path(digest)
    path.chmod(0o644)
    path.write_bytes(data[:100])  # damaged: same name, wrong size

    async def go() -> None:
        staged = await cas.stage(stream([data]))
        assert await staged.commit() is True

    run(go())
    assert path.read_bytes() == data


def test_no_hardlink_fallback(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, "link", no_links)
    cas = LocalCAS(root)
    data = os.urandom(BLOCK_SIZE + 1)

    async def go() -> None:
        staged = await asyncio.gather(*(cas.stage(stream([data])) for _ in range(4)))
        results = await asyncio.gather(*(s.commit() for s in staged))
        assert sorted(results) == [False, False, False, True]
        assert await collect(cas.open(sha(data))) == data

    run(go())
    assert files_under(root / "tmp") == []


# -- concurrency ---------------------------------------------------------------------


def test_concurrent_identical_stages(root: Path) -> None:
    data = os.urandom(2 * BLOCK_SIZE + 17)
    cas = LocalCAS(root)

    async def go() -> None:
        a, b = await asyncio.gather(
            cas.stage(stream(split(data, 65536))), cas.stage(stream(split(data, 50_000)))
        )
        assert a.receipt == b.receipt
        results = await asyncio.gather(a.commit(), b.commit())
        assert sorted(results) == [False, True]

        receipts = await asyncio.gather(*(cas.put(stream(split(data, 8192))) for _ in range(8)))
        assert {r.sha256 for r in receipts} == {sha(data)}
        assert await collect(cas.open(sha(data))) == data

    run(go())
    assert files_under(root / "tmp") == []
    assert cas.blob_path(sha(data)).stat().st_nlink == 1


def test_read_while_deleted(root: Path) -> None:
    data = os.urandom(3 * BLOCK_SIZE)
    cas = LocalCAS(root)

    async def go() -> None:
        digest = (await cas.put(stream([data]))).sha256
        it = cas.open(digest)
        first = await anext(it)
        assert await cas.delete(digest) is True
        rest = await collect(it)
        assert first + rest == data
        assert await cas.size(digest) is None

    run(go())


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_early_close_releases_file(root: Path) -> None:
    data = os.urandom(3 * BLOCK_SIZE)
    cas = LocalCAS(root)

    async def go() -> None:
        digest = (await cas.put(stream([data]))).sha256
        baseline = _open_fds()
        it = cas.open(digest)
        assert isinstance(it, AsyncIterator)
        await anext(it)
        assert _open_fds() == baseline + 1
        await it.aclose()  # type: ignore[attr-defined]
        assert _open_fds() == baseline

        # Consumer cancelled in the middle of a read.
        async def consume() -> None:
            async for _ in cas.open(digest):
                await asyncio.sleep(0)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):  # a read still in its thread closes the fd when it ends
            if _open_fds() == baseline:
                break
            await asyncio.sleep(0.01)
        assert _open_fds() == baseline

    run(go())


def test_guarded_fd_defers_close_while_in_use(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_CREAT | os.O_RDWR)
    guard = local._GuardedFd(fd)
    entered, release = threading.Event(), threading.Event()

    def slow(fd: int) -> int:
        entered.set()
        release.wait(5)
        return os.fstat(fd).st_size

    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(guard.call(slow)))
    worker.start()
    entered.wait(5)
    guard.close(wait=False)  # must neither block nor close under the running call
    os.fstat(fd)  # still open
    release.set()
    worker.join(5)
    assert results == [0]
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(BackendError):
        guard.call(os.fstat)


# -- safety --------------------------------------------------------------------------

HOSTILE = [
    "../..",
    "A" * 64,
    "abc",
    "ab/cd" + "0" * 59,
    "../../../../etc/passwd".ljust(64, "a"),
    "0" * 63 + "\x00",
    "0" * 65,
    "",
]


@pytest.mark.parametrize("digest", HOSTILE)
def test_hostile_digests_rejected(root: Path, digest: str) -> None:
    cas = LocalCAS(root)
    with pytest.raises(InvalidDigest):
        cas.open(digest)
    with pytest.raises(InvalidDigest):
        run(cas.size(digest))
    with pytest.raises(InvalidDigest):
        run(cas.delete(digest))
    with pytest.raises(InvalidDigest):
        cas.blob_path(digest)


def test_symlinked_shard_escaping_root_is_refused(root: Path, tmp_path: Path) -> None:
    data = b"escape attempt"
    h = sha(data)
    cas = LocalCAS(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "sha256" / h[:2]).symlink_to(outside, target_is_directory=True)

    with pytest.raises(BackendUnavailable):
        run(cas.put(stream([data])))
    assert files_under(outside) == []
    assert files_under(root / "tmp") == []

    # A file planted outside must not be served, sized or deleted through the link: the
    # store is damaged there (not unreachable: retrying would not help).
    (outside / h[2:4]).mkdir()
    (outside / h[2:4] / h).write_bytes(b"evil")
    with pytest.raises(BlobDamaged, match="shard"):
        run(collect(cas.open(h)))
    with pytest.raises(BlobDamaged):
        run(cas.size(h))
    with pytest.raises(BlobDamaged):
        run(cas.delete(h))
    with pytest.raises(BackendUnavailable):
        cas.blob_path(h)
    assert (outside / h[2:4] / h).read_bytes() == b"evil"


def test_symlinked_blob_is_refused(root: Path) -> None:
    cas = LocalCAS(root)
    real = run(cas.put(stream([b"real"]))).sha256
    fake = sha(b"fake")
    leaf = root / "sha256" / fake[:2] / fake[2:4]
    leaf.mkdir(parents=True)
    (leaf / fake).symlink_to(cas.blob_path(real))
    with pytest.raises(BlobDamaged, match="symlink") as raised:
        run(collect(cas.open(fake)))
    assert (raised.value.digest, raised.value.found) == (fake, "not a regular file: symlink")
    with pytest.raises(BlobDamaged):
        run(cas.size(fake))


def test_fifo_or_directory_at_a_blob_name_is_damage_and_never_blocks(root: Path) -> None:
    cas = LocalCAS(root)
    fifo, directory = sha(b"fifo"), sha(b"dir")
    for digest in (fifo, directory):
        (root / "sha256" / digest[:2] / digest[2:4]).mkdir(parents=True)
    os.mkfifo(root / "sha256" / fifo[:2] / fifo[2:4] / fifo)  # no writer: a blocking open hangs
    (root / "sha256" / directory[:2] / directory[2:4] / directory).mkdir()
    with pytest.raises(BlobDamaged, match="fifo"):
        run(asyncio.wait_for(collect(cas.open(fifo)), timeout=5))
    with pytest.raises(BlobDamaged, match="directory"):
        run(collect(cas.open(directory)))


def _digests_sharing_shards() -> tuple[bytes, bytes, bytes]:
    """a and b share both shard levels; c shares only the first with a."""
    by_leaf: dict[str, bytes] = {}
    pair: tuple[bytes, bytes] | None = None
    for i in itertools.count():
        content = f"blob-{i}".encode()
        h = sha(content)
        if pair is None:
            if h[:4] in by_leaf:
                pair = (by_leaf[h[:4]], content)
            by_leaf[h[:4]] = content
        elif h[:2] == sha(pair[0])[:2] and h[:4] != sha(pair[0])[:4]:
            return pair[0], pair[1], content
    raise AssertionError("unreachable")


def test_delete_prunes_only_emptied_shards(root: Path) -> None:
    a, b, c = _digests_sharing_shards()
    ha, hb, hc = sha(a), sha(b), sha(c)
    blobs = root / "sha256"
    cas = LocalCAS(root)

    async def go() -> None:
        for content in (a, b, c):
            await cas.put(stream([content]))

        assert await cas.delete(ha) is True
        assert (blobs / ha[:2] / ha[2:4]).is_dir()  # b still there
        assert await cas.size(hb) == len(b)

        assert await cas.delete(hb) is True
        assert not (blobs / hb[:2] / hb[2:4]).exists()  # emptied leaf pruned
        assert (blobs / hb[:2]).is_dir()  # c still there

        assert await cas.delete(hc) is True
        assert not (blobs / hc[:2]).exists()
        assert blobs.is_dir()
        assert await cas.delete(hc) is False

        # Shards are recreated on the next put.
        await cas.put(stream([a]))
        assert await collect(cas.open(ha)) == a

    run(go())


# -- health and recovery -------------------------------------------------------------


def test_health_reports_usage_and_detects_missing_root(root: Path) -> None:
    cas = LocalCAS(root, backend_id="local-x")
    health = run(cas.health())
    assert health.backend_id == "local-x"
    assert health.healthy is True
    d = health.detail
    assert d["root"] == str(root.resolve())
    total, used, free = d["total_bytes"], d["used_bytes"], d["free_bytes"]
    assert isinstance(total, int) and isinstance(used, int) and isinstance(free, int)
    assert total > 0 and 0 <= used <= total and 0 <= free <= total
    assert "error" not in d

    shutil.rmtree(root)
    health = run(cas.health())
    assert health.healthy is False
    assert "error" in health.detail

    h = sha(b"x")
    with pytest.raises(BackendUnavailable):
        run(cas.stage(stream([b"x"])))
    with pytest.raises(BackendUnavailable):
        run(cas.size(h))  # not "absent": the store itself is gone
    with pytest.raises(BackendUnavailable):
        run(collect(cas.open(h)))
    with pytest.raises(BackendUnavailable):
        run(cas.delete(h))


def test_health_unwritable(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cas = LocalCAS(root)
    # We may run as root, where chmod does not stop writes: fake the permission check.
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    health = run(cas.health())
    assert health.healthy is False
    assert "not writable" in str(health.detail["error"])


def test_recovery_removes_leftovers(root: Path) -> None:
    LocalCAS(root)
    tmp = root / "tmp"
    (tmp / "stage-deadbeef").write_bytes(b"half a blob")
    (tmp / "stage-cafe").write_bytes(b"")
    (tmp / "stage-link").symlink_to("/etc/passwd")
    (tmp / "unrelated").write_bytes(b"not ours")

    cas = LocalCAS(root)  # the constructor recovers
    assert files_under(tmp) == ["unrelated"]
    (tmp / "stage-again").write_bytes(b"x")
    assert cas.recover() == 1
    assert cas.recover() == 0
    assert Path("/etc/passwd").exists()


def test_recovery_keeps_live_staging_files(root: Path) -> None:
    cas = LocalCAS(root)

    async def go() -> None:
        staged = await cas.stage(stream([b"in flight"]))
        other = LocalCAS(root)  # e.g. a second worker process starting up
        assert other.recover() == 0
        assert await staged.commit() is True
        assert await other.size(sha(b"in flight")) == 9

    run(go())
    assert files_under(root / "tmp") == []


# -- memory --------------------------------------------------------------------------


def test_large_object_memory_is_bounded(root: Path) -> None:
    size = 64 * MiB
    chunk = 64 * 1024
    pattern = [os.urandom(chunk) for _ in range(17)]  # period not aligned with blocks
    n_chunks = size // chunk
    expected = hashlib.sha256()
    for i in range(n_chunks):
        expected.update(pattern[i % 17])
    cas = LocalCAS(root)

    async def source() -> AsyncIterator[bytes]:
        for i in range(n_chunks):
            yield pattern[i % 17]

    async def go() -> tuple[int, int]:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            receipt = await cas.put(source())
            _, write_peak = tracemalloc.get_traced_memory()
            assert receipt.size == size
            assert receipt.sha256 == expected.hexdigest()

            tracemalloc.reset_peak()
            back = hashlib.sha256()
            total = 0
            async for block in cas.open(receipt.sha256):
                back.update(block)
                total += len(block)
            _, read_peak = tracemalloc.get_traced_memory()
            assert total == size
            assert back.hexdigest() == expected.hexdigest()
            return write_peak, read_peak
        finally:
            tracemalloc.stop()

    write_peak, read_peak = run(go())
    assert write_peak < 8 * MiB, write_peak
    assert read_peak < 8 * MiB, read_peak
