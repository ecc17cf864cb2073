"""Locks that make check-then-append atomic without serialising unrelated writes.

Object writes hold their bucket shared and their key exclusively while they check
a condition and wait for their event to commit; bucket creation and deletion hold
the bucket exclusively. The lock is held only for the commit, never while bytes
are uploaded, so group commit still batches concurrent writes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class SharedExclusiveLock:
    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._shared = 0
        self._exclusive = False
        self._users = 0  # holders and waiters; counted before the first await
        self._shared_since: list[float] = []  # when each shared holder got it (monotonic)

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        self._users += 1
        try:
            async with self._cond:
                await self._cond.wait_for(lambda: not self._exclusive)
                self._shared += 1
                since = time.monotonic()
                self._shared_since.append(since)
            try:
                yield
            finally:
                async with self._cond:
                    self._shared -= 1
                    self._shared_since.remove(since)
                    self._cond.notify_all()
        finally:
            self._users -= 1

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        self._users += 1
        try:
            async with self._cond:
                await self._cond.wait_for(lambda: not self._exclusive and self._shared == 0)
                self._exclusive = True
            try:
                yield
            finally:
                async with self._cond:
                    self._exclusive = False
                    self._cond.notify_all()
        finally:
            self._users -= 1

    @property
    def idle(self) -> bool:
        return self._users == 0

    @property
    def shared_since(self) -> float | None:
        """When the longest-standing shared holder took it (time.monotonic), if any."""
        return min(self._shared_since, default=None)


class LockTable:
    """One exclusive lock per name, created on demand and dropped when nobody holds it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, name: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(name, (asyncio.Lock(), 0))
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)


class SharedLockTable:
    """A shared-exclusive lock per name (bucket, upload id); idle ones are dropped."""

    def __init__(self) -> None:
        self._locks: dict[str, SharedExclusiveLock] = {}

    def __getitem__(self, name: str) -> SharedExclusiveLock:
        if len(self._locks) > 1024:  # keep the table small without tracking holders
            self._locks = {k: v for k, v in self._locks.items() if not v.idle}
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = SharedExclusiveLock()
        return lock

    def shared_since(self, name: str) -> float | None:
        """When the longest-standing shared holder of `name` took it, if anyone holds it."""
        lock = self._locks.get(name)
        return None if lock is None else lock.shared_since
