"""A local directory tree as a source of bytes (`s3facade import ./dir`).

`walk` yields every regular file under the root, in key order per directory, with its
relative POSIX path, size and mtime; and, as problems, what it will not import: symlinks
that lead out of the tree or to a directory (never followed: no loops, no escapes), sockets,
FIFOs and devices, names that are not UTF-8, directories it cannot read. A symlink to a
regular file inside the tree is imported as that file's bytes.

`read` opens the file without following a symlink planted since the walk, checks it is the
same regular file (size and mtime as walked), streams it in 1 MiB blocks off the event loop,
and checks again at the end: a file changed while being read raises FileChanged.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FileChanged", "TreeFile", "TreeProblem", "read", "walk"]

_BLOCK = 1 << 20


class FileChanged(OSError):
    """The file is not the one walked any more (changed, replaced or removed)."""


@dataclass(frozen=True)
class TreeFile:
    path: Path  # the file to read (for a symlink inside the tree: its target)
    relative: str  # POSIX path under the root: the key below the import's prefix
    size: int
    mtime_ns: int
    inode: tuple[int, int]  # (st_dev, st_ino): a file swapped in is another file


@dataclass(frozen=True)
class TreeProblem:
    relative: str
    reason: str
    skipped: bool  # True: not importable by design (a socket...); False: an error (unreadable)


def walk(root: Path) -> Iterator[TreeFile | TreeProblem]:
    root = root.resolve()
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as listed:
                entries = sorted(listed, key=lambda e: e.name)
        except OSError as exc:
            yield TreeProblem(prefix or ".", f"cannot read the directory: {exc.strerror}", False)
            continue
        below: list[tuple[Path, str]] = []
        for entry in entries:
            relative = f"{prefix}{entry.name}"
            try:
                relative.encode("utf-8")
            except UnicodeEncodeError:
                shown = relative.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                yield TreeProblem(shown, "the name is not UTF-8", True)
                continue
            found = _entry(root, Path(entry.path), relative)
            if found is None:
                below.append((Path(entry.path), f"{relative}/"))
            else:
                yield found
        stack.extend(reversed(below))  # the first subdirectory is walked next


def _entry(root: Path, path: Path, relative: str) -> TreeFile | TreeProblem | None:
    """The file, what is wrong with it, or None: a directory to walk."""
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            target = path.resolve(strict=True)
            if not target.is_relative_to(root):
                return TreeProblem(relative, "a symlink out of the tree (not followed)", True)
            info = target.stat()
            if not stat.S_ISREG(info.st_mode):
                return TreeProblem(relative, "a symlink to a non-file (not followed)", True)
            return TreeFile(target, relative, info.st_size, info.st_mtime_ns, _inode(info))
        if stat.S_ISDIR(info.st_mode):
            return None
        if not stat.S_ISREG(info.st_mode):
            return TreeProblem(relative, "not a regular file (socket, FIFO or device)", True)
        return TreeFile(path, relative, info.st_size, info.st_mtime_ns, _inode(info))
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        return TreeProblem(relative, f"cannot stat: {exc}", False)


@asynccontextmanager
async def read(file: TreeFile) -> AsyncIterator[AsyncIterator[bytes]]:
    """The file's bytes as walked (FileChanged if it is not that file any more)."""
    try:
        fd = os.open(file.path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileChanged(f"{file.relative}: gone since it was listed") from None
    try:
        _check_same(fd, file)

        async def blocks() -> AsyncIterator[bytes]:
            while block := await asyncio.to_thread(os.read, fd, _BLOCK):
                yield block
            _check_same(fd, file)

        yield blocks()
    finally:
        os.close(fd)


def _check_same(fd: int, file: TreeFile) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise FileChanged(f"{file.relative}: no longer a regular file")
    if (info.st_size, info.st_mtime_ns) != (file.size, file.mtime_ns):
        raise FileChanged(f"{file.relative}: changed since it was listed")
    if _inode(info) != file.inode:
        raise FileChanged(f"{file.relative}: another file since it was listed")


def _inode(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino
