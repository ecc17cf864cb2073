"""LocalCAS: a content-addressed blob store in one local directory.

Layout under the root (both subdirectories on the same filesystem, checked at start)::

    <root>/sha256/<hex[0:2]>/<hex[2:4]>/<hex>   committed blobs, named by their SHA-256
    <root>/tmp/stage-<random>                   staging files (private, never read by name)

Write path and why it is crash-safe:

1. `stage()` writes the stream into a new file in ``tmp/`` (O_EXCL, random name), hashing
   as it goes; a blob over GROUP_SYNC_MAX is fsynced before `stage()` returns. The staging
   file holds an exclusive flock for as long as it is staged, so `recover()` (which
   deletes crash leftovers) never deletes a file a live stage in this or another process
   still owns.
2. `commit()` makes a small blob's bytes durable first (a shared syncfs, see
   backends/sync_group.py), then hard-links the staging file into its shard directory,
   then waits for a syncfs that started after the link, which makes the name (and any
   shard directory it created) durable. A large blob, or a small one while a large one
   is being staged, fsyncs its own file and, after the link, its directories instead.
   ``link()`` fails with EEXIST if the name exists, so it is an atomic "create if
   absent": of several identical commits racing, in this process or another, exactly one
   returns True. It never replaces an existing name, so a blob is never rewritten. (On
   filesystems without hard links it falls back to a checked rename under a process-wide
   lock.) Then the staging name is removed.
3. Readers only ever open final names. A final name appears atomically, pointing at data
   that was durable before the link; the sync after it makes the name itself durable
   before commit() returns. So after a crash, a blob either is complete under its name or
   absent, and any leftover staging file is deleted by `recover()` on the next start.

Path safety: digests are validated with `check_digest`, and every operation walks
root -> sha256 -> shard -> shard with ``openat(O_NOFOLLOW | O_DIRECTORY)`` and opens or
links the final name relative to the shard's directory fd (O_NOFOLLOW too). (A read first
tries the blob's full path and keeps the file only if the kernel's own name for it,
/proc/self/fd, is that path: no symlink was followed; otherwise it walks.) A symlink
planted anywhere below the root is refused instead of being followed, and there is no
window between checking a path and using it. How it is refused says what can be done:
reading, sizing or deleting through a shard directory or a blob entry that is a symlink
or not the right kind of file raises BlobDamaged (that part of the store is damaged;
retrying will not help), while the root or ``sha256/`` itself refused or gone, and any
refusal on the write path, is BackendUnavailable (the store as a whole cannot serve).
`blob_path()` additionally checks the resolved path for callers that want a path.

All disk I/O and hashing runs in worker threads: one thread hop per ~1 MiB block.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import functools
import hashlib
import logging
import os
import secrets
import stat
import threading
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from s3facade.backends.base import (
    BackendError,
    BackendFull,
    BackendHealth,
    BackendUnavailable,
    BlobDamaged,
    BlobNotFound,
    BlobReceipt,
    ByteRange,
    Hasher,
    StagedBlob,
    check_digest,
)
from s3facade.backends.sync_group import SyncGroup

if TYPE_CHECKING:
    from collections.abc import Iterator

    from s3facade.backends.base import StorageBackend

__all__ = ["BLOCK_SIZE", "LocalCAS"]

logger = logging.getLogger(__name__)

BLOCK_SIZE = 1 << 20
"""Bytes gathered before one worker-thread hop (write+hash or read)."""
GROUP_SYNC_MAX = BLOCK_SIZE
"""Blobs up to this size are made durable by a shared syncfs, larger ones fsync their own
file and directories (a syncfs would also write out other uploads' pending bytes)."""

_STAGE_PREFIX = "stage-"
_BLOB_MODE = 0o444  # blobs are immutable; the mode says so to anyone looking
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_REFUSED_ERRNOS = frozenset({errno.ELOOP, errno.ENOTDIR})
_NO_HARDLINK_ERRNOS = frozenset({errno.EPERM, errno.EOPNOTSUPP})
# O_NONBLOCK: a FIFO planted at a blob's name must not hang the read (no effect on files).
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_KINDS = {
    stat.S_IFLNK: "symlink",
    stat.S_IFDIR: "directory",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}
_PUBLISH_ATTEMPTS = 5

_T = TypeVar("_T")


def _translate(exc: OSError, what: str) -> BackendError:
    if exc.errno in _FULL_ERRNOS:
        return BackendFull(f"{what}: {exc}")
    if exc.errno in _REFUSED_ERRNOS:
        return BackendUnavailable(
            f"{what}: refusing a symlink or non-directory inside the store ({exc})"
        )
    return BackendUnavailable(f"{what}: {exc}")


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Turn OSError from our own I/O into backend errors (never wrap the caller's errors)."""
    try:
        yield
    except OSError as exc:
        raise _translate(exc, what) from exc


def _require_regular(digest: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "unknown kind")
        raise BlobDamaged(digest, f"not a regular file: {kind}")


def _open_dir(name: str, dir_fd: int | None) -> int:
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _mkdir_at(name: str, dir_fd: int) -> None:
    with suppress(FileExistsError):
        os.mkdir(name, dir_fd=dir_fd)


def _release(fd: int, unlink_path: str | None) -> None:
    with suppress(OSError):
        os.close(fd)
    if unlink_path is not None:
        try:
            os.unlink(unlink_path)
        except FileNotFoundError:
            pass
        except OSError as exc:  # recover() will get it on the next start
            logger.warning("could not remove staging file %s: %s", unlink_path, exc)


class _GuardedFd:
    """A file descriptor used from worker threads and closable from anywhere.

    Why: a coroutine cancelled while awaiting a worker thread leaves that thread running.
    Closing the fd right away would let an unrelated open() reuse the number while the
    thread still writes or reads through it. So calls run under a lock, and a close that
    finds a call in flight either waits (`wait=True`, for worker threads) or is deferred to
    the end of that call (`wait=False`, safe on the event loop).
    """

    def __init__(self, fd: int, unlink_path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = fd
        self._close_requested = False
        self._unlink_path = unlink_path
        # Last resort for an abandoned stream or staged blob: close (and unlink) on GC.
        self._finalizer = weakref.finalize(self, _release, fd, unlink_path)

    def call(self, fn: Callable[[int], _T]) -> _T:
        try:
            with self._lock:
                if self._fd is None or self._close_requested:
                    raise BackendError("file already closed")
                return fn(self._fd)
        finally:
            # Checked after releasing: a non-waiting close() that ran into our lock has set
            # the flag before we released it, so we see it here and finish its job.
            if self._close_requested:
                self.close(wait=True)

    def close(self, *, wait: bool) -> None:
        """Close the fd (and remove the staging name, if any). Idempotent."""
        self._close_requested = True
        if not self._lock.acquire(blocking=wait):
            return  # the call in flight closes it when it ends
        try:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                self._finalizer.detach()  # the fd number may be reused from now on
                _release(fd, self._unlink_path)
        finally:
            self._lock.release()


@dataclass(frozen=True)
class _Dirs:
    """Open fds of the directories leading to one blob (owned by an ExitStack)."""

    root: int
    blobs: int
    shard1: int
    leaf: int


def _write_block(fd: int, block: bytes, feed: Sequence[Hasher]) -> None:
    view = memoryview(block)
    with _mapped("stage: write"):
        while view:
            written = os.write(fd, view)
            view = view[written:]
    for hasher in feed:  # outside _mapped: a hasher's own OSError is not a disk error
        hasher.update(block)


def _finish_staging(fd: int, tail: bytes, feed: Sequence[Hasher], *, fsync: bool) -> None:
    if tail:
        _write_block(fd, tail, feed)
    if fsync:
        with _mapped("stage: fsync"):
            os.fsync(fd)


def _pread(fd: int, length: int, offset: int) -> bytes:
    with _mapped("read"):
        return os.pread(fd, length, offset)


def _forget(fut: asyncio.Future[None]) -> None:
    """Drop a worker future we will not await, without 'exception never retrieved' noise."""
    if not fut.done():
        fut.cancel()  # if the thread already runs, it finishes under the fd's lock
    elif not fut.cancelled():
        fut.exception()


class _LocalStaged:
    """A staging file waiting for commit() or discard(); fsynced if it is large.

    commit() twice returns the first outcome again; discard() after commit() or discard()
    is a no-op (so `finally: await staged.discard()` is always safe); commit() after
    discard() raises BackendError. The staging file keeps its fd (and flock) until then.
    """

    def __init__(
        self,
        cas: LocalCAS,
        guard: _GuardedFd,
        temp_name: str,
        receipt: BlobReceipt,
        *,
        mark: int,
        synced: bool,
    ) -> None:
        self._cas = cas
        self._guard = guard
        self._temp_name = temp_name
        self._receipt = receipt
        self._mark = mark  # the sync group's mark taken before the first byte was written
        self._synced = synced
        self._lock = threading.Lock()  # thread-side, so a cancelled await cannot skew state
        self._outcome: bool | None = None
        self._discarded = False

    @property
    def receipt(self) -> BlobReceipt:
        return self._receipt

    async def commit(self) -> bool:
        # A large blob fsynced its own bytes, and one directory fsync is little beside them;
        # a syncfs would also write out whatever else is pending on the filesystem. Small
        # blobs share syncfs calls, unless a large one is being staged (its bytes pending).
        shared = not self._synced and self._cas._large_stagings == 0
        if shared:
            await self._cas._sync(self._mark)  # the bytes on disk before a name points at them
        outcome = await asyncio.to_thread(self._commit_sync, own_syncs=not shared)
        if shared:
            await self._cas._sync(self._mark)  # the name, and any shard directory made, on disk
        return outcome

    async def discard(self) -> None:
        await asyncio.to_thread(self._discard_sync)

    def _commit_sync(self, *, own_syncs: bool) -> bool:
        """Link the blob into place; `own_syncs`: fsync its bytes (unless staging did) before
        the link and its directories after, instead of the callers' shared syncfs."""
        with self._lock:
            if self._outcome is not None:
                return self._outcome
            if self._discarded:
                raise BackendError("staged blob was already discarded")
            size, digest = self._receipt.size, self._receipt.sha256

            def publish(fd: int) -> bool:
                if own_syncs and not self._synced:
                    with _mapped(f"commit {digest}: fsync"):
                        os.fsync(fd)
                return self._cas._publish(fd, self._temp_name, digest, size, sync_dirs=own_syncs)

            outcome = self._guard.call(publish)
            self._outcome = outcome
            self._guard.close(wait=True)  # drops the staging name; the blob has its own link
            return outcome

    def _discard_sync(self) -> None:
        with self._lock:
            if self._outcome is None and not self._discarded:
                self._discarded = True
                self._guard.close(wait=True)

    def __repr__(self) -> str:
        return f"<_LocalStaged {self._receipt.sha256} size={self._receipt.size}>"


class LocalCAS:
    """Content-addressed blobs in a local directory (see the module docstring).

    The constructor creates the layout and calls `recover()` (blocking I/O: construct at
    start-up, not on the event loop of a serving process). Several LocalCAS instances, in
    one process or many, may share a root.
    """

    def __init__(self, root: Path, backend_id: str = "local") -> None:
        if not backend_id:
            raise ValueError("backend_id must not be empty")
        self._backend_id = backend_id
        with _mapped(f"create store at {root}"):
            Path(root).mkdir(parents=True, exist_ok=True)
            # Resolved once: later, a symlink swapped in for the root itself is refused.
            self._root = Path(root).resolve(strict=True)
            self._root_str = str(self._root)
            (self._root / "sha256").mkdir(exist_ok=True)
            (self._root / "tmp").mkdir(exist_ok=True)
            with ExitStack() as stack:
                _, blobs_fd = self._open_store_dir(stack, "sha256")
                _, tmp_fd = self._open_store_dir(stack, "tmp")
                if os.fstat(blobs_fd).st_dev != os.fstat(tmp_fd).st_dev:
                    raise BackendUnavailable(
                        f"{self._root}/tmp and {self._root}/sha256 are on different "
                        "filesystems; commits could not be atomic"
                    )
        self._rename_lock = threading.Lock()  # only for filesystems without hard links
        self._sync_group = SyncGroup(self._root_str)
        # Large blobs being staged here: while any is, a syncfs would wait for its pending
        # bytes, so small blobs fsync their own file and directories instead.
        self._large_stagings = 0
        self.recover()

    # -- public API ------------------------------------------------------------------

    @property
    def backend_id(self) -> str:
        return self._backend_id

    @property
    def root(self) -> Path:
        return self._root

    def blob_path(self, digest: str) -> Path:
        """Where the blob for `digest` lives (whether or not it exists). Blocking.

        Raises InvalidDigest, or BackendUnavailable if symlinks make it resolve outside
        the store.
        """
        check_digest(digest)
        path = self._root / "sha256" / digest[:2] / digest[2:4] / digest
        if os.path.realpath(path) != str(path):
            raise BackendUnavailable(f"{path} resolves through a symlink; refusing it")
        return path

    def recover(self) -> int:
        """Delete staging files left by a crash; returns how many. Blocking.

        Staging files still flocked by a live stage (in any process) are kept.
        """
        removed = 0
        with _mapped("recover"), ExitStack() as stack:
            _, tmp_fd = self._open_store_dir(stack, "tmp")
            with os.scandir(tmp_fd) as entries:
                names = [e.name for e in entries if e.name.startswith(_STAGE_PREFIX)]
            for name in names:
                try:
                    removed += self._remove_if_abandoned(tmp_fd, name)
                except OSError as exc:  # one odd entry must not stop the store from starting
                    logger.warning("recover: cannot remove %s/tmp/%s: %s", self._root, name, exc)
        if removed:
            logger.info("removed %d abandoned staging file(s) under %s", removed, self._root)
        return removed

    async def stage(
        self, chunks: AsyncIterable[bytes], hashers: Sequence[Hasher] = ()
    ) -> StagedBlob:
        mark = self._sync_group.mark()
        guard, temp_name = await asyncio.to_thread(self._create_staging_file)
        sha = hashlib.sha256()
        feed: tuple[Hasher, ...] = (sha, *hashers)
        loop = asyncio.get_running_loop()
        size = 0
        parts: list[bytes] = []
        buffered = 0
        # At most one block is written while the next one is gathered: memory stays at
        # about two blocks plus one chunk, and the network is read while the disk works.
        pending: asyncio.Future[None] | None = None
        large = False
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                parts.append(chunk)
                buffered += len(chunk)
                if buffered >= BLOCK_SIZE:
                    if pending is not None:
                        await pending  # backpressure, and surfaces write errors
                    block = b"".join(parts)
                    parts.clear()
                    buffered = 0
                    size += len(block)
                    if pending is None:
                        large = True
                        self._large_stagings += 1
                    pending = loop.run_in_executor(
                        None, guard.call, functools.partial(_write_block, block=block, feed=feed)
                    )
                    del block
            tail = b"".join(parts)
            parts.clear()
            size += len(tail)
            if pending is not None:
                await pending
                pending = None
            finish = functools.partial(
                _finish_staging, tail=tail, feed=feed, fsync=size > GROUP_SYNC_MAX
            )
            await asyncio.to_thread(guard.call, finish)
        except BaseException:
            if pending is not None:
                _forget(pending)
            # In a worker: waits for an in-flight write to end before closing and unlinking.
            # If this await is cancelled too, the thread still completes the cleanup.
            await asyncio.to_thread(guard.close, wait=True)
            raise
        finally:
            if large:
                self._large_stagings -= 1
        receipt = BlobReceipt(size, sha.hexdigest())
        return _LocalStaged(
            self, guard, temp_name, receipt, mark=mark, synced=size > GROUP_SYNC_MAX
        )

    async def put(self, chunks: AsyncIterable[bytes]) -> BlobReceipt:
        """stage() then commit(). A duplicate is fully read and hashed, then not rewritten."""
        staged = await self.stage(chunks)
        try:
            await staged.commit()
        finally:
            await staged.discard()  # no-op after a commit; drops the staging file otherwise
        return staged.receipt

    def open(self, digest: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        """Stream the blob in blocks of up to BLOCK_SIZE.

        InvalidDigest and a malformed range raise here; BlobNotFound on the first
        iteration. A range ending past the blob raises BackendError. The file is closed
        when the iterator is exhausted, closed (aclose) or finalised.
        """
        check_digest(digest)
        if byte_range is not None and not (0 <= byte_range.first <= byte_range.last):
            raise ValueError(f"invalid byte range {byte_range}")
        return self._stream(digest, byte_range)

    async def size(self, digest: str) -> int | None:
        check_digest(digest)
        return await asyncio.to_thread(self._size_sync, digest)

    async def digests(self) -> AsyncIterator[str]:
        """Every stored digest, one shard directory per thread hop (gc's DigestListing):
        finds blobs whose event never committed (a crash, a refused conditional write)."""
        store = self.root / "sha256"
        for first in sorted(await asyncio.to_thread(_subdirectories, store)):
            for second in sorted(await asyncio.to_thread(_subdirectories, store / first)):
                names = await asyncio.to_thread(os.listdir, store / first / second)
                for name in sorted(names):
                    if len(name) == 64 and name.startswith(first + second):
                        yield name

    async def delete(self, digest: str) -> bool:
        check_digest(digest)
        return await asyncio.to_thread(self._delete_sync, digest)

    async def health(self) -> BackendHealth:
        return await asyncio.to_thread(self._health_sync)

    def __repr__(self) -> str:
        return f"LocalCAS({self._root_str!r}, backend_id={self._backend_id!r})"

    async def _sync(self, mark: int) -> None:
        """Wait for a shared syncfs that started now or later; a blob written since `mark`
        is not known to be durable if any sync failed since (its error may be this blob's)."""
        with _mapped("sync"):
            await self._sync_group.sync()
        if self._sync_group.failed_since(mark):
            raise BackendUnavailable(
                "a sync of the store failed while this blob was being written; "
                "its bytes are not known to be on disk"
            )

    # -- internals (all blocking; run in worker threads) --------------------------------

    def _open_store_dir(self, stack: ExitStack, sub: str) -> tuple[int, int]:
        """Open the root and one of its subdirectories; missing ones mean 'unavailable'."""
        try:
            root_fd = _open_dir(self._root_str, None)
        except FileNotFoundError as exc:
            raise BackendUnavailable(f"storage root {self._root} is gone") from exc
        stack.callback(os.close, root_fd)
        try:
            sub_fd = _open_dir(sub, root_fd)
        except FileNotFoundError as exc:
            raise BackendUnavailable(f"{self._root / sub} is gone") from exc
        stack.callback(os.close, sub_fd)
        return root_fd, sub_fd

    def _walk(self, stack: ExitStack, digest: str, *, create: bool) -> _Dirs | None:
        """Open the shard directories of `digest` without following symlinks.

        None if a shard is absent and not `create`. With `create`, FileNotFoundError means
        a concurrent delete pruned a shard under us: the caller walks again.
        """
        root_fd, blobs_fd = self._open_store_dir(stack, "sha256")
        parent = blobs_fd
        fds: list[int] = []
        for name in (digest[:2], digest[2:4]):
            if create:
                _mkdir_at(name, parent)
            try:
                parent = _open_dir(name, parent)
            except FileNotFoundError:
                if create:
                    raise
                return None
            except OSError as exc:
                if create or exc.errno not in _REFUSED_ERRNOS:
                    raise
                raise BlobDamaged(digest, f"shard {name} is a symlink or not a directory") from exc
            stack.callback(os.close, parent)
            fds.append(parent)
        return _Dirs(root_fd, blobs_fd, fds[0], fds[1])

    def _create_staging_file(self) -> tuple[_GuardedFd, str]:
        with _mapped("stage: create staging file"), ExitStack() as stack:
            _, tmp_fd = self._open_store_dir(stack, "tmp")
            for _ in range(3):
                name = _STAGE_PREFIX + secrets.token_hex(16)
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(name, flags, _BLOB_MODE, dir_fd=tmp_fd)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    # A recover() that opened the file before we locked it has unlinked it.
                    if os.fstat(fd).st_nlink > 0:
                        return _GuardedFd(fd, f"{self._root_str}/tmp/{name}"), name
                except BlockingIOError:
                    pass  # recover() holds it and is about to unlink it
                except BaseException:
                    _release(fd, f"{self._root_str}/tmp/{name}")
                    raise
                os.close(fd)
        raise BackendUnavailable("stage: could not create a staging file")

    @staticmethod
    def _remove_if_abandoned(tmp_fd: int, name: str) -> int:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=tmp_fd)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            os.unlink(name, dir_fd=tmp_fd)  # a symlink is never ours: just drop the name
            return 1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return 0  # a live stage owns it
        try:
            os.unlink(name, dir_fd=tmp_fd)
        except FileNotFoundError:
            return 0
        finally:
            os.close(fd)
        return 1

    def _publish(self, fd: int, temp_name: str, digest: str, size: int, *, sync_dirs: bool) -> bool:
        """Link the staged file (fd, tmp/temp_name) into place; see the module docstring.
        `sync_dirs`: fsync the shard directories here (no shared syncfs follows)."""
        with _mapped(f"commit {digest}"):
            for _ in range(_PUBLISH_ATTEMPTS):
                with ExitStack() as stack:
                    try:
                        dirs = self._walk(stack, digest, create=True)
                        assert dirs is not None
                        tmp_fd = _open_dir("tmp", dirs.root)
                        stack.callback(os.close, tmp_fd)
                        outcome = self._publish_into(dirs, tmp_fd, temp_name, digest, size)
                        if sync_dirs:  # the name, and any shard made for it, durable
                            for dir_fd in (dirs.leaf, dirs.shard1, dirs.blobs):
                                os.fsync(dir_fd)
                        return outcome
                    except FileNotFoundError:
                        if os.fstat(fd).st_nlink == 0:
                            raise BackendUnavailable(
                                f"commit {digest}: the staging file was removed"
                            ) from None
                        # A delete pruned a shard directory between our mkdir and link.
            raise BackendUnavailable(f"commit {digest}: shard directories kept vanishing")

    def _publish_into(
        self, dirs: _Dirs, tmp_fd: int, temp_name: str, digest: str, size: int
    ) -> bool:
        try:
            os.link(
                temp_name,
                digest,
                src_dir_fd=tmp_fd,
                dst_dir_fd=dirs.leaf,
                follow_symlinks=False,
            )
        except FileExistsError:
            return self._adopt_existing(dirs, tmp_fd, temp_name, digest, size)
        except OSError as exc:
            if exc.errno not in _NO_HARDLINK_ERRNOS:
                raise
            # No hard links here: rename cannot refuse to replace, so check first. The lock
            # keeps "exactly one True" within this process.
            with self._rename_lock:
                try:
                    os.stat(digest, dir_fd=dirs.leaf, follow_symlinks=False)
                except FileNotFoundError:
                    os.rename(temp_name, digest, src_dir_fd=tmp_fd, dst_dir_fd=dirs.leaf)
                else:
                    return self._adopt_existing(dirs, tmp_fd, temp_name, digest, size)
        return True  # the caller syncs the new name (and any shard directory made for it)

    @staticmethod
    def _adopt_existing(dirs: _Dirs, tmp_fd: int, temp_name: str, digest: str, size: int) -> bool:
        st = os.stat(digest, dir_fd=dirs.leaf, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            raise BackendUnavailable(f"commit {digest}: existing entry is not a regular file")
        if st.st_size != size:
            # Same digest, other size: the stored file is damaged. Replace it atomically
            # with the bytes we just verified (readers of the old inode keep theirs).
            logger.warning("blob %s had size %d, expected %d: replacing", digest, st.st_size, size)
            os.rename(temp_name, digest, src_dir_fd=tmp_fd, dst_dir_fd=dirs.leaf)
            return True
        # Its creator may still be before the sync after its link(): the caller syncs the
        # name before relying on it.
        return False

    def _open_for_read(self, digest: str) -> tuple[_GuardedFd, int]:
        opened = self._open_by_path(digest)
        if opened is not None:
            return opened
        with _mapped(f"open {digest}"), ExitStack() as stack:
            dirs = self._walk(stack, digest, create=False)
            if dirs is None:
                raise BlobNotFound(digest)
            try:
                # Looked at before opening: opening a device or a FIFO can have effects.
                _require_regular(digest, os.stat(digest, dir_fd=dirs.leaf, follow_symlinks=False))
                fd = os.open(digest, _READ_FLAGS, dir_fd=dirs.leaf)
            except FileNotFoundError:
                raise BlobNotFound(digest) from None
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                raise BlobDamaged(digest, "not a regular file: symlink") from exc
            guard = _GuardedFd(fd)
            try:
                st = os.fstat(fd)
                _require_regular(digest, st)  # swapped since the stat above
            except BaseException:
                guard.close(wait=True)
                raise
            return guard, st.st_size

    async def _stream(self, digest: str, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
        # One thread hop opens the blob and reads its first block: a small object costs one.
        # If this await is cancelled, the guard's finalizer closes the orphaned fd.
        guard, offset, remaining, block = await asyncio.to_thread(
            self._open_first_block, digest, byte_range
        )
        try:
            while remaining > 0:
                if not block:
                    raise BackendError(f"{digest} ended {remaining} bytes early")
                offset += len(block)
                remaining -= len(block)
                yield block
                if remaining <= 0:
                    break
                read = functools.partial(_pread, length=min(BLOCK_SIZE, remaining), offset=offset)
                block = await asyncio.to_thread(guard.call, read)
        finally:
            # Never blocks the loop: if a read is still in its thread, that thread closes.
            guard.close(wait=False)

    def _open_by_path(self, digest: str) -> tuple[_GuardedFd, int] | None:
        """The common case in four system calls instead of the walk's eleven: open the blob
        by its full path, then ask the kernel which file that opened. Only a regular file at
        exactly the expected path (so no symlink on the way) is used; anything else, a
        missing blob included, returns None and takes the walk, which says what is wrong."""
        path = f"{self._root_str}/sha256/{digest[:2]}/{digest[2:4]}/{digest}"
        try:
            # Looked at before opening: opening a device or a FIFO can have effects.
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return None
            fd = os.open(path, _READ_FLAGS)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and os.readlink(f"/proc/self/fd/{fd}") == path:
                return _GuardedFd(fd), st.st_size
        except OSError:
            pass  # no /proc: the walk
        os.close(fd)
        return None

    def _open_first_block(
        self, digest: str, byte_range: ByteRange | None
    ) -> tuple[_GuardedFd, int, int, bytes]:
        """The open blob, where its range starts, the range's length and its first block."""
        guard, size = self._open_for_read(digest)
        try:
            if byte_range is None:
                offset, remaining = 0, size
            elif byte_range.last >= size:
                raise BackendError(
                    f"range {byte_range.first}-{byte_range.last} is past the end of "
                    f"{digest} ({size} bytes)"
                )
            else:
                offset, remaining = byte_range.first, byte_range.length
            block = b""
            if remaining > 0:
                read = functools.partial(_pread, length=min(BLOCK_SIZE, remaining), offset=offset)
                block = guard.call(read)
        except BaseException:
            guard.close(wait=True)
            raise
        return guard, offset, remaining, block

    def _size_sync(self, digest: str) -> int | None:
        with _mapped(f"size {digest}"), ExitStack() as stack:
            dirs = self._walk(stack, digest, create=False)
            if dirs is None:
                return None
            try:
                st = os.stat(digest, dir_fd=dirs.leaf, follow_symlinks=False)
            except FileNotFoundError:
                return None
            _require_regular(digest, st)
            return st.st_size

    def _delete_sync(self, digest: str) -> bool:
        with _mapped(f"delete {digest}"), ExitStack() as stack:
            dirs = self._walk(stack, digest, create=False)
            if dirs is None:
                return False
            try:
                _require_regular(digest, os.stat(digest, dir_fd=dirs.leaf, follow_symlinks=False))
                os.unlink(digest, dir_fd=dirs.leaf)
            except FileNotFoundError:
                return False
            # Prune emptied shards. ENOTEMPTY/ENOENT: another blob lives there, or a
            # concurrent commit/delete got there first; commits retry if we win the race.
            try:
                os.rmdir(digest[2:4], dir_fd=dirs.shard1)
                os.rmdir(digest[:2], dir_fd=dirs.blobs)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    raise
            return True

    def _health_sync(self) -> BackendHealth:
        detail: dict[str, object] = {"root": self._root_str}
        try:
            with ExitStack() as stack:
                root_fd, _ = self._open_store_dir(stack, "sha256")
                self._open_store_dir(stack, "tmp")
                vfs = os.fstatvfs(root_fd)
            detail["total_bytes"] = vfs.f_blocks * vfs.f_frsize
            detail["used_bytes"] = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
            detail["free_bytes"] = vfs.f_bavail * vfs.f_frsize
            for sub in ("sha256", "tmp"):
                # access() also says no on a read-only mount (EROFS).
                if not os.access(self._root / sub, os.W_OK | os.X_OK):
                    raise BackendUnavailable(f"{self._root / sub} is not writable")
        except (OSError, BackendError) as exc:
            detail["error"] = str(exc)
            return BackendHealth(self._backend_id, False, detail)
        return BackendHealth(self._backend_id, True, detail)


if TYPE_CHECKING:
    _conforms: type[StorageBackend] = LocalCAS


def _subdirectories(path: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
