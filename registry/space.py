"""Free space: the log can always append, so deletes and gc work on a full disk.

A reserve file of `size` bytes is kept allocated beside the log. New bytes are refused
(StorageFull, a retryable 503) as soon as free space on the log's or a local store's
filesystem drops below `size`, or while the reserve is released; that leaves room for the
log even when uploads race each other. If the disk fills anyway (another process, a large
upload in flight), the log's writer releases the reserve before it commits, so deletes,
aborts and gc, which free space, still commit. Once free space is back above twice
the reserve, the reserve is allocated again and writes are accepted again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from s3facade.registry.errors import StorageFull

logger = logging.getLogger(__name__)

RESERVE_FILE = "space.reserve"
_REALLOCATE_EVERY = 5.0  # seconds between attempts to allocate the reserve again


@runtime_checkable
class OnLocalDisk(Protocol):
    """A backend whose bytes live under a local directory (its filesystem is watched)."""

    @property
    def root(self) -> Path: ...


def local_roots(backends: Iterable[object]) -> list[Path]:
    return [backend.root for backend in backends if isinstance(backend, OnLocalDisk)]


def free_bytes(path: Path) -> int:
    vfs = os.statvfs(path)
    return vfs.f_bavail * vfs.f_frsize


class SpaceReserve:
    """The reserve file and the free-space checks around it. `before_commit` and
    `after_commit` run on the log's writer thread; `check_store` on the event loop."""

    def __init__(self, data_dir: Path, size: int, stores: Sequence[Path] = ()) -> None:
        self._path = data_dir / RESERVE_FILE
        self._watched = _distinct_filesystems([data_dir, *stores])
        self.size = size
        self._lock = threading.Lock()
        self._next_attempt = 0.0
        self.held = False
        if size > 0:
            self._allocate()

    @property
    def state(self) -> dict[str, object]:
        return {
            "reserve_bytes": self.size,
            "reserve_held": self.held,
            "free_bytes": min(free_bytes(path) for path in self._watched),
        }

    def check_store(self) -> None:
        """Refuse new bytes before they would eat into the log's reserve."""
        if self.size <= 0:
            return
        if not self.held:
            self._reallocate_if_room()
        low = min(free_bytes(path) for path in self._watched)
        if not self.held or low < self.size:
            raise StorageFull(
                f"only {low} bytes free (the log keeps {self.size} in reserve): writes are "
                "refused until space is freed; deletes and gc still work"
            )

    def before_commit(self) -> None:
        """Release the reserve if the log's filesystem is nearly full, so this commit fits."""
        if self.held and free_bytes(self._path.parent) < self.size // 2:
            self.release()

    def after_commit(self) -> None:
        if not self.held:
            self._reallocate_if_room()

    def release(self) -> None:
        with self._lock:
            if not self.held:
                return
            try:
                os.truncate(self._path, 0)
            except OSError as exc:
                logger.error("could not release the space reserve %s: %s", self._path, exc)
                return
            self.held = False
            self._next_attempt = time.monotonic() + _REALLOCATE_EVERY
        logger.warning(
            "the disk of %s is full: released the %d-byte reserve so that the log can go on; "
            "writes are refused until space is freed",
            self._path.parent,
            self.size,
        )

    def _reallocate_if_room(self) -> None:
        if time.monotonic() < self._next_attempt:
            return
        self._next_attempt = time.monotonic() + _REALLOCATE_EVERY
        if free_bytes(self._path.parent) >= 2 * self.size:
            self._allocate()
            if self.held:
                logger.warning("space is free again: the reserve is allocated, writes resume")

    def _allocate(self) -> None:
        with self._lock:
            try:
                fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    os.posix_fallocate(fd, 0, self.size)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                logger.error("could not allocate the space reserve %s: %s", self._path, exc)
                return
            self.held = True


def _distinct_filesystems(paths: Sequence[Path]) -> list[Path]:
    seen: dict[int, Path] = {}
    for path in paths:
        try:
            seen.setdefault(os.stat(path).st_dev, path)
        except FileNotFoundError:
            continue
    return list(seen.values())
